#!/usr/bin/env bash
# Sets up a fresh virtual environment in .venv (if missing), installs elsjax with its test extra, runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m ruff check .            # the linter and the formatter, configured in pyproject.toml
.venv/bin/python -m ruff format --check .
exec .venv/bin/python -m pytest -q "$@"      # testpaths: the library's doctests and tests/
