"""Argument checks shared by every layer: each failure is a ``ValueError`` that names the argument.

They run on the host, on concrete values, before anything reaches XLA: :func:`elsjax.denoisers.build` checks its
training images and k, :func:`elsjax.score` and :func:`elsjax.sample` check everything they are given. The jitted
functions underneath (``Denoiser.score`` and the sampler) check nothing and assume what these establish. What a
denoiser needs of its patch size is its own :meth:`~elsjax.denoisers.Denoiser.check_k`; the functions here that
take a ``denoiser`` take its class.

Example:
    >>> from elsjax import checks
    >>> checks.odd_patch_size("k", 4)
    Traceback (most recent call last):
    ...
    ValueError: k: expected an odd integer >= 3, got 4
"""

from __future__ import annotations

import jax
import numpy as np

from elsjax import noise

__all__ = [
    "is_traced",
    "integer",
    "candidates",
    "distinct_sorted",
    "float_array",
    "train_images",
    "images",
    "times",
    "odd_patch_size",
    "scales",
    "class_groups",
    "class_members",
    "sampling_args",
]

# Training pixels may exceed [-1, 1] by float32 rounding (8-bit data decoded as v * float32(2/255) - 1 gives
# 1.0000002 for v = 255); anything further out is data in another range.
RANGE_SLACK = 1e-6


def is_traced(*values) -> bool:
    """Whether any value is a JAX tracer (inside ``jit``, ``grad`` or ``vmap``): then only shapes can be checked."""
    return any(isinstance(v, jax.core.Tracer) for v in values)


