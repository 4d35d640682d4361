import pathlib

import numpy as np
import pytest

ORACLE = pathlib.Path(__file__).parent / "data" / "oracle"
KIND = {"IS": "ideal", "LS": "ls", "ELS": "els", "bbELS": "bbels"}


@pytest.fixture(scope="session")
def oracle():
    """Loads an oracle file from tests/data/oracle (copied from the authors' reference runs; see its README)."""
    return lambda name: np.load(ORACLE / name)
