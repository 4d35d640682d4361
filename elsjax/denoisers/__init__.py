"""Training-free denoisers behind one interface, by name: a denoiser is one class and one :func:`register`.

Registered here: ``"ideal"`` (:class:`Ideal`, IS), ``"ls"`` (:class:`Local`, LS), ``"els"``
(:class:`EquivariantLocal`, ELS) and ``"bbels"`` (:class:`BoundaryBroken`, bbELS), the machines of docs/maths.md
§4; and the field's other training-free denoisers (docs/maths.md §12): ``"wiener"`` (:class:`Wiener`),
``"pca_locality"`` (:class:`PCALocality`), ``"nearest"`` (:class:`Nearest`), ``"scfdm"`` (:class:`SmoothedCFDM`),
``"pspc"`` (:class:`PatchSetComposite`) and the approximate ``"golddiff"`` (:class:`GoldenSubset`). Every
registered name works in :func:`elsjax.score`, :func:`elsjax.sample`, the calibration, the evaluation, the sweeps
and the command line.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from elsjax import denoisers
    >>> train = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1), minval=-1, maxval=1)
    >>> m = denoisers.build("els", train, k=3)
    >>> x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    >>> m.score(x, jnp.array([0.5, 0.9])).shape
    (2, 8, 8, 1)
    >>> m.score(x, 0.5).shape                       # a scalar t applies to every image
    (2, 8, 8, 1)
    >>> denoisers.names()[:4]
    ('ideal', 'ls', 'els', 'bbels')
"""

from elsjax.denoisers._base import Denoiser, Located, Posterior, build, get, names, register, static, unregister
from elsjax.denoisers._tables import DictionaryDenoiser
from elsjax.denoisers.ideal import Ideal
from elsjax.denoisers.local import Local
from elsjax.denoisers.patch import BoundaryBroken, EquivariantLocal, PatchDenoiser

# isort: split
# The field's denoisers, registered after the four machines (names() keeps that order).
from elsjax.denoisers.golddiff import GoldenSubset
from elsjax.denoisers.nearest import Nearest
from elsjax.denoisers.pca_locality import PCALocality
from elsjax.denoisers.pspc import PatchSetComposite
from elsjax.denoisers.scfdm import SmoothedCFDM
from elsjax.denoisers.wiener import Wiener

__all__ = [
    "Denoiser", "DictionaryDenoiser", "PatchDenoiser", "Posterior", "Located", "register", "unregister", "get", "names", "build",
    "static", "Ideal", "Local", "EquivariantLocal", "BoundaryBroken", "Wiener", "PCALocality", "Nearest",
    "SmoothedCFDM", "PatchSetComposite", "GoldenSubset",
]  # fmt: skip
