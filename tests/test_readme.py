"""Every Python block of README.md runs, on small stand-ins for the names its examples use.

The blocks run from the repository root (they load the committed checkpoints by relative path), each in a fresh
namespace holding ``train``, ``labels``, ``x``, ``t``, ``y``, ``seeds`` and ``scales`` (README.md, "API", says what
each stands for). A block fails when it raises, and when it uses a deprecated elsjax name (a ``DeprecationWarning``
on its own lines, or one that names elsjax). A block preceded by ``<!-- not run: REASON -->`` is skipped: it needs
data or time this suite does not have, and there must be few of them.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_NOT_RUN = 2  # blocks the README may exempt; each needs its reason in the marker

FENCE = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
MARKER_LINE = re.compile(r"^[ \t]*<!--\s*not run:.*?-->[ \t]*$", re.M)


class Block(NamedTuple):
    line: int  # README line of the block's first line of code
    code: str
    not_run: str | None  # the reason given in a preceding <!-- not run: ... --> comment


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of a markdown text, in order, with the not-run reason of each (None if it runs)."""
    blocks = []
    for match in FENCE.finditer(text):
        previous = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
        marker = NOT_RUN.fullmatch(previous)
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(Block(line, match.group(1), marker and marker.group(1)))
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


def run_block(code: str, line: int, namespace: dict) -> None:
    """Executes one block so that tracebacks point at README.md's lines; fails on a deprecated elsjax name."""
    compiled = compile("\n" * (line - 1) + code, str(README), "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compiled, namespace)
    deprecated = [
        f"{w.filename}:{w.lineno}: {w.message}"
        for w in caught
        if issubclass(w.category, DeprecationWarning) and (w.filename == str(README) or "elsjax" in str(w.message))
    ]
    assert not deprecated, f"the README block at line {line} uses deprecated names: {deprecated}"


BLOCKS = readme_blocks(README.read_text())


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.line}" for b in BLOCKS])
def test_readme_block_runs(block, monkeypatch):
    if block.not_run is not None:
        pytest.skip(f"README.md:{block.line} is marked not run: {block.not_run}")
    monkeypatch.chdir(REPO)
    run_block(block.code, block.line, stand_ins())


def test_the_readme_has_examples_and_few_exemptions():
    text = README.read_text()
    skipped = [b for b in BLOCKS if b.not_run is not None]
    assert len(BLOCKS) >= 5
    assert len(skipped) <= MAX_NOT_RUN, f"too many README blocks marked not run: {[b.line for b in skipped]}"
    assert all(b.not_run for b in skipped), "a <!-- not run: --> marker needs its reason"
    # Every marker sits right before a python block (a stray one would exempt nothing, or the wrong block).
    assert len(MARKER_LINE.findall(text)) == len(skipped)


def test_a_broken_example_fails():
    with pytest.raises(AttributeError, match="no_such_function"):
        run_block("from elsjax import machines\n\nmachines.no_such_function()\n", 1, stand_ins())


def test_a_deprecated_name_fails():
    code = "from elsjax import machines\n\nm = denoisers.build('els', train, k=3)\nmachines.score(m, x, t)\n"
    with pytest.raises(AssertionError, match="deprecated"):
        run_block(code, 10, stand_ins())


def test_blocks_and_markers_are_found():
    text = "intro\n\n```python\na = 1\n```\n\n<!-- not run: needs data -->\n```python\nb = 2\n```\n"
    assert readme_blocks(text) == [Block(4, "a = 1\n", None), Block(9, "b = 2\n", "needs data")]
