"""The documentation is true: its examples run, its commands parse, its links and its names resolve.

Every ```python block of README.md, docs/*.md and experiments/checkpoints/README.md runs from the repository root
(the blocks load the committed checkpoints by relative path), each in a fresh namespace holding ``train``,
``labels``, ``x``, ``t``, ``y``, ``seeds`` and ``scales`` (README.md, "API", says what each stands for). A block
fails when it raises, and when it uses a deprecated elsjax name (a ``DeprecationWarning`` raised on its own lines, or
one that names elsjax). The line just before a block may mark it:

* ``<!-- not run: REASON -->``: skipped; it needs data or time this suite does not have (few, each with a reason);
* ``<!-- needs data: NAME -->``: run where the dataset ``NAME`` is on this machine (``elsjax.data.load``), skipped
  elsewhere;
* ``<!-- devices: N -->``: run in a fresh process with N fake CPU devices (for meshes).

Every ``elsjax`` command of a ```bash block parses with that command's own flags, and the files it names
(``--config FILE``, ``python SCRIPT``, ``bash SCRIPT``) exist. Every markdown link between the documents, and
every ``#anchor``, resolves. Every backticked ``module.name`` of elsjax in the documents exists.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "experiments" / "checkpoints" / "README.md"]
LINKED = [*DOCS, REPO / "tests" / "data" / "oracle" / "README.md"]  # documents whose links are checked
GENERATED = {REPO / "docs" / "bad_inputs.md"}  # quotes error messages: its words are not API references
MAX_NOT_RUN = 2  # blocks a document may exempt; each needs its reason in the marker

FENCE = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*(not run|needs data|devices):\s*(.*?)\s*-->")
MARKER_LINE = re.compile(r"^[ \t]*<!--\s*(?:not run|needs data|devices):.*?-->[ \t]*$", re.M)


class Block(NamedTuple):
    line: int  # line of the block's first line of code in its document
    code: str
    not_run: str | None  # the reason given in a preceding <!-- not run: ... --> comment
    needs_data: str | None = None  # the dataset named by <!-- needs data: ... -->
    devices: int | None = None  # the fake CPU devices asked for by <!-- devices: N -->


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of a markdown text, in order, with the marker on the line before each (if any)."""
    blocks = []
    for match in FENCE.finditer(text):
        previous = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
        marker = MARKER.fullmatch(previous)
        kind, value = marker.groups() if marker else (None, None)
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(
            Block(
                line,
                match.group(1),
                value if kind == "not run" else None,
                value if kind == "needs data" else None,
                int(value) if kind == "devices" else None,
            )
        )
    return blocks


def stand_ins() -> dict:
    """Small inputs under the README's names: 8x8 one-channel images, two classes, a 4-entry scales list."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(6, 8, 8, 1))
    return {
        "train": (2 * codes / 255 - 1).astype(np.float32),  # 8-bit data as the datasets give it: 2v/255 - 1
        "labels": np.array([0, 1, 0, 1, 0, 1], np.int32),
        "x": rng.normal(size=(2, 8, 8, 1)).astype(np.float32),
        "t": np.array([0.5, 0.2], np.float32),
        "y": np.array([0, 1], np.int32),
        "seeds": rng.normal(size=(2, 8, 8, 1)).astype(np.float32),
        "scales": [3, 3, 5, 5],
    }


def run_block(code: str, line: int, namespace: dict, path: Path = README) -> None:
    """Executes one block so that tracebacks point at the document's lines; fails on a deprecated elsjax name."""
    compiled = compile("\n" * (line - 1) + code, str(path), "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compiled, namespace)
    deprecated = [
        f"{w.filename}:{w.lineno}: {w.message}"
        for w in caught
        if issubclass(w.category, DeprecationWarning) and (w.filename == str(path) or "elsjax" in str(w.message))
    ]
    assert not deprecated, f"the block at {path.name}:{line} uses deprecated names: {deprecated}"


def _name(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name


BLOCKS = [(path, block) for path in DOCS for block in readme_blocks(path.read_text())]
# Blocks that run a calibration, an evaluation or a trained net take tens of seconds: the integration tier.
END_TO_END = re.compile(r"\b(calibrate|evaluate)\.\w+\(|load_net\(")


def _data_available(name: str) -> bool:
    from elsjax import data

    try:
        data.load(name, limit=1)
    except data.SourceUnavailable:
        return False
    return True


def _run_on_devices(path: Path, block: Block) -> None:
    """Runs a block in a fresh process with ``block.devices`` fake CPU devices (XLA reads the flag at start-up)."""
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'tests'); import test_readme as t; "
        "t.run_block(sys.stdin.read(), int(sys.argv[1]), t.stand_ins(), Path(sys.argv[2]))"
    )
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={block.devices}"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(block.line), str(path)],
        input=block.code, capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"{_name(path)}:{block.line} failed on {block.devices} devices:\n{done.stderr}"


