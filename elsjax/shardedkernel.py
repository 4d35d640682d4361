"""The kernel on a mesh: a dictionary split over the devices of the ``"entries"`` axis, merged exactly.

A dictionary's entry axis (its chunks) is split over the mesh axis ``"entries"`` (:func:`shard_tables`). Each device
streams its shard through the ordinary kernel (:mod:`elsjax.posterior`) and holds a partial
:class:`~elsjax.posterior.SoftmaxState`; the states are combined exactly inside ``jax.shard_map``
(:func:`merge_across`: ``lax.pmax`` of the maxima, then ``lax.psum`` of the rescaled sums, which is
``posterior.merge`` as a collective, docs/maths.md §5.3). Shards are padded with entries of log weight
:data:`~elsjax.patches.PAD_LOG_WEIGHT` (exactly zero contribution). With several processes each places the
dictionary of its own training images on its own columns of ``"entries"``. :func:`map_entries` runs a denoiser's
maths per device, the batch split over ``"seeds"``. A denoiser that keeps the best entry instead of a softmax
(nearest) merges with :func:`argmax_across`. The meshes and the processes are :mod:`elsjax.sharding`'s.

``jax.shard_map`` and not ``jax.pmap``: ``pmap`` is in maintenance mode and is itself implemented with ``jax.jit``
and ``jax.shard_map``; ``shard_map`` composes with ``jit`` and ``NamedSharding``, takes a 2-D mesh, and runs
unchanged across processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from elsjax import posterior
from elsjax.patches import PAD_LOG_WEIGHT, ImageStack, PatchDictionary, aligned_zeros
from elsjax.sharding import ENTRIES, SEEDS, axis_size, pad_batch

__all__ = ["merge_across", "argmax_across", "shard_tables", "table_specs", "map_entries"]


# ----------------------------------------------------------------------------------------------------------------
# The exact merge as a collective.


def merge_across(state: posterior.SoftmaxState, axis_name: str = ENTRIES) -> posterior.SoftmaxState:
    """``posterior.merge`` of every device's state along ``axis_name`` (inside ``shard_map``); exact.

    ``m = pmax(max)``, ``num = psum(num * exp(max - m))``, ``den = psum(den * exp(max - m))`` (an empty state
    contributes 0). Works on states with leading group axes (bbELS). The maximum is only a shift that cancels in
    ``num / den``: it is taken without gradient (``lax.pmax`` has no differentiation rule), which leaves the
    derivative of the result exact.
    """
    m = lax.pmax(lax.stop_gradient(state.max), axis_name)
    scale = posterior.rescale(state.max, m)
    return posterior.SoftmaxState(
        max=m,
        num=lax.psum(state.num * scale[..., None], axis_name),
        den=lax.psum(state.den * scale, axis_name),
    )


def argmax_across(best, value, axis_name: str = ENTRIES):
    """The ``value [Q, ...]`` of the device with the largest ``best [Q]`` along ``axis_name`` (inside
    ``shard_map``), ties to the first device: the argmax as a collective.

    Device ``i`` of ``"entries"`` holds entries before those of device ``i + 1`` (:func:`shard_tables`), so with
    each device's ties going to its earliest entry, the result is the earliest of the best entries of the whole
    dictionary, as on one device. Exact: the chosen value is added to zeros. ``best`` is taken without gradient
    (``lax.pmax`` has none); it only selects.
    """
    best = lax.stop_gradient(best)
    top = lax.pmax(best, axis_name)
    device = lax.axis_index(axis_name)
    first = lax.pmin(jnp.where(best == top, device, jnp.iinfo(jnp.int32).max), axis_name)
    chosen = (device == first).reshape(first.shape + (1,) * (value.ndim - first.ndim))
    return lax.psum(jnp.where(chosen, value, jnp.zeros_like(value)), axis_name)


# ----------------------------------------------------------------------------------------------------------------
# Dictionaries on the mesh.


def _entry_axis(table) -> int:
    """Axis of a table's leaves that counts chunks: ``[..., n_chunks, chunk, X]`` or ``[n_chunks, chunk, ...]``."""
    if isinstance(table, PatchDictionary):
        return table.keys.ndim - 3
    if isinstance(table, ImageStack):
        return 0
    raise TypeError(f"tables: expected PatchDictionary or ImageStack, got {type(table).__name__}")


