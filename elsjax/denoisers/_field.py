"""What the field's denoisers (Wiener, PCA-locality, nearest, sCFDM, PSPC, GoldDiff) share: knob checks and the
Gaussian fitted to a training set, cached per training set (and so per class) (docs/maths.md §12)."""

from __future__ import annotations

import collections
import math
import threading
from typing import NamedTuple

import jax
import numpy as np

from elsjax import dictcache

__all__ = [
    "no_mesh", "number", "count", "prng_key", "GaussianFit", "gaussian_fit", "FIT_CACHE_SIZE", "no_provenance",
]  # fmt: skip


def no_mesh(name: str, mesh) -> None:
    """For a denoiser that runs on one device (Wiener, sCFDM, GoldDiff): a one-line ValueError for a mesh."""
    if mesh is not None:
        raise ValueError(f"mesh: the {name!r} denoiser runs on one device; build it without a mesh")


def number(knob: str, value, minimum: float = 0.0) -> float:
    """A finite real number >= ``minimum`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{knob}: expected a number >= {minimum:g}, got {value!r}")
    if not math.isfinite(float(value)) or float(value) < minimum:
        raise ValueError(f"{knob}: expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def count(knob: str, value, minimum: int = 0) -> int:
    """An integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{knob}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def prng_key(name: str, key, why: str):
    """A JAX PRNG key from ``key`` (a key array, or an int seed); a one-line ValueError naming ``why`` for None."""
    if key is None:
        raise ValueError(f"key: the {name!r} denoiser {why}; pass key=jax.random.key(seed) (or an int seed)")
    if isinstance(key, bool):
        raise ValueError(f"key: expected a JAX PRNG key or an int seed, got {key!r}")
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    try:
        key = jax.numpy.asarray(key)
    except TypeError:
        raise ValueError(f"key: expected a JAX PRNG key or an int seed, got {key!r}") from None
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if key.dtype == np.uint32 and key.shape == (2,):  # a raw jax.random.PRNGKey
        return jax.random.wrap_key_data(key)
    raise ValueError(f"key: expected a JAX PRNG key or an int seed, got an array of shape {key.shape} ({key.dtype})")


def no_provenance(name: str):
    return ValueError(f"denoiser {name!r} has no provenance (no single posterior over a dictionary per pixel)")


class GaussianFit(NamedTuple):
    """The Gaussian fitted to training images (maximum likelihood: the covariance divides by N), float64, host.

    Attributes:
      mean: ``[D]`` the mean image, flattened in (row, column, channel) order.
      eigenvalues: ``[r]`` the positive eigenvalues of the covariance, descending (``r <= min(N - 1, D)``; the
        others are zero to float64 rounding and are dropped: they contribute nothing to a Wiener filter).
      eigenvectors: ``[D, r]`` the matching orthonormal eigenvectors (columns).
      variance: ``[D]`` the diagonal of the covariance (0 exactly for a pixel that is constant over the set).
    """

    mean: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    variance: np.ndarray


# Fits kept per training set (and so per class): an eigendecomposition of a 3072 x 3072 covariance takes seconds.
FIT_CACHE_SIZE = 8
_FITS: collections.OrderedDict[str, GaussianFit] = collections.OrderedDict()
_FITS_LOCK = threading.Lock()


def gaussian_fit(images) -> GaussianFit:
    """The :class:`GaussianFit` of training images ``[N, H, W, C]``, computed once per distinct set (an LRU cache
    of :data:`FIT_CACHE_SIZE` sets, keyed by the images' digest).

    The eigendecomposition runs on the host in float64: an SVD of the centred images when ``N <= D`` (cost
    ``N^2 D``), else ``eigh`` of the ``D x D`` covariance.
    """
    images = np.asarray(images, np.float32)
    key = dictcache.digest(images)
    with _FITS_LOCK:
        if key in _FITS:
            _FITS.move_to_end(key)
            return _FITS[key]
    n = images.shape[0]
    flat = images.reshape(n, -1).astype(np.float64)
    mean = flat.mean(axis=0)
    centred = flat - mean
    variance = np.einsum("nd,nd->d", centred, centred) / n
    if n <= flat.shape[1]:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        values, vectors = s * s / n, vt.T
    else:
        values, vectors = np.linalg.eigh(centred.T @ centred / n)
        values, vectors = values[::-1], vectors[:, ::-1]
    keep = values > max(float(values.max(initial=0.0)), 1e-300) * flat.shape[1] * np.finfo(np.float64).eps * 16
    fit = GaussianFit(mean, values[keep].copy(), np.ascontiguousarray(vectors[:, keep]), variance)
    with _FITS_LOCK:
        _FITS[key] = fit
        while len(_FITS) > FIT_CACHE_SIZE:
            _FITS.popitem(last=False)
    return fit
