"""Every case of ``tests/bad_inputs.py`` gets what it should, and ``docs/bad_inputs.md`` shows exactly that.

When a message changes on purpose, regenerate the doc from the repository root with
``python -m tests.bad_inputs --write`` (or run this file with ``ELSJAX_WRITE_BAD_INPUTS=1``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import bad_inputs  # noqa: E402

_OUTCOMES: dict[int, bad_inputs.Outcome] = {}


def outcome(case: bad_inputs.Case) -> bad_inputs.Outcome:
    """Each case runs once per session, whether its own test or the doc test asks first."""
    if id(case) not in _OUTCOMES:
        _OUTCOMES[id(case)] = bad_inputs.run_case(case)
    return _OUTCOMES[id(case)]


def test_there_are_enough_cases_and_each_is_described_once():
    assert len(bad_inputs.CASES) >= 30
    keys = [(c.area, c.what) for c in bad_inputs.CASES]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=[f"{c.area}: {c.what}" for c in bad_inputs.CASES])
def test_case(case):
    got = outcome(case)
    assert got.ok, f"{case.area}: {case.what}: {got.text}"


def test_the_doc_shows_what_the_cases_get():
    text = bad_inputs.render([(case, outcome(case)) for case in bad_inputs.CASES])
    if os.environ.get("ELSJAX_WRITE_BAD_INPUTS"):
        bad_inputs.DOC.write_text(text)
    assert bad_inputs.DOC.is_file(), "docs/bad_inputs.md is missing: run python -m tests.bad_inputs --write"
    assert bad_inputs.DOC.read_text() == text, (
        "docs/bad_inputs.md is out of date: run python -m tests.bad_inputs --write"
    )
