"""The seeds every job starts from: Gaussian noise and a class per seed, both functions of one integer.

Sampling, training previews, calibration and evaluation all draw their starting noise the same way, so that
the same ``seed`` gives the same images in every job (the machine and the net of an evaluation start from
identical noise):

* noise: ``jax.random.normal(jax.random.key(seed), (n, H, W, C), float32)``;
* classes: seed ``i`` gets class ``i mod num_classes`` (or one fixed class). The reference draws a uniform
  random class per seed; cycling gives the same distribution over any multiple of ``num_classes`` seeds, a
  balanced set over fewer, and lets a class-conditional job build each class's dictionaries once.

Example:
    >>> from elsjax import seeds
    >>> seeds.noise(0, 2, (4, 4, 1)).shape
    (2, 4, 4, 1)
    >>> seeds.classes(5, 3).tolist(), seeds.classes(2, 10, label=7).tolist()
    ([0, 1, 2, 0, 1], [7, 7])
"""

from __future__ import annotations

import numpy as np

__all__ = ["noise", "classes", "describe"]


def noise(seed: int, n: int, image_shape) -> np.ndarray:
    """``n`` standard normal seeds from ``jax.random.key(seed)``, float32 ``[n, *image_shape]``."""
    import jax

    return np.asarray(jax.random.normal(jax.random.key(seed), (n, *image_shape), jax.numpy.float32))


def classes(n: int, num_classes: int, *, label: int = -1) -> np.ndarray:
    """The class of each of ``n`` seeds: ``label`` for all, or (``label = -1``) seed i gets ``i mod num_classes``."""
    if label >= 0:
        return np.full(n, label, np.int32)
    return (np.arange(n) % num_classes).astype(np.int32)


def describe(seed: int, shape) -> dict:
    """What a record says about seeds drawn by :func:`noise` (enough to draw them again)."""
    import jax

    return {
        "prng": f"jax.random.normal(jax.random.key({seed}), {list(shape)}, float32)",
        "prng_impl": str(jax.config.jax_default_prng_impl),
    }
