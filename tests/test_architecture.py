"""The shape of the code base: the layering of the library, the docs it cites, the README's module map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "elsjax"
COMMAND_LAYER = (
    {"elsjax.cli", "elsjax.__main__"}
    | {f"elsjax.commands.{p.stem}" for p in (PACKAGE / "commands").glob("*.py")}
    | {"elsjax.commands"}
)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every ``elsjax...`` module a file imports (top level or inside functions), as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "elsjax" or n.startswith("elsjax.")}


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if module_name(p) not in COMMAND_LAYER)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: module_name(p))
def test_the_library_never_imports_the_command_line(path):
    offending = {n for n in imported_modules(path) if n in COMMAND_LAYER or n.startswith("elsjax.commands.")}
    assert not offending, (
        f"{module_name(path)} imports {sorted(offending)}: the command line sits on top of the library"
    )


def test_the_import_walk_sees_command_imports(tmp_path):
    # The check above can fail: an import inside a function, of a name from the CLI, is found.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from elsjax.commands.sample import run\n    import elsjax.cli\n")
    assert {"elsjax.commands.sample", "elsjax.cli"} <= imported_modules(bad)


def maths_sections() -> set[str]:
    text = (REPO / "docs" / "maths.md").read_text()
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", text, flags=re.M))


def test_every_docs_citation_names_an_existing_section():
    sections = maths_sections()
    assert {"1", "2.3", "4.5", "6"} <= sections
    cited = []
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "tests").glob("*.py"), REPO / "README.md"]:
        for match in re.finditer(r"docs/maths\.md ((?:§[\d.]+(?:-[\d.]+)?(?:, )?)+)", path.read_text()):
            for ref in re.findall(r"§(\d+(?:\.\d+)?)", match.group(1)):
                cited.append((path.relative_to(REPO), ref))
    assert cited
    missing = [(str(p), ref) for p, ref in cited if ref not in sections]
    assert not missing, f"citations of sections docs/maths.md does not have: {missing}"


def test_no_citation_of_documents_outside_the_repository():
    offenders = [
        f"{p.relative_to(REPO)}:{i}"
        for p in [*PACKAGE.rglob("*.py"), *(REPO / "tests").glob("*.py"), *(REPO / "experiments").rglob("*.py")]
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\bSPEC (\d|§|section)", line)
    ]
    assert not offenders


def test_readme_module_map_lists_every_module():
    readme = (REPO / "README.md").read_text()
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" and p.stem not in ("schedule", "schedules")]
    # A module is listed by its path, or (inside a sub-package) by its package's folder.
    missing = [str(p.relative_to(REPO)) for p in modules if p.relative_to(REPO).as_posix() not in readme
               and (p.parent == PACKAGE or f"`{p.parent.relative_to(REPO).as_posix()}/`" not in readme)]  # fmt: skip
    assert not missing, f"modules missing from the README's map: {missing}"
