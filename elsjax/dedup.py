"""Exact deduplication of rows (patches or images): a 64-bit hash per row, grouping by hash, a bitwise check.

A row source (:class:`ArrayRows`, :class:`PatchRows`) is read block by block, so the patches of a training set never
exist in memory at once. :func:`groups` hashes every row (FNV-1a over 64-bit words) and groups rows by hash in one
sort; :func:`fill_group` writes each group's first row into place while checking every row against it bitwise, and
:func:`exact_groups` regroups by whole rows in the (never yet seen) case of a 64-bit collision. Blocks are the units
of work of :func:`build_threads` threads; results do not depend on the thread count.

Example:
    >>> import numpy as np
    >>> first, counts = distinct_rows(np.array([[1, 2], [3, 4], [1, 2]], np.float32))
    >>> first.tolist(), counts.tolist()
    ([0, 1], [2, 1])
"""

from __future__ import annotations

import concurrent.futures
import os
import threading

import numpy as np

from elsjax import envvars

__all__ = [
    "ArrayRows", "PatchRows", "distinct_rows", "groups", "fill_group", "exact_groups", "row_hashes", "hash_groups",
    "square_norms", "blocks", "parallel", "build_threads", "as_slice", "BUILD_BLOCK", "PARALLEL_GROUPING_ROWS",
]  # fmt: skip