def _fills(table) -> tuple:
    """What a padding entry holds in each leaf: zero, and log weight PAD_LOG_WEIGHT."""
    if isinstance(table, PatchDictionary):
        return (0, np.array([0.0, PAD_LOG_WEIGHT], np.float32), 0)
    return (0, np.float32(PAD_LOG_WEIGHT))


def _log_weights(table):
    return table.aux[..., 1] if isinstance(table, PatchDictionary) else table.log_weights


def _table_spec(table):
    spec = P(*([None] * _entry_axis(table)), ENTRIES)
    return type(table)(*([spec] * len(table)))


def _real_entries(table, axis: int) -> int:
    """Entries before the trailing padding (the largest over a grouped table's groups)."""
    w = np.asarray(_log_weights(table))
    w = w.reshape(w.shape[:axis] + (-1,))
    real = w > PAD_LOG_WEIGHT / 2
    # Padding is trailing in every group: the count of real entries is the index after the last real one.
    last = np.where(real.any(axis=-1), real.shape[-1] - np.argmax(real[..., ::-1], axis=-1), 0)
    return int(last.max(initial=0))


def _gather(values) -> np.ndarray:
    """Every process's ``values`` (small non-negative integers), ``[processes, len]``; no communication with one
    process."""
    values = np.asarray(values, np.int64)
    if jax.process_count() == 1:
        return values[None]
    values = values.astype(np.int32)  # JAX's default integer width (entry counts stay far below 2**31)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values)).reshape(jax.process_count(), -1)


def shard_tables(tables, mesh: Mesh) -> tuple:
    """Places host (NumPy) tables on ``mesh``, the entry axis split over ``"entries"``.

    Each process passes the tables built from its own training images. The real entries of a process are spread
    evenly over its columns of ``"entries"`` (re-chunked: the chunk size may shrink so that every device gets
    entries); every shard is padded to one shape with zero-weight entries. Along ``"seeds"`` the shards are
    replicated.

    Args:
      tables: a tuple of :class:`~elsjax.patches.PatchDictionary` or :class:`~elsjax.patches.ImageStack` with
        NumPy leaves (``to_device=False`` builders).
      mesh: from :func:`check_mesh`.

    Returns:
      The same tables with global ``jax.Array`` leaves sharded over ``"entries"``.

    Raises:
      ValueError: processes whose dictionaries disagree in layout or storage, or a mesh that does not give each
        process whole ``"entries"`` columns.
    """
    entries = axis_size(mesh, ENTRIES)
    local_columns = entries // jax.process_count()
    out = []
    for table in tables:
        axis = _entry_axis(table)
        leaves = [np.asarray(leaf) for leaf in table]
        shape0 = leaves[0].shape
        lead, trailing = shape0[:axis], shape0[axis + 2 :]
        real = _real_entries(table, axis)
        info = _gather([real, shape0[axis + 1], int(leaves[0].dtype == np.uint8), *lead, *trailing])
        if len(set(info[:, 2].tolist())) > 1:
            raise ValueError(
                "train: the processes' training images differ in storage (8-bit codes on some, float32 on others); "
                "give every process 8-bit data, or none"
            )
        if len({tuple(row) for row in info[:, 3:].tolist()}) > 1:
            raise ValueError(f"train: the processes' dictionaries differ in layout: {info[:, 3:].tolist()}")
        n = max(max(math.ceil(int(r) / local_columns) for r in info[:, 0]), 1)  # entries per device (the largest)
        size = min(int(info[:, 1].max()), _round_up(n, 8))  # chunk size: no larger than needed
        chunks = math.ceil(n / size)  # chunks per device
        my_n = math.ceil(real / local_columns)  # this process's entries per device
        sharding = NamedSharding(mesh, P(*([None] * axis), ENTRIES))
        column_of = _columns(sharding, lead + (entries * chunks, size), axis, chunks, local_columns)
        arrays = []
        for leaf, fill in zip(leaves, _fills(table)):
            flat = leaf.reshape(lead + (-1,) + leaf.shape[axis + 2 :])
            shards, pieces = {}, []
            for device, col in column_of.items():
                if col not in shards:
                    lo, hi = min(col * my_n, real), min((col + 1) * my_n, real)
                    shards[col] = _shard(flat, lo, hi, axis, chunks, size, fill)
                pieces.append(jax.device_put(shards[col], device, may_alias=True))
            shape = lead + (entries * chunks, size) + leaf.shape[axis + 2 :]
            arrays.append(jax.make_array_from_single_device_arrays(shape, sharding, pieces))
            del shards, pieces, flat
        out.append(type(table)(*arrays))
    return tuple(out)


