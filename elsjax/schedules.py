"""Deprecated alias of :mod:`elsjax.scales` (the per-step patch sizes), kept for one release."""

import warnings

from elsjax.scales import ALIASES, PUBLISHED, names, resolve

__all__ = ["PUBLISHED", "ALIASES", "get_schedule", "names"]

get_schedule = resolve

warnings.warn(
    "elsjax.schedules was renamed elsjax.scales (get_schedule is scales.resolve)", DeprecationWarning, stacklevel=2
)
