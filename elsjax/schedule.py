"""Deprecated alias of :mod:`elsjax.noise` (the noise schedule), kept for one release."""

import warnings

from elsjax.noise import *  # noqa: F403
from elsjax.noise import __all__  # noqa: F401

warnings.warn("elsjax.schedule was renamed elsjax.noise", DeprecationWarning, stacklevel=2)