def _columns(sharding: NamedSharding, shape, axis: int, chunks: int, expected: int) -> dict:
    """For each addressable device, which of this process's ``"entries"`` columns it holds (0, 1, ...)."""
    index_map = sharding.addressable_devices_indices_map(tuple(shape))
    column = {device: (index[axis].start or 0) // chunks for device, index in index_map.items()}
    mine = sorted(set(column.values()))
    if len(mine) != expected:
        raise ValueError(
            f"mesh: process {jax.process_index()} holds {len(mine)} of the 'entries' columns, expected {expected}: "
            "each process must own whole columns, all their 'seeds' rows (build it with elsjax.make_mesh)"
        )
    return {device: mine.index(c) for device, c in column.items()}


def _round_up(m: int, multiple: int) -> int:
    return -(-m // multiple) * multiple


def _shard(flat, lo: int, hi: int, axis: int, chunks: int, size: int, fill):
    """Entries ``lo:hi`` of ``flat [..., M, ...]`` (entry axis ``axis``) as ``[..., chunks, size, ...]``, padded."""
    lead, trailing = flat.shape[:axis], flat.shape[axis + 1 :]
    out = aligned_zeros(lead + (chunks * size,) + trailing, flat.dtype)
    fill = np.asarray(fill, flat.dtype) if flat.dtype != np.uint8 else np.uint8(0)
    if np.any(fill != 0):
        out[...] = fill
    index = (slice(None),) * axis
    out[index + (slice(0, hi - lo),)] = flat[index + (slice(lo, hi),)]
    return out.reshape(lead + (chunks, size) + trailing)


def table_specs(tables) -> tuple:
    """The ``shard_map`` in-specs of a machine's tables: their entry axis on ``"entries"``."""
    return tuple(_table_spec(t) for t in tables)


# ----------------------------------------------------------------------------------------------------------------
# One computation per device.


def map_entries(fn: Callable, mesh: Mesh, tables, x, t, combine: Callable = merge_across):
    """``fn(tables, x, t, combine)`` run per device with the tables split over ``"entries"`` and the batch over
    ``"seeds"``; ``combine`` merges the devices' partial results: :func:`merge_across` (the default) is to be
    applied to each partial softmax state before ``finalize``, :func:`argmax_across` to each best entry's value.

    A batch that ``"seeds"`` does not divide is padded (by repetition) and the padding dropped from the result.
    """
    batch = x.shape[0]
    seeds = axis_size(mesh, SEEDS)
    x, t = pad_batch(x, seeds), pad_batch(t, seeds)
    local = lambda tables, x, t: fn(tables, x, t, combine)
    # check_vma=False: the kernel's scan carries start replicated and become device-varying; the output is
    # replicated over "entries" by construction (every device ends with the same merged state).
    out = jax.shard_map(
        local, mesh=mesh, in_specs=(table_specs(tables), P(SEEDS), P(SEEDS)), out_specs=P(SEEDS), check_vma=False
    )(tables, x, t)
    return out[:batch]
