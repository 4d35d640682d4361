"""Per-sample agreement between two batches of images (docs/maths.md §8.2): Pearson r, r^2, R^2 and the mean squared error.

Every metric treats each image pair as two vectors of all its ``C * H * W`` values and returns one number per pair,
``[B]`` float64, computed on the host in float64 whatever the input dtype:

* :func:`pearson_r`: ``r = sum(a' b') / sqrt(sum(a'^2) sum(b'^2))`` with ``a' = a - mean(a)``: what the paper's
  tables report (their "median r^2" column is, almost certainly, the median of this r; docs/maths.md §8.2, 8.11);
* :func:`r_squared`: ``r ** 2``;
* :func:`determination`: the coefficient of determination of ``pred`` predicting ``target``,
  ``R^2 = 1 - sum((target - pred)^2) / sum((target - mean(target))^2)`` (not symmetric; at most 1, can be negative);
* :func:`studio_r2`: R^2 as analytic-diffusion-studio and GoldDiff define it (the unbiased variance of the target);
* :func:`mse`: ``mean((pred - target)^2)``.

:func:`per_step` applies any of them at every step of two trajectories.

A constant image has no correlation: r (and r^2) is NaN when either image of a pair is constant, and R^2 is NaN
when the target is constant. NaN is returned silently (no warning, no error). NaN pixels propagate (NaN metrics); nothing raises on
values, only on shapes and dtypes.

Example:
    >>> import numpy as np
    >>> from elsjax import metrics
    >>> a = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1)
    >>> m = metrics.compare(a, 2 * a + 1)
    >>> sorted(m), m["r"].tolist(), m["R2"].round(3).tolist()
    (['R2', 'mse', 'r', 'r2'], [1.0, 1.0], [-0.5, -7.7])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "pearson_r", "r_squared", "determination", "studio_r2", "per_step", "mse", "compare", "KEYS", "Interval",
    "bootstrap_median", "paired_median_difference",
]  # fmt: skip

KEYS = ("r", "r2", "R2", "mse")


def _pairs(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 ``[B, D]`` (D = all values of one image); ValueError naming the argument otherwise."""
    arrays = []
    for name, value in (("pred", pred), ("target", target)):
        try:
            arr = np.asarray(value)
        except Exception as err:  # ragged lists and the like
            raise ValueError(f"{name}: cannot be converted to an array ({err})") from None
        if arr.ndim < 2:
            raise ValueError(f"{name}: expected a batch of images [B, H, W, C], got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
        arrays.append(arr)
    pred, target = arrays
    if pred.shape != target.shape:
        raise ValueError(f"target: shape {target.shape} does not match pred's {pred.shape}")
    if pred.size == 0:
        raise ValueError(f"pred: empty array of shape {pred.shape}")
    n = pred.shape[0]
    return pred.reshape(n, -1).astype(np.float64), target.reshape(n, -1).astype(np.float64)


def _constant(v: np.ndarray) -> np.ndarray:
    # Exact test: the float64 mean of identical values need not equal them, so centring alone could leave a
    # tiny non-zero spread (and a meaningless r) instead of NaN.
    return v.max(axis=1) == v.min(axis=1)


def pearson_r(pred, target) -> np.ndarray:
    """Pearson correlation of each image pair over all its values, ``[B]`` float64 (NaN if either is constant).

    Args:
      pred: images ``[B, H, W, C]`` (any shape with the batch first).
      target: images of the same shape.

    Example:
      >>> import numpy as np
      >>> pearson_r(np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 3.0, 2.0]])).tolist()
      [0.5]
    """
    a, b = _pairs(pred, target)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        # sqrt of the product (not the product of square roots): r(a, a) is exactly 1.
        r = np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    r = np.clip(r, -1.0, 1.0)
    r[_constant(a) | _constant(b)] = np.nan
    return r


def r_squared(pred, target) -> np.ndarray:
    """The squared Pearson correlation ``r ** 2``, ``[B]`` float64 (NaN if either image is constant).

    Example:
      >>> import numpy as np
      >>> r_squared(np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 3.0, 2.0]])).tolist()
      [0.25]
    """
    return pearson_r(pred, target) ** 2


def determination(pred, target) -> np.ndarray:
    """Coefficient of determination of ``pred`` predicting ``target``, ``1 - SS_res / SS_tot``, ``[B]`` float64.

    ``SS_res = sum((target - pred)^2)`` and ``SS_tot = sum((target - mean(target))^2)`` over all values of the
    image. It equals 1 only when ``pred == target``, can be negative, and is NaN when the target is constant.

    Example:
      >>> import numpy as np
      >>> determination(np.array([[1.0, 2.0, 4.0]]), np.array([[1.0, 2.0, 3.0]])).tolist()
      [0.5]
    """
    p, t = _pairs(pred, target)
    ss_res = np.sum((t - p) ** 2, axis=1)
    ss_tot = np.sum((t - t.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 - ss_res / ss_tot
    out[_constant(t)] = np.nan
    return out


def studio_r2(pred, target) -> np.ndarray:
    """R^2 as analytic-diffusion-studio and GoldDiff report it, ``[B]`` float64 (docs/maths.md §12.9).

    ``1 - SS_res / (D * var(target))`` with the unbiased variance (``ddof = 1``) over the ``D`` values of the
    target image: ``SS_tot`` is scaled by ``D / (D - 1)``, so it is slightly above :func:`determination`
    (``1 - (1 - R^2) (D - 1) / D``). A constant target gives NaN here (the studio divides by ``D`` instead).

    Example:
      >>> import numpy as np
      >>> pred, target = np.array([[1.0, 2.0, 4.0]]), np.array([[1.0, 2.0, 3.0]])
      >>> studio_r2(pred, target).round(4).tolist(), determination(pred, target).tolist()   # 1 - 0.5 * 2 / 3
      ([0.6667], [0.5])
    """
    p, t = _pairs(pred, target)
    d = t.shape[1]
    ss_res = np.sum((t - p) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.var(t, axis=1, ddof=1) if d > 1 else np.full(t.shape[0], np.nan)
        out = 1.0 - ss_res / (d * var)
    out[_constant(t)] = np.nan
    return out


def per_step(metric, pred, target) -> np.ndarray:
    """A metric at every step of two trajectories ``[steps, B, H, W, C]``: ``[steps, B]`` float64.

    ``metric`` is any of this module's per-pair functions (:func:`pearson_r`, :func:`studio_r2`, :func:`mse`, ...).

    Example:
      >>> import numpy as np
      >>> x = np.random.default_rng(0).normal(size=(3, 2, 4, 4, 1))
      >>> per_step(pearson_r, x, 2 * x).shape
      (3, 2)
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape or pred.ndim < 3:
        raise ValueError(
            f"target: expected two trajectories [steps, B, ...] of one shape, got {pred.shape}, {target.shape}"
        )
    return np.stack([metric(p, t) for p, t in zip(pred, target)])


def mse(pred, target) -> np.ndarray:
    """Mean squared difference over all values of each image pair, ``[B]`` float64.

    Example:
      >>> import numpy as np
      >>> mse(np.zeros((1, 2, 2, 1)), np.ones((1, 2, 2, 1))).tolist()
      [1.0]
    """
    p, t = _pairs(pred, target)
    return np.mean((p - t) ** 2, axis=1)


def compare(pred, target) -> dict[str, np.ndarray]:
    """All metrics of :data:`KEYS` at once: ``{"r", "r2", "R2", "mse"}``, each ``[B]`` float64.

    Args:
      pred: the predicting images ``[B, H, W, C]`` (e.g. a machine's samples).
      target: the predicted images, same shape (e.g. the network's samples from the same seeds).

    Raises:
      ValueError: shapes differ, fewer than 2 dimensions, an empty or non-numeric array.

    Example:
      >>> import numpy as np
      >>> x = np.random.default_rng(0).normal(size=(3, 4, 4, 1))
      >>> m = compare(x, x)
      >>> m["r"].tolist(), m["R2"].tolist(), m["mse"].tolist()
      ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """
    r = pearson_r(pred, target)
    return {"r": r, "r2": r**2, "R2": determination(pred, target), "mse": mse(pred, target)}


class Interval(NamedTuple):
    """A statistic with its bootstrap spread: the value, the ``level`` percentile interval and the standard deviation."""

    value: float
    low: float
    high: float
    sd: float


def bootstrap_median(values, *, seed: int, n_resamples: int = 20_000, level: float = 0.95) -> Interval:
    """The median of ``values`` with its seed-bootstrap interval: the median of ``n_resamples`` resamples drawn with
    replacement (NumPy's PCG64 from ``seed``), their ``level`` percentile interval and their standard deviation.

    NaN values (an undefined r) are dropped first, as the evaluation's medians drop them. The interval measures the
    noise of the evaluation seeds only: it says nothing of another training run of the same net.

    Raises:
      ValueError: no finite value, or ``level`` outside (0, 1).

    Example:
      >>> v = bootstrap_median([0.1, 0.5, 0.9, 0.7, 0.3], seed=0, n_resamples=2000)
      >>> v.value, v.low <= v.value <= v.high
      (0.5, True)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("values: no finite value to take a median of")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a fraction in (0, 1), got {level}")
    draws = np.random.default_rng(seed).integers(0, x.size, size=(n_resamples, x.size))
    medians = np.median(x[draws], axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(medians, [tail, 1 - tail])
    return Interval(float(np.median(x)), float(low), float(high), float(np.std(medians)))


def paired_median_difference(a, b, *, seed: int, n_resamples: int = 20_000, level: float = 0.95) -> Interval:
    """``median(a) - median(b)`` over the seeds where both are finite, with a paired seed bootstrap: each resample
    draws the same seeds for both, as two machines (or two calibrations) sampled from the same seeds.

    Example:
      >>> d = paired_median_difference([0.6, 0.7, 0.8, 0.9], [0.5, 0.6, 0.7, 0.8], seed=0, n_resamples=2000)
      >>> round(d.value, 12), round(d.high - d.low, 12)
      (0.1, 0.0)
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a, b: expected values for the same seeds, got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        raise ValueError("a, b: no seed where both are finite")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a fraction in (0, 1), got {level}")
    a, b = a[ok], b[ok]
    draws = np.random.default_rng(seed).integers(0, a.size, size=(n_resamples, a.size))
    differences = np.median(a[draws], axis=1) - np.median(b[draws], axis=1)
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(np.median(a) - np.median(b)), float(low), float(high), float(differences.std()))
