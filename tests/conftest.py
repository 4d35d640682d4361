import os
import pathlib

import numpy as np
import pytest

ORACLE = pathlib.Path(__file__).parent / "data" / "oracle"
# The command line keeps compiled programs on disk; tests must not write outside their temporary directories.
os.environ["ELSJAX_COMPILATION_CACHE"] = "0"

KIND = {"IS": "ideal", "LS": "ls", "ELS": "els", "bbELS": "bbels"}


def relerr(got, want):
    """Largest absolute difference relative to the largest reference magnitude, ``max|got - want| / max|want|``."""
    got, want = np.asarray(got), np.asarray(want)
    return np.abs(got - want).max() / np.abs(want).max()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Points elsjax's cache and the tfds data dir at ``tmp_path``: a test never reads or writes a developer's."""
    monkeypatch.setenv("ELSJAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def oracle():
    """Loads an oracle file from tests/data/oracle (copied from the authors' reference runs; see its README)."""
    return lambda name: np.load(ORACLE / name)
