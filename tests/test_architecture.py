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


# ----------------------------------------------------------------------------------------------------------------
# The layer map the README draws.


def layer_map() -> dict[str, int]:
    """``{module or package name: layer}`` from the README's ```text block of ``layer N  title : a, b, ...`` lines."""
    readme = (REPO / "README.md").read_text()
    lines = re.findall(r"^layer (\d+) +[\w ]+?: (.+)$", readme, flags=re.M)
    assert lines, "the README draws no layer map"
    return {name.strip(): int(n) for n, names in lines for name in names.split(",")}


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of ``elsjax.a.b``: that of ``a.b``, else of its package ``a``."""
    parts = module.split(".")[1:]
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in layers:
            return layers[".".join(parts[:i])]
    return None


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_every_module_is_on_the_layer_map_and_imports_only_downwards(path):
    layers = layer_map()
    me = module_name(path)
    mine = layer_of(me, layers)
    assert mine is not None, f"{me} is on no layer of the README's map"
    above = {
        name: layer_of(name, layers)
        for name in imported_modules(path)
        if name != "elsjax" and (layer_of(name, layers) or -1) > mine
    }
    assert not above, f"{me} (layer {mine}) imports from higher layers: {above}"


def test_the_layer_check_can_fail(tmp_path):
    layers = {"noise": 0, "denoisers": 3}
    assert layer_of("elsjax.denoisers.patch", layers) == 3 and layer_of("elsjax.nowhere", layers) is None
    bad = tmp_path / "bad.py"
    bad.write_text("from elsjax.denoisers import build\n")
    assert any(layer_of(n, layers) == 3 for n in imported_modules(bad))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_private_names_never_cross_modules(path):
    # `module._name` on another elsjax module, or `from elsjax.x import _name`; a package's private modules
    # (elsjax.denoisers._base) are used by that package alone.
    me = module_name(path)
    text = path.read_text()
    offending = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("elsjax"):
            offending += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            private = [p for p in node.module.split(".") if p.startswith("_")]
            package = node.module.split("._")[0]
            if private and not me.startswith(package):
                offending.append(node.module)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if isinstance(node.value, ast.Name) and node.value.id in _elsjax_aliases(text):
                offending.append(f"{node.value.id}.{node.attr}")
    assert not offending, f"{me} uses private names of other modules: {offending}"


def _elsjax_aliases(text: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module == "elsjax":
            names.update(a.asname or a.name for a in node.names)
    return names
