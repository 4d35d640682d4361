"""elsjax: analytic, training-free diffusion models (equivariant local score machines) in JAX.

The stable surface is :func:`score` and :func:`sample`; the building blocks underneath, each using only those
before it, are :mod:`elsjax.noise` -> :mod:`elsjax.patches` -> :mod:`elsjax.posterior` -> :mod:`elsjax.machines`
-> :mod:`elsjax.sampler` (the README's module map lists the whole stack, up to the jobs and the command line).
"""

from elsjax import machines, noise, patches, posterior, sampler, scales, seeds, sharding
from elsjax.api import make_mesh, sample, score

__all__ = [
    "score", "sample", "make_mesh", "machines", "noise", "patches", "posterior", "sampler", "scales", "seeds", "sharding",
]  # fmt: skip
__version__ = "0.1.0"
