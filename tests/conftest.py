import os
import pathlib

import numpy as np
import pytest

ORACLE = pathlib.Path(__file__).parent / "data" / "oracle"
# The command line keeps compiled programs on disk; tests must not write outside their temporary directories.
os.environ["ELSJAX_COMPILATION_CACHE"] = "0"

KIND = {"IS": "ideal", "LS": "ls", "ELS": "els", "bbELS": "bbels"}


@pytest.fixture(scope="session")
def oracle():
    """Loads an oracle file from tests/data/oracle (copied from the authors' reference runs; see its README)."""
    return lambda name: np.load(ORACLE / name)
