"""Exact deduplication and dictionary assembly in compiled (jitted) programs on the default device.

The same dictionary as the host engine (:mod:`elsjax.dedup` with :func:`elsjax.patches.region_dictionaries`), bit
for bit: entries in order of first occurrence, each distinct row once with its count, the same norms. Rows are the
k x k patches of padded images ``[N, Hp, Wp, C]`` centred at ``rows x cols`` (a matrix ``[M, D]`` is the case
``[M, 1, 1, D]``, k = 1), generated on the device, never on the host. Two programs of static shapes:

1. :func:`distinct`: two 32-bit hashes of every row's bytes, one sort by ``(hashes, row index)``, a bitwise check of
   every row against its sorted neighbour (equal hashes, different rows: a collision, after which the rows are
   sorted by their whole bytes instead), group starts, run lengths, and each group's number in order of its first
   row (a cumulative sum over rows in their own order). It returns the number of distinct rows, the one scalar read
   back to the host, which picks the table's size (:func:`elsjax.patches.bucket`).
2. :func:`table`: the first row of each group gathered into place, its value, its norm and ``log(count)``.

Norms follow the canonical definition both builds share (:func:`elsjax.dedup.square_norms`): the float64 squares of
the float32 pixel values (exact), added in column order in float64, rounded once to float32. The device computes
them in float64 (``jax.enable_x64`` inside the program); ``log(count)`` likewise in float64, rounded to float32.

Example:
    >>> import numpy as np
    >>> rows = np.array([[1, 2], [3, 4], [1, 2]], np.float32)[:, None, None, :]
    >>> first, counts, n, ok = distinct(rows, np.zeros((1, 1), np.int32), np.zeros((1, 1), np.int32), 1)
    >>> int(n[0]), np.asarray(first[0, :2]).tolist(), np.asarray(counts[0, :2]).tolist()
    (2, [0, 1], [2, 1])
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["assemble", "distinct", "table", "take_rows", "FULL_HASH"]

FULL_HASH = 0xFFFFFFFF  # the hash bits kept; fewer force collisions (tests)


def take_rows(padded, k: int, rows, cols, index):
    """Rows ``index [S]`` of the patch source: patch of image ``n`` at ``(rows[r], cols[c])``, ``(n, r, c) =
    unravel(index)``, flattened in (row, column, channel) order, as :class:`elsjax.dedup.PatchRows` reads them."""
    n_cols = cols.shape[0]
    image, rest = jnp.divmod(index, rows.shape[0] * n_cols)
    r, c = jnp.divmod(rest, n_cols)
    offs = jnp.arange(k)
    ri = rows[r][:, None, None] + offs[None, :, None]  # [S, k, 1]
    ci = cols[c][:, None, None] + offs[None, None, :]  # [S, 1, k]
    return padded[image[:, None, None], ri, ci].reshape(index.shape[0], -1)


def _words(rows):
    """Each row's bytes as uint32 words ``[M, W]`` (uint8 rows zero-padded to a multiple of 4 bytes)."""
    if rows.dtype == jnp.uint8:
        rows = jnp.pad(rows, ((0, 0), (0, -rows.shape[1] % 4)))
        return lax.bitcast_convert_type(rows.reshape(rows.shape[0], -1, 4), jnp.uint32)
    return lax.bitcast_convert_type(rows, jnp.uint32)


