"""elsjax: analytic, training-free diffusion models (equivariant local score machines) in JAX.

The entry points are :func:`score`, :func:`sample` and :func:`explain` (patch provenance), which take any
registered denoiser by name (:mod:`elsjax.denoisers`: ``register``, ``names``). The core underneath, each layer
using only those before it: :mod:`elsjax.noise` -> :mod:`elsjax.patches` -> :mod:`elsjax.posterior` (one streaming
kernel, its accumulators) -> :mod:`elsjax.denoisers` (the registry) -> :mod:`elsjax.sampler` -> calibration,
metrics, evaluation and :mod:`elsjax.provenance`, with :mod:`elsjax.sharding` (meshes, processes) and
:mod:`elsjax.shardedkernel` wrapping the kernel. The lab (data, runs, jobs, sweeps, figures, the command line) sits
on top; README.md draws the map.
"""

from elsjax import denoisers, noise, patches, posterior, provenance, sampler, scales, seeds, sharding
from elsjax.api import make_mesh, sample, score
from elsjax.denoisers import Denoiser, register
from elsjax.provenance import explain, sample_provenance

__all__ = [
    "score", "sample", "explain", "sample_provenance", "make_mesh", "Denoiser", "register", "denoisers", "noise",
    "patches", "posterior", "provenance", "sampler", "scales", "seeds", "sharding",
]  # fmt: skip
__version__ = "0.1.0"
