"""Coarse-to-fine subset retrieval for the IS posterior, after GoldDiff (docs/maths.md §12.6): approximate, opt-in.

IS's posterior concentrates on fewer and fewer training images as the noise falls. Instead of scanning the whole
set exactly, each image's posterior is formed over a "golden subset":

1. **coarse**: every training image is ranked by its distance to ``x`` at ``pool x pool`` average-pooled
   resolution, ``pool^2 ||P x - a P phi_n||^2``, a lower bound of the exact distance (average pooling is an
   orthogonal projection, scaled), at ``1 / pool^2`` of the exact cost;
2. **fine**: the ``subset`` best-ranked images get their exact logits ``-||x - a phi_n||^2 / (2 b^2)``;
3. **tail**: ``tail`` images drawn uniformly from the rest, with the log-weight ``log((N - subset) / tail)``, stand
   for the images outside the subset (an importance-weighted estimate of the tail of the softmax, as in
   Scarvelis et al.'s DEANN estimator). They are drawn from an explicit ``key`` once per build: the same draws at
   every call and for every image of a batch, so results are deterministic given the key.

The posterior mean is the softmax over subset and tail. With ``subset >= N`` it is IS exactly (no key needed).
The posterior is broad at high noise, where the subset's error is largest: ``exact_above = t0`` scans the whole set
exactly whenever a batch holds a time above ``t0`` (the time-aware part: small subsets only where they suffice).
Its error against exact IS and its speed-up at every t are measured by ``experiments/bench_retrieval.py``.

Example:
    >>> import jax, numpy as np
    >>> from elsjax import denoisers
    >>> train = np.random.default_rng(0).uniform(-1, 1, (30, 8, 8, 1)).astype(np.float32)
    >>> d = denoisers.build("golddiff", train, subset=8, tail=4, key=jax.random.key(0))
    >>> d.denoise(np.zeros((2, 8, 8, 1), np.float32), 0.5).shape
    (2, 8, 8, 1)
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import noise, posterior
from elsjax.denoisers._base import Denoiser, register, static
from elsjax.denoisers._field import count, no_mesh, number, prng_key

__all__ = ["GoldenSubset", "DEFAULT_SUBSET", "DEFAULT_TAIL", "DEFAULT_POOL", "pooled"]

DEFAULT_SUBSET = 256
DEFAULT_TAIL = 64
DEFAULT_POOL = 4


def pooled(images, pool: int):
    """``[B, H, W, C]`` average-pooled by ``pool x pool`` and flattened: ``[B, H W C / pool^2]``."""
    b, h, w, c = images.shape
    return images.reshape(b, h // pool, pool, w // pool, pool, c).mean(axis=(2, 4)).reshape(b, -1)


def _softmax(logits):
    """Softmax over the last axis, written out (the maximum is subtracted explicitly before the exponential)."""
    shifted = logits - lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    p = jnp.exp(shifted)
    return p / jnp.sum(p, axis=-1, keepdims=True)


@register("golddiff")
@dataclasses.dataclass(frozen=True)
class GoldenSubset(Denoiser):
    """IS over a coarse-to-fine retrieved subset of the training images, plus a weighted random tail.

    Knobs: ``subset`` (exact candidates per image, default 256), ``tail`` (random stand-ins for the rest, default
    64), ``pool`` (the coarse stage's pooling factor, dividing H and W, default 4), ``key`` (a JAX PRNG key or an
    int seed; required when the tail is used), ``exact_above`` (a time in [0, 1] above which the whole set is
    scanned exactly; default None: never).
    """

    images: jax.Array  # [N, D] float32
    norms: jax.Array  # [N] float32, ||phi_n||^2 (float64 sums), for the exact scan
    coarse: jax.Array  # [N, D / pool^2] float32, pooled images
    coarse_norms: jax.Array  # [N] float32
    draws: jax.Array  # [N] float32 uniform draws that pick the tail (None without a tail)
    subset: int = static()
    tail: int = static()
    pool: int = static()
    image_shape: tuple[int, int, int] = static()
    exact_above: float | None = static(default=None)

    takes_k = False
    knobs = ("subset", "tail", "pool", "key", "exact_above")

    @classmethod
    def build(cls, images, k=None, *, subset=DEFAULT_SUBSET, tail=DEFAULT_TAIL, pool=DEFAULT_POOL, key=None,
              exact_above=None, mesh=None, **options) -> GoldenSubset:  # fmt: skip
        no_mesh(cls.name, mesh)
        if exact_above is not None and number("exact_above", exact_above) > 1.0:
            raise ValueError(f"exact_above: expected a time in [0, 1] or None, got {exact_above!r}")
        n, h, w, _ = images.shape
        subset = min(count("subset", subset, 1), n)
        tail = min(count("tail", tail, 0), n - subset)
        pool = count("pool", pool, 1)
        if h % pool or w % pool:
            raise ValueError(f"pool: must divide the image height and width ({h} x {w}), got {pool}")
        draws = None
        if tail:
            key = prng_key(cls.name, key, "draws a random tail (tail > 0)")
            draws = jax.random.uniform(key, (n,), jnp.float32)
        images = np.asarray(images, np.float32)
        flat = images.reshape(n, -1)
        small = np.asarray(pooled(images, pool), np.float32)
        sq = lambda v: np.einsum("nd,nd->n", v, v, dtype=np.float64).astype(np.float32)
        put = jnp.asarray
        shape = tuple(images.shape[1:])
        exact_above = None if exact_above is None else float(exact_above)
        return cls(put(flat), put(sq(flat)), put(small), put(sq(small)), draws, subset, tail, pool, shape, exact_above)

    def posterior_mean(self, x, t):
        if self.exact_above is None:
            return self._retrieved(x, t)
        return lax.cond(jnp.max(t) > self.exact_above, self._exact, self._retrieved, x, t)

    def _exact(self, x, t):
        """IS over the whole set (expanded logits, one product: used at high noise, where they are small)."""
        a, b = noise.signal_noise_std(t)
        inv_var = 1.0 / (b * b)
        dots = jnp.matmul(x.reshape(x.shape[0], -1), self.images.T, precision=lax.Precision.HIGHEST)
        logits = (a * inv_var)[:, None] * dots - (0.5 * a * a * inv_var)[:, None] * self.norms[None]
        weights = _softmax(logits)
        return jnp.matmul(weights, self.images, precision=posterior.PRECISION).reshape(x.shape)

    def _retrieved(self, x, t):
        a, b = noise.signal_noise_std(t)
        n_img = x.shape[0]
        n = self.images.shape[0]
        hp = lax.Precision.HIGHEST
        # Coarse: rank by the pooled distance, up to terms that do not depend on the training image.
        proxy = a[:, None] * jnp.matmul(pooled(x, self.pool), self.coarse.T, precision=hp)
        proxy = proxy - 0.5 * (a * a)[:, None] * self.coarse_norms[None]
        _, chosen = lax.top_k(proxy, self.subset)  # [B, subset]
        log_w = jnp.zeros((n_img, self.subset), jnp.float32)
        if self.tail:
            rest = jnp.broadcast_to(self.draws[None], (n_img, n)).at[jnp.arange(n_img)[:, None], chosen].set(-1.0)
            _, drawn = lax.top_k(rest, self.tail)  # uniform without replacement among the others
            chosen = jnp.concatenate([chosen, drawn], axis=1)
            weight = math.log((n - self.subset) / self.tail)
            log_w = jnp.concatenate([log_w, jnp.full((n_img, self.tail), weight, jnp.float32)], axis=1)
        # Fine: exact logits of the chosen images (differences, no expansion).
        phi = self.images[chosen]  # [B, M, D]
        diff = x.reshape(n_img, 1, -1) - a[:, None, None] * phi
        dist = jnp.sum(diff * diff, axis=-1)
        # Relative to the nearest candidate, so that no logit is huge at small t (XLA's fused softmax turned logits
        # of -1e11 into NaN on CPU).
        logits = -(dist - jnp.min(dist, axis=-1, keepdims=True)) * (0.5 / (b * b))[:, None] + log_w
        weights = _softmax(logits)
        return jnp.einsum("bm,bmd->bd", weights, phi, precision=posterior.PRECISION).reshape(x.shape)

    @classmethod
    def memory_bound(cls, shape, k, itemsize: int) -> int:
        n, h, w, c = shape
        return n * (h * w * c * 4 + 16)
