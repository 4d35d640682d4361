"""elsjax: analytic, training-free diffusion models (equivariant local score machines) in JAX.

The stable surface is :func:`score` and :func:`sample`; the building blocks underneath, each using only those
before it, are :mod:`elsjax.noise` -> :mod:`elsjax.patches` -> :mod:`elsjax.posterior` -> :mod:`elsjax.machines`
-> :mod:`elsjax.sampler` (the README's module map lists the whole stack, up to the jobs and the command line).
"""

from elsjax import machines, noise, patches, posterior, sampler, scales, seeds
from elsjax.api import sample, score

__all__ = ["score", "sample", "machines", "noise", "patches", "posterior", "sampler", "scales", "seeds"]
__version__ = "0.1.0"
