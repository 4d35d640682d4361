"""Progress reporting: one typed callback protocol with named phases, shared by every job.

A long-running function takes ``progress: Progress | None`` and calls ``progress(phase, done, total, k)`` as work
happens: ``done`` of ``total`` counts its own units (steps for a sampler, (class, k) pairs for a calibration) and
``k`` is the patch size at hand (0 for none). :class:`elsjax.runs.PhaseTimer` turns the calls into a split of the wall
time by phase, and the progress bars in :mod:`elsjax.runs` draw them.

Example:
    >>> calls = []
    >>> report: Progress = lambda phase, done, total, k: calls.append((phase.value, done, total, k))
    >>> report(Phase.BUILD, 0, 19, 3)
    >>> calls, Phase.BUILD == "build"
    ([('build', 0, 19, 3)], True)
"""

from __future__ import annotations

import enum
from typing import Protocol

__all__ = ["Phase", "Progress"]


class Phase(enum.StrEnum):
    """What a progress call reports (a ``str`` enum: it compares equal to its value)."""

    NET = "net"  # a trained net's trajectory and noise estimates (calibration), or its samples (evaluation)
    BUILD = "build"  # a denoiser is about to be built (sampler), or was built (calibration)
    BUILT = "built"  # a denoiser was built (sampler)
    COMPILE = "compile"  # a denoiser's program was compiled (calibration)
    EVALUATE = "evaluate"  # every state of a class group was scored with one k (calibration)
    SAMPLE = "sample"  # a segment of reverse steps ran (sampler), or a net's samples were drawn (evaluation)


class Progress(Protocol):
    """``progress(phase, done, total, k)``: called as each phase of a job is reached or ends (see :class:`Phase`)."""

    def __call__(self, phase: Phase, done: int, total: int, k: int, /) -> None: ...