def integer(name, value, minimum: int = 0) -> int:
    """An integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def distinct_sorted(name, values, check, *, expected: str, empty: str) -> tuple:
    """``values`` as a sorted tuple of distinct items, each checked (and converted) by ``check(item)``: a one-line
    ValueError for something that is not a sequence (``expected``: what it should be), an empty one (``empty``: the
    message) or repeated items."""
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name}: expected {expected}, got {values!r}") from None
    if not values:
        raise ValueError(f"{name}: {empty}")
    checked = [check(v) for v in values]
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: candidates must be distinct, got {values}")
    return tuple(sorted(checked))


def candidates(name, values, denoiser, hw) -> tuple[int, ...]:
    """Distinct candidate patch sizes (each odd, >= 3, and as ``denoiser`` needs it), sorted ascending."""

    def check(k):
        odd_patch_size(name, k)
        if denoiser.takes_k:
            denoiser.check_k(name, k, hw)
        return int(k)

    return distinct_sorted(name, values, check, expected="a sequence of odd integers >= 3",
                           empty="expected at least one candidate patch size")  # fmt: skip


def float_array(name, value, ndim):
    """``value`` as a float32 NumPy array of ``ndim`` dimensions, finite."""
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


def layout(name, shape):
    """Rejects empty arrays and NCHW passed as NHWC (C larger than H or W)."""
    if len(shape) != 4:
        raise ValueError(f"{name}: expected 4 dimensions [N, H, W, C], got shape {tuple(shape)}")
    n, h, w, c = shape
    if min(shape) < 1:
        raise ValueError(f"{name}: empty array of shape {tuple(shape)}")
    if c > h or c > w:
        raise ValueError(
            f"{name}: expected NHWC [N, H, W, C], got shape {tuple(shape)} (C={c} > H={h} or W={w}: "
            "is this NCHW? transpose with x.transpose(0, 2, 3, 1))"
        )


def train_images(value, name: str = "train"):
    """Training images: float32 NHWC, finite, every pixel in [-1, 1]."""
    if is_traced(value):
        raise ValueError(
            f"{name}: the training images must be concrete (a dictionary is built on the host); "
            "build the denoiser outside jit with elsjax.denoisers.build and trace its score instead"
        )
    arr = float_array(name, value, 4)
    layout(name, arr.shape)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1.0 - RANGE_SLACK or hi > 1.0 + RANGE_SLACK:
        raise ValueError(
            f"{name}: pixel values must lie in [-1, 1] (got [{lo:.3g}, {hi:.3g}]; scale u in [0,1] as 2u - 1)"
        )
    return arr


def images(name, value, image_shape):
    """Query images ``[B, *image_shape]``; traced values are checked for shape only and returned as they are."""
    if is_traced(value):
        layout(name, value.shape)
        if tuple(value.shape[1:]) != tuple(image_shape):
            raise ValueError(
                f"{name}: image shape {tuple(value.shape[1:])} does not match train's {tuple(image_shape)} (H, W, C)"
            )
        return value
    arr = float_array(name, value, 4)
    layout(name, arr.shape)
    if tuple(arr.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{name}: image shape {tuple(arr.shape[1:])} does not match train's {tuple(image_shape)} (H, W, C)"
        )
    return arr


def times(value, batch: int):
    """Times ``[batch]`` float32 in [:data:`elsjax.noise.MIN_TIME`, 1]; a scalar is broadcast."""
    if is_traced(value):
        t = jax.numpy.asarray(value, jax.numpy.float32)
        if t.ndim == 0:
            return jax.numpy.broadcast_to(t, (batch,))
        if t.shape != (batch,):
            raise ValueError(f"t: expected a float or shape ({batch},), got shape {t.shape}")
        return t
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        arr = np.full(batch, arr)
    if arr.shape != (batch,):
        raise ValueError(f"t: expected a float or shape ({batch},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < noise.MIN_TIME) or np.any(arr > 1.0):
        raise ValueError(
            f"t: every time must lie in [{noise.MIN_TIME:g}, 1] (t = 0 is the data itself, where the score is "
            f"undefined), got {arr.tolist()}"
        )
    return arr.astype(np.float32)


def odd_patch_size(name, k) -> int:
    """An odd integer patch size >= 3."""
    if k is None:
        raise ValueError(f"{name}: expected an odd patch size k >= 3")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name}: expected an odd integer >= 3, got {k!r}")
    if k < 3 or k % 2 == 0:
        raise ValueError(f"{name}: expected an odd integer >= 3, got {k}")
    return int(k)


def scales(value, denoiser, hw):
    """A scales list (one k per step, at least 2), each entry checked by ``denoiser.check_k``; all zeros for a
    denoiser without a patch size."""
    try:
        values = list(value)
    except TypeError:
        raise ValueError(f"scales: expected a sequence of odd integers, got {value!r}") from None
    if len(values) < 2:
        raise ValueError(
            f"scales: need at least 2 entries (the reference grid uses n = len(scales)), got {len(values)}"
        )
    if not denoiser.takes_k:
        return [0] * len(values)
    return [denoiser.check_k(f"scales[{i}]", k, hw) for i, k in enumerate(values)]


def class_groups(batch, train, labels, y):
    """``[(indices into the batch, training images of that class), ...]``; one group when ``y`` is None."""
    if y is None:
        return [(np.arange(batch), train)]
    return [(index, train[members]) for index, members in class_members(batch, train, labels, y)]


def class_members(batch, train, labels, y):
    """``[(indices into the batch, indices into train of that class), ...]``; one group when ``y`` is None."""
    if y is None:
        return [(np.arange(batch), np.arange(train.shape[0]))]
    if labels is None:
        raise ValueError("labels: class-conditional sampling (y given) needs the training labels")
    if is_traced(labels, y):
        raise ValueError("y: classes must be concrete (each class has its own dictionary, built on the host)")
    labels = np.asarray(labels)
    if labels.shape != (train.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected integers of shape ({train.shape[0]},), got {labels.dtype} {labels.shape}")
    y = np.asarray(y)
    if y.ndim == 0:
        y = np.full(batch, y)
    if y.shape != (batch,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected integers of shape ({batch},), got {y.dtype} {y.shape}")
    if y.size and y.min() < 0:
        raise ValueError(f"y: class {int(y.min())} is negative (classes are 0, 1, ...; labels present: "
                         f"{np.unique(labels).tolist()})")  # fmt: skip
    groups = []
    for cls in np.unique(y):
        members = np.flatnonzero(labels == cls)
        if members.size == 0:
            raise ValueError(
                f"y: class {int(cls)} has no training images (labels present: {np.unique(labels).tolist()})"
            )
        groups.append((np.flatnonzero(y == cls), members))
    return groups


def sampling_args(denoiser, seeds, train, scale_list, convention: str, conventions: tuple[str, ...]):
    """The checked arguments of a sampler (:func:`elsjax.sample` and the provenance sampler) of the denoiser class
    ``denoiser``: ``(train, seeds, scales)``."""
    train = train_images(train)
    seeds = images("seeds", seeds, train.shape[1:])
    scale_list = scales(scale_list, denoiser, train.shape[1:3])
    if convention not in conventions:
        raise ValueError(f"convention: expected one of {conventions}, got {convention!r}")
    return train, seeds, scale_list
