"""The scripts of experiments/ as modules, for the tests that run them on tiny sizes (they are not a package)."""

import importlib.util
import pathlib

EXPERIMENTS = pathlib.Path(__file__).parents[1] / "experiments"


def load(name: str):
    """``experiments/NAME.py`` imported as a fresh module."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