@pytest.mark.parametrize(
    "path, block",
    [
        pytest.param(
            p, b, id=f"{_name(p)}:{b.line}", marks=[pytest.mark.integration] if END_TO_END.search(b.code) else []
        )
        for p, b in BLOCKS
    ],
)
def test_doc_block_runs(path, block, monkeypatch):
    if block.not_run is not None:
        pytest.skip(f"{_name(path)}:{block.line} is marked not run: {block.not_run}")
    if block.needs_data is not None and not _data_available(block.needs_data):
        pytest.skip(f"{_name(path)}:{block.line} needs the dataset {block.needs_data!r}, not on this machine")
    monkeypatch.chdir(REPO)
    if block.devices is not None:
        _run_on_devices(path, block)
    else:
        run_block(block.code, block.line, stand_ins(), path)


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_markers_sit_before_blocks_and_exemptions_are_few(path):
    text = path.read_text()
    blocks = readme_blocks(text)
    skipped = [b for b in blocks if b.not_run is not None]
    marked = [b for b in blocks if b.not_run is not None or b.needs_data is not None or b.devices is not None]
    assert len(skipped) <= MAX_NOT_RUN, f"too many blocks of {_name(path)} marked not run: {[b.line for b in skipped]}"
    assert all(b.not_run for b in skipped), "a <!-- not run: --> marker needs its reason"
    # Every marker sits right before a python block (a stray one would exempt nothing, or the wrong block).
    assert len(MARKER_LINE.findall(text)) == len(marked)


def test_the_readme_has_examples():
    assert len(readme_blocks(README.read_text())) >= 5
    assert len(README.read_text().splitlines()) <= 300, "the README is the front page: the rest goes in docs/"


def test_a_broken_example_fails():
    with pytest.raises(AttributeError, match="no_such_function"):
        run_block("from elsjax import denoisers\n\ndenoisers.no_such_function()\n", 1, stand_ins())


def test_a_deprecated_name_fails():
    code = "import warnings\n\nwarnings.warn('elsjax.old_name is deprecated', DeprecationWarning)\n"
    with pytest.raises(AssertionError, match="deprecated"):
        run_block(code, 10, stand_ins())


def test_blocks_and_markers_are_found():
    text = (
        "intro\n\n```python\na = 1\n```\n\n<!-- not run: needs data -->\n```python\nb = 2\n```\n"
        "<!-- needs data: mnist -->\n```python\nc = 3\n```\n<!-- devices: 4 -->\n```python\nd = 4\n```\n"
    )
    assert readme_blocks(text) == [
        Block(4, "a = 1\n", None),
        Block(9, "b = 2\n", "needs data"),
        Block(13, "c = 3\n", None, "mnist"),
        Block(17, "d = 4\n", None, None, 4),
    ]


# ----------------------------------------------------------------------------------------------------------------
# Commands in ```bash blocks.

BASH = re.compile(r"^```bash\n(.*?)^```[ \t]*$", re.M | re.S)


