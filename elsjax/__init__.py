"""elsjax: analytic, training-free diffusion models (equivariant local score machines) in JAX.

The stable surface is :func:`score` and :func:`sample`; the building blocks underneath are
:mod:`elsjax.schedule` -> :mod:`elsjax.patches` -> :mod:`elsjax.posterior` -> :mod:`elsjax.machines` ->
:mod:`elsjax.sampler`.
"""

from elsjax import machines, patches, posterior, sampler, schedule
from elsjax.api import sample, score

__all__ = ["score", "sample", "machines", "patches", "posterior", "sampler", "schedule"]
__version__ = "0.1.0"
