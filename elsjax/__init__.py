"""elsjax: analytic, training-free diffusion models (equivariant local score machines) in JAX.

The stable surface is :func:`score`, :func:`sample` and :func:`provenance`; the building blocks underneath, each
using only those before it, are :mod:`elsjax.noise` -> :mod:`elsjax.patches` -> :mod:`elsjax.posterior` -> :mod:`elsjax.machines`
-> :mod:`elsjax.sampler` (the README's module map lists the whole stack, up to the jobs and the command line).
"""

from elsjax import machines, noise, patches, posterior, sampler, scales, seeds, sharding
from elsjax.api import make_mesh, sample, score

# The function shadows its module as a package attribute (elsjax.provenance(...)); the module's other names import
# as `from elsjax.provenance import Provenance, sample_provenance` (through sys.modules).
from elsjax.provenance import provenance  # noqa: E402  (after the layers it sits on)

__all__ = [
    "score", "sample", "make_mesh", "provenance", "machines", "noise", "patches", "posterior", "sampler", "scales", "seeds", "sharding",
]  # fmt: skip
__version__ = "0.1.0"