def _mix(h):
    """MurmurHash3's 32-bit finaliser: every input bit reaches every output bit."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _hashes(words, hash_mask: int):
    """Two independent 32-bit hashes of each row (FNV-1a and a Murmur-like chain over its words), masked."""

    def step(j, hs):
        h1, h2 = hs
        w = lax.dynamic_index_in_dim(words, j, axis=1, keepdims=False)
        h1 = (h1 ^ w) * jnp.uint32(0x01000193)
        h2 = (h2 ^ _mix(w + jnp.uint32(j))) * jnp.uint32(0x5BD1E995)
        return h1 ^ (h1 >> 15), h2 ^ (h2 >> 13)

    m = words.shape[0]
    start = (jnp.full(m, 0x811C9DC5, jnp.uint32), jnp.full(m, 0x9747B28C, jnp.uint32))
    h1, h2 = lax.fori_loop(0, words.shape[1], step, start)
    mask = jnp.uint32(hash_mask)
    return _mix(h1) & mask, _mix(h2 ^ h1) & mask


def _runs(sort_keys, m: int):
    """``(order, new_run)``: rows sorted by ``sort_keys`` then index, and where a run of equal keys starts."""
    index = jnp.arange(m, dtype=jnp.int32)
    *sorted_keys, order = lax.sort((*sort_keys, index), num_keys=len(sort_keys), is_stable=True)
    changed = functools.reduce(jnp.logical_or, [key[1:] != key[:-1] for key in sorted_keys])
    return order, jnp.concatenate([jnp.ones(1, bool), changed])


def _distinct_one(padded, rows, cols, k: int, hash_mask: int, exact: bool, deduplicate: bool):
    m = padded.shape[0] * rows.shape[0] * cols.shape[0]
    index = jnp.arange(m, dtype=jnp.int32)
    if not deduplicate:
        return index, jnp.ones(m, jnp.int32), jnp.int32(m), jnp.bool_(True)
    words = _words(take_rows(padded, k, rows, cols, index))
    keys = tuple(words.T) if exact else _hashes(words, hash_mask)
    order, new_run = _runs(keys, m)
    ordered = words[order]
    same = jnp.all(ordered[1:] == ordered[:-1], axis=1)
    ok = jnp.all(same | new_run[1:])  # a run of equal hashes holds equal rows only
    # Groups are numbered by first row: row i's number counts the first rows up to it.
    is_first = jnp.zeros(m, bool).at[order].set(new_run, unique_indices=True)
    number = jnp.cumsum(is_first, dtype=jnp.int32) - 1
    next_start = lax.cummin(jnp.where(new_run, index, m), reverse=True)
    length = jnp.concatenate([next_start[1:], jnp.full(1, m, jnp.int32)]) - index  # at run starts: run lengths
    slot = jnp.where(new_run, number[order], m)
    first = jnp.full(m, -1, jnp.int32).at[slot].set(order, mode="drop")
    counts = jnp.zeros(m, jnp.int32).at[slot].set(length, mode="drop")
    return first, counts, number[-1] + 1, ok


@functools.partial(jax.jit, static_argnames=("k", "hash_mask", "exact", "deduplicate"))
def distinct(padded, rows, cols, k: int, *, hash_mask: int = FULL_HASH, exact: bool = False, deduplicate=True):
    """Distinct rows of each group ``g`` (centres ``rows[g] x cols[g]``): ``(first [G, M], counts [G, M],
    n_distinct [G], ok [G])``.

    ``first[g, j]`` is the first row of group g's j-th distinct row in order of first occurrence (-1 past the
    distinct rows), ``counts[g, j]`` its occurrences. ``ok`` is False where two different rows shared both hashes:
    call again with ``exact=True`` (rows sorted by their whole bytes).
    """
    one = functools.partial(_distinct_one, k=k, hash_mask=hash_mask, exact=exact, deduplicate=deduplicate)
    return jax.vmap(one, in_axes=(None, 0, 0))(padded, rows, cols)


def _sequential_sum(columns):
    """``columns [D, S]`` float64 added in column order (the canonical order of the norms)."""
    add = lambda j, acc: acc + lax.dynamic_index_in_dim(columns, j, keepdims=False)
    return lax.fori_loop(0, columns.shape[0], add, jnp.zeros(columns.shape[1], columns.dtype))


@functools.partial(jax.jit, static_argnames=("k", "size", "chunk", "value_columns"))
def _table(padded, rows, cols, first, counts, value_rows, squares, pad_log_weight, *, k, size, chunk, value_columns):
    def one(rows, cols, first, counts):
        first = jnp.pad(first, (0, max(0, size - first.shape[0])), constant_values=-1)[:size]
        counts = jnp.pad(counts, (0, max(0, size - counts.shape[0])))[:size]
        valid = first >= 0
        keys = take_rows(padded, k, rows, cols, jnp.maximum(first, 0))
        keys = jnp.where(valid[:, None], keys, jnp.zeros((), keys.dtype))
        if value_rows is None:
            values = keys[:, value_columns[0] : value_columns[1]]
        else:
            values = jnp.where(valid[:, None], value_rows[jnp.maximum(first, 0)], jnp.zeros((), value_rows.dtype))
        floats = keys.T.astype(jnp.float64) if squares is None else None
        norms = _sequential_sum(floats * floats if squares is None else squares[keys.T])
        log_w = jnp.where(valid, jnp.log(counts.astype(jnp.float64)).astype(jnp.float32), pad_log_weight)
        aux = jnp.stack([jnp.where(valid, norms.astype(jnp.float32), 0), log_w], axis=-1)
        return tuple(a.reshape(size // chunk, chunk, a.shape[-1]) for a in (keys, aux, values))

    return jax.vmap(one)(rows, cols, first, counts)


def table(padded, rows, cols, first, counts, *, k, size, chunk, value_columns, value_rows, squares, pad_log_weight):
    """Each group's table ``(keys, aux, values)``, each ``[G, size // chunk, chunk, ...]``: entries ``j < n``
    the first rows ``first[g, j]`` with ``aux = (norm, log count)``; the rest padding (zeros and
    ``pad_log_weight``).

    ``value_columns``: ``(lo, hi)``, values are key columns ``lo:hi``; else ``value_rows [M, V]``, one per row
    (one group). ``squares``: float64 ``[256]``, the squares of the decoded values of uint8 codes; None for float32
    rows. The norms are computed in float64 (``jax.enable_x64`` while this program is traced and run).
    """
    with jax.enable_x64(True):
        return _table(
            padded, rows, cols, first, counts, value_rows, squares, jnp.float32(pad_log_weight),
            k=k, size=size, chunk=chunk, value_columns=value_columns,
        )  # fmt: skip


def assemble(parts, *, layout, deduplicate: bool, hash_mask: int, value_columns, value_rows, squares, pad_log_weight):
    """The tables ``(keys, aux, values)`` ``[G, n_chunks, chunk, ...]`` of the groups ``parts``: one
    ``(padded, k, rows, cols)`` per group, all of one ``padded`` and ``k``; ``layout(m) = (chunk, n_chunks)`` for
    groups of at most ``m`` distinct rows. Groups of one shape run in one batch; see :func:`table` for the rest."""
    rows_of = lambda part: part[0].shape[0] * len(part[2]) * len(part[3])
    if max(map(rows_of, parts)) >= 2**31:
        raise ValueError("dictionary: 2^31 patches or more in one group; the compiled build indexes them with int32")
    padded, k = jnp.asarray(parts[0][0]), parts[0][1]
    shape_of = lambda part: (len(part[2]), len(part[3]))
    batches = [[g for g, p in enumerate(parts) if shape_of(p) == shape] for shape in sorted(set(map(shape_of, parts)))]
    found = []
    for batch in batches:
        rows, cols = (jnp.asarray(np.stack([parts[g][i] for g in batch]), jnp.int32) for i in (2, 3))
        result = distinct(padded, rows, cols, k, deduplicate=deduplicate, hash_mask=hash_mask)
        if not bool(jnp.all(result[3])):  # two different rows shared both 32-bit hashes: sort by whole rows
            result = distinct(padded, rows, cols, k, exact=True)
        found.append((rows, cols, *result[:3]))
    chunk, n_chunks = layout(max(int(jnp.max(n)) for *_, n in found))  # the one scalar read back
    value_rows = None if value_rows is None else jnp.asarray(value_rows)
    options = dict(k=k, size=n_chunks * chunk, chunk=chunk, value_columns=value_columns, value_rows=value_rows)
    options.update(squares=squares, pad_log_weight=pad_log_weight)
    tables = [table(padded, rows, cols, first, counts, **options) for rows, cols, first, counts, _ in found]
    if len(tables) == 1:
        return tables[0]
    order = jnp.asarray(np.argsort(np.concatenate(batches)))
    return tuple(jnp.concatenate(arrays)[order] for arrays in zip(*tables))