def round_up(m: int, multiple: int) -> int:
    return -(-m // multiple) * multiple


def as_slice(index):
    """A contiguous index range as a slice (a view, no copy), else the array itself."""
    index = np.asarray(index)
    if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        return slice(int(index[0]), int(index[0]) + index.size)
    return index


class ArrayRows:
    """Rows of an array ``[M, D]``, seen through the interface :func:`distinct_rows` and the builders use."""

    def __init__(self, array):
        self.array = np.ascontiguousarray(array)
        self.num_rows, self.dim = self.array.shape
        self.dtype = self.array.dtype

    def ranges(self, block: int):
        return blocks(self.num_rows, block)

    def rows(self, lo: int, hi: int):
        return self.array[lo:hi]

    def blocks(self, block: int):
        for lo, hi in self.ranges(block):
            yield lo, hi, self.rows(lo, hi)


class PatchRows:
    """The k x k patches of padded images ``[N, H + k - 1, W + k - 1, C]`` centred at ``rows x cols`` (unpadded
    coordinates), never all in memory.

    Row ``i`` is the patch of image ``n`` at ``(rows[r], cols[c])`` with ``(n, r, c) = unravel(i)``; rows are read
    block by block from a strided view of the padded images, so building a dictionary holds only its distinct patches.
    ``padded`` is shared by every group of a region: the padded images exist once.
    """

    def __init__(self, padded, k: int, rows, cols):
        self.padded, self.k = padded, k
        self.centre_rows, self.centre_cols = np.asarray(rows), np.asarray(cols)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
        self.windows = windows[:, as_slice(rows)][:, :, as_slice(cols)]
        self.grid = self.windows.shape[:3]
        self.num_rows, self.dim = int(np.prod(self.grid)), int(np.prod(windows.shape[3:]))
        self.dtype = windows.dtype
        self.per_image = self.num_rows // self.grid[0]

    def ranges(self, block: int):
        """Row ranges of whole images, about ``block`` rows each."""
        step = max(1, block // self.per_image) * self.per_image
        return blocks(self.num_rows, step)

    def rows(self, lo: int, hi: int):
        """Rows ``lo:hi`` (whole images), read from the strided view without a gather."""
        n0, n1 = lo // self.per_image, hi // self.per_image
        return np.moveaxis(self.windows[n0:n1], 3, -1).reshape(-1, self.dim)

    def blocks(self, block: int):
        for lo, hi in self.ranges(block):
            yield lo, hi, self.rows(lo, hi)


# Rows from which the grouping is split over the build threads (below it, threads cost more than they save).
PARALLEL_GROUPING_ROWS = 1 << 21

# Rows per block of a build's passes (hashing, writing and checking, norms): a block's temporaries stay small, and
# blocks are the units of work of the build's threads.
BUILD_BLOCK = 1 << 16


def blocks(num_rows: int, block: int):
    return [(start, min(start + block, num_rows)) for start in range(0, num_rows, block)]


def build_threads() -> int:
    """Threads a dictionary build uses (``ELSJAX_BUILD_THREADS``, default: the CPUs this process may use)."""
    threads = envvars.get("ELSJAX_BUILD_THREADS")
    if threads is not None:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parallel(fn, items) -> list:
    """``[fn(item) for item in items]`` on :func:`build_threads` threads (NumPy releases the GIL in its loops).

    Each item is computed by the same code whatever the thread, so results do not depend on the thread count.
    """
    items = list(items)
    threads = min(build_threads(), len(items))
    if threads <= 1:
        return [fn(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def row_hashes(source, block: int):
    """A 64-bit hash of every row's bytes (FNV-1a over 64-bit words, with an xorshift); equal rows hash alike."""
    row_bytes = source.dim * np.dtype(source.dtype).itemsize
    width = round_up(row_bytes, 8)
    prime = np.uint64(0x100000001B3)
    hashes = np.empty(source.num_rows, np.uint64)

    def hash_block(bounds):
        lo, hi = bounds
        rows = source.rows(lo, hi)
        buffer = np.zeros((hi - lo, width), np.uint8)
        buffer[:, :row_bytes] = rows.view(np.uint8).reshape(hi - lo, row_bytes)
        words = buffer.view(np.uint64)
        h = np.full(hi - lo, 0xCBF29CE484222325, np.uint64)
        for j in range(words.shape[1]):
            h ^= words[:, j]
            h *= prime  # wraps modulo 2^64
            h ^= h >> np.uint64(29)  # a product only moves bits up: fold the high bits back down
        hashes[lo:hi] = h

    parallel(hash_block, source.ranges(block))
    return hashes


def hash_groups(hashes):
    """Groups row indices by 64-bit hash: ``(first [U], counts [U], group_of [M])``.

    Groups are numbered in the order of their first row (``first`` increases), and ``group_of[i]`` is row ``i``'s
    group. Equal hashes need not mean equal rows; :func:`fill_group` checks that.

    Large inputs are split by the top bits of the hash into one part per build thread (equal hashes fall in one
    part), each part grouped on its own thread by :func:`hash_groups_serial`, and the groups numbered together.
    """
    m = len(hashes)
    threads = build_threads()
    if threads <= 1 or m < PARALLEL_GROUPING_ROWS:
        return hash_groups_serial(hashes)
    bits = (threads - 1).bit_length()
    part = (hashes >> np.uint64(64 - bits)).astype(np.uint8)
    rows_of = parallel(lambda p: np.flatnonzero(part == p), range(1 << bits))

    def group_part(rows):
        first, counts, group_of = hash_groups_serial(hashes[rows])  # local row numbers keep the global order
        return rows[first], counts, group_of

    parts = parallel(group_part, rows_of)
    is_first = np.zeros(m, bool)
    for first, _, _ in parts:
        is_first[first] = True
    index = np.int32 if m < 2**31 else np.int64
    number = np.cumsum(is_first, dtype=index)
    number -= 1
    counts = np.empty(int(number[-1]) + 1, np.int64)
    group_of = np.empty(m, index)

    def place(item):
        rows, (first, part_counts, part_group_of) = item
        numbers = number[first]
        counts[numbers] = part_counts
        group_of[rows] = numbers[part_group_of]

    parallel(place, zip(rows_of, parts))
    return np.flatnonzero(is_first), counts, group_of


def hash_groups_serial(hashes):
    """:func:`hash_groups` on one thread.

    Groups are numbered in the order of their first row (``first`` increases), and ``group_of[i]`` is row ``i``'s
    group. Equal hashes need not mean equal rows; :func:`fill_group` checks that.

    Rows are sorted by ``(high hash bits | row index)`` packed in one uint64 (``np.sort``, SIMD, about 10x faster
    than an argsort), so that a run of equal high bits lists its rows in index order and its first row comes first.
    The rare runs whose full hashes differ (high bits equal by chance) are split by full hash. Work in row order is
    random access into arrays of M entries (the slow part at tens of millions of rows), so it is kept to one gather
    and one scatter; counts come from run lengths, group numbers from one cumulative sum.
    """
    m = len(hashes)
    index = np.int32 if m < 2**31 else np.int64
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, index)
    idx_bits = max(1, (m - 1).bit_length())
    if idx_bits > 40:  # fewer than 24 hash bits left to sort on: sort the full hashes instead
        order = np.argsort(hashes, kind="stable").astype(index)
        sorted_hashes = hashes[order]
        new_run = np.empty(m, bool)
        new_run[0] = True
        np.not_equal(sorted_hashes[1:], sorted_hashes[:-1], out=new_run[1:])
        split = np.zeros(0, np.int64)
    else:
        low = np.uint64((1 << idx_bits) - 1)
        packed = hashes & ~low
        packed |= np.arange(m, dtype=np.uint64)
        packed.sort()
        new_run = np.empty(m, bool)
        new_run[0] = True
        buffer = np.empty(m, np.uint64)
        np.bitwise_xor(packed[1:], packed[:-1], out=buffer[1:])
        np.greater(buffer[1:], low, out=new_run[1:])  # the high bits changed
        packed &= low
        order = packed.astype(index)
        del packed
        sorted_hashes = np.take(hashes, order, out=buffer)
        changed = sorted_hashes[1:] != sorted_hashes[:-1]
        changed &= ~new_run[1:]
        split = np.flatnonzero(changed) + 1  # the full hash changes inside a run of equal high bits
        del changed
    del sorted_hashes
    run_start = np.flatnonzero(new_run)
    del new_run
    lengths = np.diff(run_start, append=m)
    first = order[run_start]  # within a run, rows are in index order
    firsts, counts = first, lengths
    if split.size:
        # Split each such run by full hash: distinct runs never share one, and np.unique keeps the first row first.
        runs = np.unique(np.searchsorted(run_start, split, side="right") - 1)
        rows = np.concatenate([order[run_start[r] : run_start[r] + lengths[r]] for r in runs])
        _, head, inverse, sub_counts = np.unique(
            hashes[rows], return_index=True, return_inverse=True, return_counts=True
        )
        keep = np.ones(len(run_start), bool)
        keep[runs] = False
        firsts = np.concatenate([first[keep], rows[head]])
        counts = np.concatenate([lengths[keep], sub_counts])
    # Number the groups by first row without a sort: a group's number is how many first rows precede its own.
    is_first = np.zeros(m, bool)
    is_first[firsts] = True
    number = np.cumsum(is_first, dtype=index)
    number -= 1
    out_counts = np.empty(len(firsts), np.int64)
    out_counts[number[firsts]] = counts
    group_of = np.empty(m, index)
    group_of[order] = np.repeat(number[first], lengths)
    if split.size:
        group_of[rows] = number[rows[head]][inverse.ravel()]
    return np.flatnonzero(is_first), out_counts, group_of


def exact_groups(source, block: int):
    """Grouping by whole rows (a sort of the rows' bytes): the slow path after a 64-bit hash collision."""
    whole = np.concatenate([rows for _, _, rows in source.blocks(block)])
    whole = whole.view(np.uint8).reshape(len(whole), -1)
    _, first, group_of = np.unique(
        whole.view(np.dtype((np.void, whole.shape[1]))).ravel(), return_index=True, return_inverse=True
    )
    number = np.empty(len(first), np.int64)
    number[np.argsort(first)] = np.arange(len(first))
    group_of = number[group_of.ravel()]
    return np.sort(first), np.bincount(group_of, minlength=len(first)), group_of


def groups(source, block: int, deduplicate: bool = True):
    """``(first, counts, group_of)`` for a row source; ``group_of`` is None when every row is its own group."""
    if not deduplicate:
        return np.arange(source.num_rows), np.ones(source.num_rows, np.int64), None
    return hash_groups(row_hashes(source, block))


def fill_group(source, first, group_of, keys, block: int) -> bool:
    """Writes each group's first row to ``keys[:U]`` in one pass over the rows, checking every row against it.

    Blocks of rows are handled on :func:`build_threads` threads; a block's rows are checked once every earlier
    block has written its groups (a row's group starts in its own block or an earlier one).

    Returns False if some row differs from its group's first row (a 64-bit hash collision).
    """
    ranges = source.ranges(block)
    ends = np.searchsorted(first, [hi for _, hi in ranges])  # first increases: the groups that start in each block
    starts = np.concatenate([[0], ends[:-1]])
    filled = [threading.Event() for _ in ranges]
    progress = threading.local()

    def fill_and_check(i):
        lo, hi = ranges[i]
        rows = source.rows(lo, hi)
        keys[starts[i] : ends[i]] = rows[first[starts[i] : ends[i]] - lo]
        filled[i].set()
        if group_of is None:
            return True
        for j in range(getattr(progress, "done", 0), i):  # each thread waits for every earlier block once
            filled[j].wait()
        progress.done = i
        return np.array_equal(rows, keys[group_of[lo:hi]])

    return all(parallel(fill_and_check, range(len(ranges))))


def square_norms(rows, squares=None):
    """Squared norms of rows ``[M, D]``, the canonical way both builds compute them: the float64 squares of the
    float32 values (exact), added in column order in float64, rounded once to float32.

    ``squares``: float64 ``[256]``, the squares of the decoded values of uint8 codes (rows are then codes).
    """
    total = np.zeros(len(rows), np.float64)
    for j in range(rows.shape[1]):
        if squares is None:
            column = rows[:, j].astype(np.float64)
            total += column * column
        else:
            total += squares[rows[:, j]]
    return total.astype(np.float32)


def distinct_rows(rows, *, block: int | None = None):
    """Exact deduplication: the first index of each distinct row of ``rows [M, D]`` and how often it occurs.

    Rows are hashed to 64 bits and grouped by hash, and every row is then compared bitwise with its group's first
    row; only if a hash collision ever showed up would it fall back to sorting whole rows. Float rows compare by
    bit pattern (so -0.0 and 0.0 stay apart: still exact). Rows are read block by block, so ``rows`` may be a lazy
    patch source.

    Returns:
      ``(first [U] int64, counts [U] int64)``, ``first`` in increasing order.
    """
    block = block or BUILD_BLOCK
    source = rows if isinstance(rows, (ArrayRows, PatchRows)) else ArrayRows(rows)
    first, counts, group_of = groups(source, block)
    if not fill_group(source, first, group_of, np.empty((len(first), source.dim), source.dtype), block):
        first, counts, _ = exact_groups(source, block)
    return first, counts