def bash_commands(text: str) -> list[tuple[int, list[str]]]:
    """``(line, argv)`` of every command in the ```bash blocks: continuation lines joined, comments dropped, split at
    ``&&``, ``||``, ``;`` and ``|``, leading ``VAR=value`` assignments dropped."""
    commands = []
    for match in BASH.finditer(text):
        first = text.count("\n", 0, match.start(1)) + 1
        lines = match.group(1).splitlines()
        i = 0
        while i < len(lines):
            start, joined = i, lines[i]
            while joined.endswith("\\") and i + 1 < len(lines):
                i += 1
                joined = joined[:-1] + " " + lines[i]
            i += 1
            lexer = shlex.shlex(joined, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split, lexer.commenters = True, "#"
            argv: list[str] = []
            for token in [*lexer, ";"]:
                if token and set(token) <= set(";&|"):
                    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
                        argv.pop(0)
                    if argv:
                        commands.append((first + start, argv))
                    argv = []
                else:
                    argv.append(token)
    return commands


COMMANDS = [(path, line, argv) for path in DOCS for line, argv in bash_commands(path.read_text())]


def parse_command(argv: list[str]) -> str | None:
    """Parses ``elsjax COMMAND ...`` as the command line would, without running it: None, or what is wrong."""
    from elsjax import cli

    name = next((a for a in argv if not a.startswith("-")), None)
    if name not in cli.COMMANDS:
        return f"unknown command {name!r}"
    parser = argparse.ArgumentParser(prog="elsjax")
    sub = parser.add_subparsers(dest="command")
    module = importlib.import_module(cli.COMMANDS[name][0])
    module.add_arguments(sub.add_parser(name))
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args, extra = parser.parse_known_args(argv)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    if extra and not getattr(module, "ACCEPTS_EXTRA", False):
        return f"unrecognized arguments: {extra}"
    odd = [e for e in extra if not re.fullmatch(r"--config\.\w+=.*", e)]
    if odd:
        return f"unrecognized arguments: {odd}"
    config = getattr(args, "config", None)
    if isinstance(config, str) and config and not (REPO / config).is_file():
        return f"--config {config}: no such file"
    return None


@pytest.mark.parametrize("path, line, argv", COMMANDS, ids=[f"{_name(p)}:{n}:{a[0]}" for p, n, a in COMMANDS])
def test_doc_command_parses(path, line, argv):
    where = f"{_name(path)}:{line}: {shlex.join(argv)}"
    if argv[0] in ("elsjax", ".venv/bin/elsjax"):
        if "..." in argv:
            pytest.skip("an elided example")
        problem = parse_command(argv[1:])
        assert problem is None, f"{where}: {problem}"
    elif argv[0] in ("python", "bash") and len(argv) > 1 and not argv[1].startswith("-"):
        assert (REPO / argv[1]).is_file(), f"{where}: no such file {argv[1]}"
    elif argv[:2] == ["python", "-m"] and argv[2].startswith(("elsjax", "tests")):
        module = argv[2].replace(".", "/")
        assert (REPO / f"{module}.py").is_file() or (REPO / module).is_dir(), f"{where}: no module {argv[2]}"


def test_commands_are_found_and_a_bad_flag_fails():
    text = (
        "```bash\nA=1 elsjax sample --n-seeds 2 \\\n  --limit 5   # comment\nelsjax train && python x.py | cat\n```\n"
    )
    assert bash_commands(text) == [
        (2, ["elsjax", "sample", "--n-seeds", "2", "--limit", "5"]),
        (4, ["elsjax", "train"]),
        (4, ["python", "x.py"]),
        (4, ["cat"]),
    ]
    assert parse_command(["sample", "--n-seeds", "2", "--config.limit=5"]) is None
    assert "--no-such-flag" in parse_command(["sample", "--no-such-flag", "1"])
    assert parse_command(["nonsense"]) == "unknown command 'nonsense'"


# ----------------------------------------------------------------------------------------------------------------
# Links and anchors.

LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)\)")
FENCED = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
CODE = re.compile(r"^```.*?^```[ \t]*$|`[^`\n]*`", re.M | re.S)


