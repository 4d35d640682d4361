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


def pytest_configure(config):
    config.addinivalue_line("markers", "exact_tables: compares the bytes of built tables (--padded-programs leaves it)")


def pytest_addoption(parser):
    parser.addoption(
        "--padded-programs",
        action="store_true",
        help="build every patch machine padded to a wider shape (docs/performance.md, padded programs): the same "
        "tests, the same assertions, through the padded programs",
    )


@pytest.fixture(autouse=True)
def padded_programs(request, monkeypatch):
    """With ``--padded-programs``, every ELS and bbELS machine is built padded beyond its own shape: two more pixel
    rows of key and query slots, one more group in tables of several, three more queries per group, one more
    (unstreamed) chunk."""
    if not request.config.getoption("--padded-programs") or request.node.get_closest_marker("exact_tables"):
        return
    from elsjax import denoisers

    build = denoisers.DictionaryDenoiser.build.__func__

    def padded_build(cls, *args, **kwargs):
        machine = build(cls, *args, **kwargs)
        if not isinstance(machine, denoisers.PatchDenoiser) or machine.mesh is not None:
            return machine
        own = machine.padded_shape()
        wider = tuple((g + (g > 1), q + 3, c, n + 1) for g, q, c, n in own.tables)
        return machine.pad(own._replace(k=own.k + 2, tables=wider))

    monkeypatch.setattr(denoisers.DictionaryDenoiser, "build", classmethod(padded_build))


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
