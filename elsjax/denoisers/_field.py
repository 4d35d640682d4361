"""What the field's denoisers (Wiener, PCA-locality, nearest, sCFDM, PSPC, GoldDiff) share: knob checks and the
Gaussian fitted to a training set, cached per training set (and so per class) (docs/maths.md §12), also when the
set is split over several processes (:func:`gaussian_fit_of_processes`)."""

from __future__ import annotations

import collections
import math
import threading
from typing import NamedTuple

import jax
import numpy as np

from elsjax import dictcache, sharding

__all__ = [
    "no_mesh", "number", "count", "prng_key", "GaussianFit", "gaussian_fit", "FIT_CACHE_SIZE", "no_provenance",
    "Moments", "moments", "merge_moments", "fit_moments", "gaussian_fit_of_processes",
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
# Fits of training sets split over processes, keyed by every process's digest. A cache of their own: its hits and
# evictions follow only the calls of gaussian_fit_of_processes, which every process makes with the same keys, so
# every process hits or misses together (a miss runs collectives that all processes must join).
_PROCESS_FITS: collections.OrderedDict[str, GaussianFit] = collections.OrderedDict()
_FITS_LOCK = threading.Lock()


def _cached(cache: collections.OrderedDict, key: str, compute) -> GaussianFit:
    """``cache[key]``, else ``compute()`` kept under ``key`` (least recently used out beyond FIT_CACHE_SIZE)."""
    with _FITS_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    fit = compute()
    with _FITS_LOCK:
        cache[key] = fit
        while len(cache) > FIT_CACHE_SIZE:
            cache.popitem(last=False)
    return fit


def gaussian_fit(images) -> GaussianFit:
    """The :class:`GaussianFit` of training images ``[N, H, W, C]``, computed once per distinct set (an LRU cache
    of :data:`FIT_CACHE_SIZE` sets, keyed by the images' digest).

    The eigendecomposition runs on the host in float64: an SVD of the centred images when ``N <= D`` (cost
    ``N^2 D``), else ``eigh`` of the ``D x D`` covariance.
    """
    images = np.asarray(images, np.float32)
    return _cached(_FITS, dictcache.digest(images), lambda: _fit_images(images))


def _fit_images(images: np.ndarray) -> GaussianFit:
    n = images.shape[0]
    flat = images.reshape(n, -1).astype(np.float64)
    mean = flat.mean(axis=0)
    centred = flat - mean
    variance = np.einsum("nd,nd->d", centred, centred) / n
    if n <= flat.shape[1]:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        return _kept(mean, variance, s * s / n, vt.T)
    return _fit_scatter(mean, variance, centred.T @ centred, n)


def _fit_scatter(mean, variance, scatter, n: int) -> GaussianFit:
    """The fit from the scatter matrix (the sum of centred outer products): ``eigh`` of the covariance."""
    values, vectors = np.linalg.eigh(scatter / n)
    return _kept(mean, variance, values[::-1], vectors[:, ::-1])


def _kept(mean, variance, values, vectors) -> GaussianFit:
    """The fit with the eigenvalues (descending) that are zero to float64 rounding dropped."""
    keep = values > max(float(values.max(initial=0.0)), 1e-300) * mean.shape[0] * np.finfo(np.float64).eps * 16
    return GaussianFit(mean, values[keep].copy(), np.ascontiguousarray(vectors[:, keep]), variance)


class Moments(NamedTuple):
    """The sufficient statistics of a set of images for its Gaussian fit, float64 (host).

    Attributes:
      count: the number of images ``N`` (an int64 scalar).
      mean: ``[D]`` their mean, flattened in (row, column, channel) order (zeros for no images).
      scatter: ``[D, D]`` the sum over the images of ``(x - mean)(x - mean)^T`` (``N`` times the covariance).
    """

    count: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray


def moments(images) -> Moments:
    """The :class:`Moments` of images ``[N, H, W, C]`` (read as float32, as :func:`gaussian_fit` reads them)."""
    images = np.asarray(images, np.float32)
    flat = images.reshape(images.shape[0], math.prod(images.shape[1:])).astype(np.float64)
    mean = flat.mean(axis=0) if len(flat) else np.zeros(flat.shape[1])
    centred = flat - mean
    return Moments(np.int64(len(flat)), mean, centred.T @ centred)


def merge_moments(shares: Moments) -> Moments:
    """The moments of the union of disjoint sets from theirs (each field with a leading axis of sets: ``count [P]``,
    ``mean [P, D]``, ``scatter [P, D, D]``), exactly, by Chan et al.'s pairwise formula::

        N = sum_p n_p,   mean = sum_p n_p mean_p / N,   M2 = sum_p M2_p + sum_p n_p (mean_p - mean)(mean_p - mean)^T

    A pixel that every set holds constant at the same value gets a zero row and column of ``M2``, so its variance
    is exactly 0, as in the fit of the union itself (the masks of PCA-locality tell varying pixels by ``> 0``).

    Example:
      >>> x = np.arange(12.0).reshape(6, 2, 1, 1)
      >>> part = lambda a: moments(x[a])
      >>> merged = merge_moments(Moments(*map(np.stack, zip(part(slice(0, 2)), part(slice(2, 6))))))
      >>> int(merged.count), merged.mean.tolist(), (merged.scatter / 6).tolist()
      (6, [5.0, 6.0], [[11.666666666666666, 11.666666666666666], [11.666666666666666, 11.666666666666666]])
    """
    held = np.asarray(shares.count) > 0  # an empty share has no mean
    counts, means, scatters = np.asarray(shares.count, np.int64)[held], shares.mean[held], shares.scatter[held]
    n = int(counts.sum())
    mean = (counts[:, None] * means).sum(axis=0) / n
    offsets = means - mean  # [P, D]
    scatter = scatters.sum(axis=0) + (counts[:, None] * offsets).T @ offsets
    # Exact already when each share's mean of a constant pixel is the constant; kept exact whatever the rounding.
    constant = np.all((np.diagonal(scatters, axis1=1, axis2=2) == 0) & (means == means[:1]), axis=0)
    scatter[constant] = 0.0
    scatter[:, constant] = 0.0
    return Moments(np.int64(n), mean, scatter)


def fit_moments(m: Moments) -> GaussianFit:
    """The :class:`GaussianFit` of a set from its :class:`Moments`: ``eigh`` of the ``D x D`` covariance, as
    :func:`gaussian_fit` for ``N > D``."""
    n = int(m.count)
    return _fit_scatter(m.mean, np.diagonal(m.scatter) / n, m.scatter, n)


def gaussian_fit_of_processes(images) -> GaussianFit:
    """The :class:`GaussianFit` of the training set whose share ``images`` this process holds, every process
    holding one (:func:`elsjax.sharding.local_share`): each process's :class:`Moments`, gathered from every process
    and merged (:func:`merge_moments`). Every process must call it, each with its own images (of the same height, width and channels).

    With one process this is :func:`gaussian_fit` itself. With several, the fit is cached (an LRU cache of
    :data:`FIT_CACHE_SIZE`) under every process's digest of its share.
    """
    if jax.process_count() == 1:
        return gaussian_fit(images)
    images = np.asarray(images, np.float32)
    digests = sharding.allgather(np.frombuffer(bytes.fromhex(dictcache.digest(images)), np.uint8))
    merged = lambda: fit_moments(merge_moments(sharding.allgather(moments(images))))
    return _cached(_PROCESS_FITS, digests.tobytes().hex(), merged)
