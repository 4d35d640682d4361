"""The stable public entry points :func:`score` and :func:`sample`, with input validation and class conditioning.

Arrays are NHWC float32, training images in [-1, 1]. Class conditioning restricts the dictionary to the training
images of the requested class (SPEC 1); seeds with different classes are grouped, each group run once with its
class's dictionaries, and the results put back in the caller's order.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from elsjax import machines, sampler

__all__ = ["score", "sample"]


def score(kind: str, x, t, *, train, k: int | None = None, labels=None, y=None, chunk_size: int | None = None):
    """The score of a machine at a batch of noisy images.

    Args:
      kind: ``"ideal"``, ``"ls"``, ``"els"`` or ``"bbels"``.
      x: noisy images ``[B, H, W, C]``.
      t: time in (0, 1], a float or one per image ``[B]``.
      train: training images ``[N, H, W, C]`` in [-1, 1].
      k: odd patch size >= 3 (not used by ``"ideal"``).
      labels: training labels ``[N]`` (needed for ``y``).
      y: class per image ``[B]``, or None for the unconditional machine.
      chunk_size: dictionary entries per streamed chunk (default per machine).

    Returns:
      The score ``[B, H, W, C]``.

    Example:
      >>> import numpy as np, elsjax
      >>> rng = np.random.default_rng(0)
      >>> train = rng.uniform(-1, 1, (6, 9, 9, 1)).astype(np.float32)
      >>> x = rng.normal(size=(2, 9, 9, 1)).astype(np.float32)
      >>> elsjax.score("bbels", x, 0.5, train=train, k=3).shape
      (2, 9, 9, 1)
    """
    kind = _check_kind(kind)
    train = _check_train(train)
    x = _check_images("x", x, train.shape[1:])
    t = _check_times(t, x.shape[0])
    k = _check_k("k", k, kind, train.shape[1:3])
    groups = _class_groups(x.shape[0], train, labels, y)
    out = np.empty(x.shape, np.float32)
    for index, images in groups:
        machine = machines.build(kind, images, k, chunk_size=chunk_size)
        out[index] = np.asarray(machines.score(machine, jnp.asarray(x[index]), jnp.asarray(t[index])))
    return out


def sample(
    kind: str,
    seeds,
    *,
    train,
    scales: Sequence[int],
    labels=None,
    y=None,
    convention: str = "reference",
    chunk_size: int | None = None,
    progress=None,
    keep_bytes: int | None = None,
):
    """Samples from a machine on the reference grid: 19 DDIM steps from t = 0.95 to the clean output.

    Args:
      kind: ``"ideal"``, ``"ls"``, ``"els"`` or ``"bbels"``.
      seeds: ``[B, H, W, C]`` starting noise (treated as x at t = 0.95, as the reference does).
      train: training images ``[N, H, W, C]`` in [-1, 1].
      scales: the k schedule, a sequence of n odd ints (n = 20 in the paper; see SPEC 5).
      labels: training labels ``[N]`` (needed for ``y``).
      y: class per seed ``[B]``, or None.
      convention: ``"reference"`` uses ``scales[i]`` at t = i/n (the authors' sampler); ``"corrected"`` uses
        ``scales[i - 1]`` (the index the calibration meant).
      chunk_size: dictionary entries per streamed chunk (default per machine).
      progress: optional callback, see :func:`elsjax.sampler.sample_machine` (called once per class group).
      keep_bytes: memory for dictionaries that a non-monotone schedule needs again (see
        :func:`elsjax.sampler.sample_machine`); 0 rebuilds every time, the smallest peak memory.

    Returns:
      ``[B, H, W, C]`` samples, inside the training pixel range.
    """
    kind = _check_kind(kind)
    train = _check_train(train)
    seeds = _check_images("seeds", seeds, train.shape[1:])
    scales = _check_scales(scales, kind, train.shape[1:3])
    if convention not in sampler.CONVENTIONS:
        raise ValueError(f"convention: expected one of {sampler.CONVENTIONS}, got {convention!r}")
    if keep_bytes is not None and (not isinstance(keep_bytes, (int, np.integer)) or keep_bytes < 0):
        raise ValueError(f"keep_bytes: expected a non-negative integer or None, got {keep_bytes!r}")
    out = np.empty(seeds.shape, np.float32)
    for index, images in _class_groups(seeds.shape[0], train, labels, y):
        out[index] = np.asarray(
            sampler.sample_machine(
                kind, seeds[index], images, scales, convention=convention, chunk_size=chunk_size, progress=progress,
                keep_bytes=keep_bytes,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------------------------
# Validation: every failure is a ValueError that names the argument.


def _check_kind(kind):
    if kind not in machines.KINDS:
        raise ValueError(f"kind: expected one of {machines.KINDS}, got {kind!r}")
    return kind


def _as_float_array(name, value, ndim):
    try:
        arr = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be converted to an array ({err})") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: expected a float array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def _check_layout(name, shape):
    n, h, w, c = shape
    if min(shape) < 1:
        raise ValueError(f"{name}: empty array of shape {shape}")
    if c > h or c > w:
        raise ValueError(
            f"{name}: expected NHWC [N, H, W, C], got shape {shape} (C={c} > H={h} or W={w}: "
            "is this NCHW? transpose with x.transpose(0, 2, 3, 1))"
        )


def _check_train(train):
    train = _as_float_array("train", train, 4)
    _check_layout("train", train.shape)
    lo, hi = float(train.min()), float(train.max())
    if lo < -1.0 or hi > 1.0:
        raise ValueError(f"train: pixel values must lie in [-1, 1] (got [{lo:.3g}, {hi:.3g}]; scale u in [0,1] as 2u - 1)")
    return train


def _check_images(name, x, image_shape):
    x = _as_float_array(name, x, 4)
    _check_layout(name, x.shape)
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(f"{name}: image shape {tuple(x.shape[1:])} does not match train's {tuple(image_shape)} (H, W, C)")
    return x


def _check_times(t, batch):
    arr = np.asarray(t, np.float64)
    if arr.ndim == 0:
        arr = np.full(batch, arr)
    if arr.shape != (batch,):
        raise ValueError(f"t: expected a float or shape ({batch},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0) or np.any(arr > 1.0):
        raise ValueError(f"t: every time must lie in (0, 1], got {arr.tolist()}")
    return arr.astype(np.float32)


def _check_k(name, k, kind, hw):
    if kind == "ideal":
        return None
    if k is None:
        raise ValueError(f"{name}: the {kind!r} machine needs an odd patch size k >= 3")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name}: expected an odd integer >= 3, got {k!r}")
    if k < 3 or k % 2 == 0:
        raise ValueError(f"{name}: expected an odd integer >= 3, got {k}")
    if kind == "els" and k > min(hw):
        raise ValueError(f"{name}: ELS needs k <= H and k <= W (no valid {k}x{k} patch in a {hw[0]}x{hw[1]} image), got {k}")
    return int(k)


def _check_scales(scales, kind, hw):
    try:
        values = [s for s in scales]
    except TypeError:
        raise ValueError(f"scales: expected a sequence of odd integers, got {scales!r}") from None
    if len(values) < 2:
        raise ValueError(f"scales: need at least 2 entries (the reference grid uses n = len(scales)), got {len(values)}")
    for i, k in enumerate(values):
        _check_k(f"scales[{i}]", k, kind, hw)
    return [int(k) for k in values] if kind != "ideal" else [0] * len(values)


def _class_groups(batch, train, labels, y):
    """``[(indices into the batch, training images of that class), ...]``; one group when unconditional."""
    if y is None:
        return [(np.arange(batch), train)]
    if labels is None:
        raise ValueError("labels: class-conditional sampling (y given) needs the training labels")
    labels = np.asarray(labels)
    if labels.shape != (train.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected integers of shape ({train.shape[0]},), got {labels.dtype} {labels.shape}")
    y = np.asarray(y)
    if y.ndim == 0:
        y = np.full(batch, y)
    if y.shape != (batch,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected integers of shape ({batch},), got {y.dtype} {y.shape}")
    groups = []
    for cls in np.unique(y):
        images = train[labels == cls]
        if images.shape[0] == 0:
            raise ValueError(f"y: class {int(cls)} has no training images (labels present: {np.unique(labels).tolist()})")
        groups.append((np.flatnonzero(y == cls), images))
    return groups