def slugs(text: str) -> set[str]:
    """The anchors GitHub gives a markdown text's headings: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered (``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", FENCED.sub("", text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def links(path: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every markdown link and image of a document outside code."""
    text = path.read_text()
    blanked = CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return [(blanked.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(blanked)]


def broken(path: Path, target: str) -> str | None:
    if re.match(r"[a-z]+:", target):  # https:, mailto:
        return None
    file, _, anchor = target.partition("#")
    dest = (path.parent / file).resolve() if file else path
    if not dest.exists():
        return f"no such file {file}"
    if anchor and dest.suffix == ".md" and anchor not in slugs(dest.read_text()):
        return f"no heading #{anchor} in {_name(dest)}"
    return None


@pytest.mark.parametrize("path", LINKED, ids=_name)
def test_links_resolve(path):
    bad = [f"{_name(path)}:{line}: ({target}) {problem}" for line, target in links(path)
           if (problem := broken(path, target))]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_every_document_in_docs_is_linked_from_the_index():
    index = {target.partition("#")[0] for _, target in links(REPO / "docs" / "README.md")}
    missing = [p.name for p in (REPO / "docs").iterdir() if p.name != "README.md" and p.name not in index]
    assert not missing, f"docs/README.md does not list {missing}"


def test_the_link_check_can_fail(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text(
        "# T\n\n## The `b` part: two\n\n## T\n\n```\n# not a heading\n```\n[ok](#t-1) [bad](none.md) [x](a.md#nope)\n"
    )
    assert slugs(doc.read_text()) == {"t", "the-b-part-two", "t-1"}
    assert [broken(doc, target) for _, target in links(doc)] == [
        None,
        "no such file none.md",
        "no heading #nope in a.md",
    ]


# ----------------------------------------------------------------------------------------------------------------
# Names.

DELETED = {"machines", "schedule", "schedules"}  # modules that no longer exist: any mention is stale
REFERENCE = re.compile(r"(?<![\w.\-/])((?:elsjax\.)?[a-z_][a-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
FILE_SUFFIX = re.compile(r"\.(py|md|json|png|npz|txt|csv|sh|toml|gz|ubyte)$")


def _modules() -> set[str]:
    return {p.stem for p in (REPO / "elsjax").glob("*.py")} | {
        p.name for p in (REPO / "elsjax").iterdir() if (p / "__init__.py").is_file()
    }


def resolves(dotted: str) -> bool:
    """Whether ``elsjax.a.b.c`` (or ``a.b.c`` for an elsjax module ``a``) names something that exists."""
    parts = dotted.split(".")
    parts = parts[1:] if parts[0] == "elsjax" else parts
    if parts[0] in DELETED:
        return False
    for i in range(len(parts), -1, -1):
        try:
            obj = importlib.import_module(".".join(["elsjax", *parts[:i]]))
        except ImportError:
            continue
        for part in parts[i:]:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return False


def references(text: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of the elsjax names in a text's inline code (flags such as ``--config.x`` and file
    names excluded)."""
    heads = _modules() | DELETED | {"elsjax"}
    found = []
    for span in re.finditer(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)):
        for name in REFERENCE.findall(span.group(1)):
            if name.split(".")[0] in heads and not FILE_SUFFIX.search(name):
                found.append((text.count("\n", 0, text.find(span.group(0))) + 1, name))
    return found


@pytest.mark.parametrize("path", [p for p in DOCS if p not in GENERATED], ids=_name)
def test_names_in_the_docs_exist(path):
    stale = [f"{_name(path)}:{line}: {name}" for line, name in references(path.read_text()) if not resolves(name)]
    assert not stale, "names that elsjax does not have:\n" + "\n".join(stale)


def test_the_name_check_can_fail():
    text = (
        "`elsjax.denoisers.build`, `posterior.TopEntries.merge`, `--config.n_seeds=2`, `config.json`, `machines.build`"
    )
    assert [name for _, name in references(text)] == [
        "elsjax.denoisers.build", "posterior.TopEntries.merge", "machines.build"
    ]  # fmt: skip
    assert [resolves(name) for _, name in references(text)] == [True, True, False]
    assert not resolves("posterior.stream_provenance") and resolves("elsjax.score")
