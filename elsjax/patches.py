"""Patch extraction and patch dictionaries (docs/maths.md §4).

A :class:`PatchDictionary` is everything about a set of training patches that does not depend on the query or on
t, computed once per (training set, class, k) and reused at every reverse step:

* ``keys``: each patch ``psi`` stored *augmented* as ``[psi, ||psi||^2, log_weight]`` so that one
  matrix product with an augmented query gives the logits (see :func:`elsjax.posterior.augment_queries`);
* ``values``: what each entry contributes to the posterior mean (the patch's centre pixel, or a whole image for IS).

Patches are not centred: pixels lie in [-1, 1], whose midrange 0 already minimises the largest terms of the
expanded logits. (Centring on the data mean was measured 2-5x *less* accurate on MNIST: it enlarges stroke pixels.)

Entries are grouped in chunks of static size, ``keys[..., n_chunks, chunk, D + 2]``, so the posterior kernel can
stream them with ``lax.scan``. Padding entries have ``log_weight = PAD_LOG_WEIGHT`` and never receive weight.

Patch vectors are flattened in ``(row, column, channel)`` order, matching :func:`patches_at` for queries.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "PAD_LOG_WEIGHT",
    "PatchDictionary",
    "Region",
    "decode",
    "encode_8bit",
    "to_device",
    "patches_at",
    "distinct_rows",
    "make_dictionary",
    "ideal_dictionary",
    "els_regions",
    "bbels_regions",
    "region_dictionaries",
]

# Finite (not -inf) so that reduced-precision splitting of the matmul on accelerators can never produce NaN.
PAD_LOG_WEIGHT = -1e30
_CODE_SCALE = np.float32(2.0 / 255.0)
_PAD_CODE = 128  # stands in for the zero padding of uint8 dictionaries (see region_dictionaries)


class PatchDictionary(NamedTuple):
    """Training patches prepared for the streaming posterior kernel.

    Attributes:
      keys: ``[..., n_chunks, chunk, D]`` patches, float32 or uint8 codes of 8-bit data (see :func:`decode`).
      aux: ``[..., n_chunks, chunk, 2]`` float32, ``(||psi||^2, log_weight)``: log_weight is the log of the number
        of times the patch occurs (exact deduplication), or :data:`PAD_LOG_WEIGHT` for padding.
      values: ``[..., n_chunks, chunk, V]`` the value of each entry (centre pixel, or whole image), same dtype as keys.
    """

    keys: jax.Array
    aux: jax.Array
    values: jax.Array

    @property
    def num_entries(self) -> int:
        """Number of entries per group, padding included."""
        return self.keys.shape[-3] * self.keys.shape[-2]


def decode(codes):
    """Pixel values of a dictionary array: uint8 codes ``v`` stand for ``v * (2 / 255) - 1``; floats pass through.

    Works on NumPy and JAX arrays alike, with the same float32 arithmetic.
    """
    if codes.dtype == np.uint8:
        return codes.astype(np.float32) * _CODE_SCALE - np.float32(1.0)
    return codes


def encode_8bit(images):
    """uint8 codes of ``images`` if they are 8-bit data in [-1, 1] (``2 v / 255 - 1``), else None.

    The codes decode to the given float32 values up to 2.4e-7 (two float32 ulps at 1), so storing a dictionary as
    codes changes no result beyond float32 rounding while using 4x less memory.
    """
    images = np.asarray(images, np.float32)
    codes = np.rint((images + 1.0) * 127.5)
    if codes.min() < 0 or codes.max() > 255:
        return None
    codes = codes.astype(np.uint8)
    if np.max(np.abs(codes.astype(np.float32) * _CODE_SCALE - 1.0 - images), initial=0.0) > 2.4e-7:
        return None
    return codes


def _as_slice(index):
    """A contiguous index range as a slice (a view, no copy), else the array itself."""
    index = np.asarray(index)
    if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        return slice(int(index[0]), int(index[0]) + index.size)
    return index


def patches_at(image, k: int, rows, cols, padding: str):
    """k x k patches of one image (or a stack of images) centred at every ``(r, c)`` in ``rows x cols``.

    Works on NumPy arrays (dictionary building, on the host, through strided views) and on JAX arrays (queries,
    inside ``jit``).

    Args:
      image: ``[..., H, W, C]``.
      k: odd patch size.
      rows: 1-D integer array of centre rows.
      cols: 1-D integer array of centre columns.
      padding: ``"zeros"`` or ``"circular"``: how the image is extended beyond its border.

    Returns:
      ``[..., len(rows), len(cols), k * k * C]``, each patch flattened in (row, column, channel) order.
    """
    d = k // 2
    mode = {"zeros": "constant", "circular": "wrap"}[padding]
    lead = image.ndim - 3
    out_shape = image.shape[:lead] + (len(rows), len(cols), -1)
    pad_width = [(0, 0)] * lead + [(d, d), (d, d), (0, 0)]
    if isinstance(image, np.ndarray):
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(image, pad_width, mode=mode), (k, k), axis=(-3, -2))
        windows = windows[..., _as_slice(rows), :, :, :, :][..., _as_slice(cols), :, :, :]  # [..., R, Cc, C, k, k]
        return np.moveaxis(windows, -3, -1).reshape(out_shape)
    padded = jnp.pad(image, pad_width, mode=mode)
    offs = np.arange(k)
    r_idx = np.asarray(rows)[:, None] + offs[None, :]  # [R, k] in padded coordinates
    c_idx = np.asarray(cols)[:, None] + offs[None, :]  # [Cc, k]
    return padded[..., r_idx[:, None, :, None], c_idx[None, :, None, :], :].reshape(out_shape)


class _ArrayRows:
    """Rows of an array ``[M, D]``, seen through the interface :func:`distinct_rows` and the builders use."""

    def __init__(self, array):
        self.array = np.ascontiguousarray(array)
        self.num_rows, self.dim = self.array.shape
        self.dtype = self.array.dtype

    def blocks(self, block: int):
        for lo, hi in _blocks(self.num_rows, block):
            yield lo, hi, self.array[lo:hi]


class _PatchRows:
    """The k x k patches of images ``[N, H, W, C]`` (zero-padded) centred at ``rows x cols``, never all in memory.

    Row ``i`` is the patch of image ``n`` at ``(rows[r], cols[c])`` with ``(n, r, c) = unravel(i)``; rows are read
    block by block from a strided view of the padded images, so building a dictionary holds only its distinct patches.
    ``windows`` (from :func:`_patch_windows`) is shared by every group of a region: the padded images exist once.
    """

    def __init__(self, windows, rows, cols):
        self.windows = windows[:, _as_slice(rows)][:, :, _as_slice(cols)]
        self.grid = self.windows.shape[:3]
        self.num_rows, self.dim = int(np.prod(self.grid)), int(np.prod(windows.shape[3:]))
        self.dtype = windows.dtype

    def blocks(self, block: int):
        """Contiguous rows, whole images at a time, read from the strided view without a gather."""
        per_image = self.num_rows // self.grid[0]
        step = max(1, block // per_image)
        for n0 in range(0, self.grid[0], step):
            n1 = min(n0 + step, self.grid[0])
            yield n0 * per_image, n1 * per_image, np.moveaxis(self.windows[n0:n1], 3, -1).reshape(-1, self.dim)


def _patch_windows(images, k: int, pad_value=0):
    """A strided view ``[N, H, W, C, k, k]`` of the k x k windows of the padded images (one padded copy)."""
    d = k // 2
    padded = np.pad(images, ((0, 0), (d, d), (d, d), (0, 0)), constant_values=pad_value)
    return np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))


def _blocks(num_rows: int, block: int):
    return [(start, min(start + block, num_rows)) for start in range(0, num_rows, block)]


def _row_hashes(source, block: int):
    """A 64-bit hash of every row's bytes (FNV-1a over 64-bit words, with an xorshift); equal rows hash alike."""
    row_bytes = source.dim * np.dtype(source.dtype).itemsize
    width = _round_up(row_bytes, 8)
    prime = np.uint64(0x100000001B3)
    hashes = np.empty(source.num_rows, np.uint64)
    for lo, hi, rows in source.blocks(block):
        buffer = np.zeros((hi - lo, width), np.uint8)
        buffer[:, :row_bytes] = rows.view(np.uint8).reshape(hi - lo, row_bytes)
        words = buffer.view(np.uint64)
        h = np.full(hi - lo, 0xCBF29CE484222325, np.uint64)
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * prime  # wraps modulo 2^64
            h ^= h >> np.uint64(29)  # a product only moves bits up: fold the high bits back down
        hashes[lo:hi] = h
    return hashes


def _hash_groups(hashes):
    """Groups row indices by 64-bit hash: ``(first [U], counts [U], group_of [M])``.

    Groups are numbered in the order of their first row (``first`` increases), and ``group_of[i]`` is row ``i``'s
    group. Equal hashes need not mean equal rows; :func:`_fill_group` checks that. Work in row order is random
    access into arrays of M entries (the slow part at tens of millions of rows), so there are only two such passes.
    """
    m = len(hashes)
    index = np.int32 if m < 2**31 else np.int64
    idx_bits = max(1, (m - 1).bit_length())
    if idx_bits <= 28:
        # Sorting (high hash bits | row index) as one uint64 with np.sort (SIMD) is about 10x faster than an
        # argsort; rows that share the high bits come out in index order, and the full hash splits them below.
        shift = np.uint64(idx_bits)
        packed = (hashes >> shift) << shift | np.arange(m, dtype=np.uint64)
        packed.sort()
        order = (packed & np.uint64((1 << idx_bits) - 1)).astype(index)
        del packed
        sorted_hashes = hashes[order]
        new_run = (sorted_hashes[1:] ^ sorted_hashes[:-1]) >> shift != 0
    else:
        order = np.argsort(hashes, kind="stable").astype(index)
        sorted_hashes = hashes[order]
        new_run = sorted_hashes[1:] != sorted_hashes[:-1]
    run_start = np.flatnonzero(np.concatenate([[True], new_run]))
    run_of = np.repeat(np.arange(len(run_start), dtype=index), np.diff(np.append(run_start, m)))
    first = order[run_start]  # within a run, rows are in index order
    # Rows whose full hash differs from their run's first row (high bits equal by chance) get groups of their own.
    split = np.flatnonzero(sorted_hashes != sorted_hashes[run_start[run_of]])
    if split.size:
        rows = order[split]  # index order within a run, and different runs never share a full hash
        _, head, inverse = np.unique(hashes[rows], return_index=True, return_inverse=True)
        run_of[split] = len(first) + inverse
        first = np.concatenate([first, rows[head]])
    del sorted_hashes
    # Number the groups by first row without a sort: a group's number is how many first rows precede its own.
    is_first = np.zeros(m, bool)
    is_first[first] = True
    number = (np.cumsum(is_first, dtype=index) - 1)[first]
    group_of = np.empty(m, index)
    group_of[order] = number[run_of]
    return np.flatnonzero(is_first), np.bincount(group_of, minlength=len(first)), group_of


def _exact_groups(source, block: int):
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


def _groups(source, block: int, deduplicate: bool = True):
    """``(first, counts, group_of)`` for a row source; ``group_of`` is None when every row is its own group."""
    if not deduplicate:
        return np.arange(source.num_rows), np.ones(source.num_rows, np.int64), None
    return _hash_groups(_row_hashes(source, block))


def _fill_group(source, first, group_of, keys, block: int) -> bool:
    """Writes each group's first row to ``keys[:U]`` in one pass over the rows, checking every row against it.

    Returns False if some row differs from its group's first row (a 64-bit hash collision).
    """
    done = 0
    for lo, hi, rows in source.blocks(block):
        end = np.searchsorted(first, hi)  # first increases: the groups that start in this block
        keys[done:end] = rows[first[done:end] - lo]
        done = end
        if group_of is not None and not np.array_equal(rows, keys[group_of[lo:hi]]):
            return False
    return True


def distinct_rows(rows, *, block: int = 1 << 16):
    """Exact deduplication: the first index of each distinct row of ``rows [M, D]`` and how often it occurs.

    Rows are hashed to 64 bits and grouped by hash, and every row is then compared bitwise with its group's first
    row; only if a hash collision ever showed up would it fall back to sorting whole rows. Float rows compare by
    bit pattern (so -0.0 and 0.0 stay apart: still exact). Rows are read block by block, so ``rows`` may be a lazy
    patch source.

    Returns:
      ``(first [U] int64, counts [U] int64)``, ``first`` in increasing order.
    """
    source = rows if isinstance(rows, (_ArrayRows, _PatchRows)) else _ArrayRows(rows)
    first, counts, group_of = _groups(source, block)
    if not _fill_group(source, first, group_of, np.empty((len(first), source.dim), source.dtype), block):
        first, counts, _ = _exact_groups(source, block)
    return first, counts


def make_dictionary(keys, values, *, chunk_size: int = 4096, deduplicate: bool = True) -> PatchDictionary:
    """Deduplicates, pads and chunks patches ``keys [M, D]`` with ``values [M, V]`` for the posterior kernel.

    Args:
      keys: patches ``[M, D]``, float32 or uint8 codes (see :func:`decode`).
      values: ``[M, V]``, the value of each entry, same dtype as keys.
      chunk_size: maximum number of entries per chunk.
      deduplicate: keep each distinct patch once with log(count) on its logit (exact when values are a function of
        the key, as a centre pixel or a whole image is).

    Returns:
      The :class:`PatchDictionary` (device arrays).
    """
    table = _assemble([_ArrayRows(keys)], [np.asarray(values)], chunk_size=chunk_size, deduplicate=deduplicate)
    return PatchDictionary(*(a[0] for a in table))


def _assemble(
    sources, values, *, chunk_size: int, deduplicate: bool, block: int = 1 << 16, device: bool = True
) -> PatchDictionary:
    """One grouped dictionary from row sources (one per group): distinct rows written straight into place.

    ``values[g]`` is an array of per-row values, or a slice of key columns (the centre pixel, or the whole image).
    ``device=False`` returns the host (NumPy) arrays, 64-byte aligned, instead of device arrays.
    """
    for source in sources:
        if source.num_rows == 0:
            raise ValueError("dictionary: no patches (empty training set or class)")
    groups = [_groups(source, block, deduplicate) for source in sources]
    n_groups, dim, dtype = len(sources), sources[0].dim, sources[0].dtype
    while True:  # runs once, twice after a 64-bit hash collision
        m = max(len(first) for first, _, _ in groups)
        chunk = min(chunk_size, _round_up(m, 8))
        size = math.ceil(m / chunk) * chunk
        keys = _aligned_zeros((n_groups, size, dim), dtype)
        collided = [
            g
            for g, (source, (first, _, group_of)) in enumerate(zip(sources, groups))
            if not _fill_group(source, first, group_of, keys[g], block)
        ]
        if not collided:
            break
        for g in collided:
            groups[g] = _exact_groups(sources[g], block)
    n_values = values[0].stop - values[0].start if isinstance(values[0], slice) else values[0].shape[-1]
    vals = _aligned_zeros((n_groups, size, n_values), dtype)
    aux = _aligned_zeros((n_groups, size, 2), np.float32)
    aux[..., 1] = PAD_LOG_WEIGHT
    for g, (first, counts, _) in enumerate(groups):
        for lo, hi in _blocks(len(first), block):
            rows = keys[g, lo:hi]
            floats = decode(rows) if dtype == np.uint8 else rows
            # Accumulated in float64 and rounded once: the norm is the largest term of the expanded logit.
            aux[g, lo:hi, 0] = np.einsum("md,md->m", floats, floats, dtype=np.float64)
            vals[g, lo:hi] = rows[:, values[g]] if isinstance(values[g], slice) else values[g][first[lo:hi]]
        aux[g, : len(first), 1] = np.log(counts)
    shape = lambda a: a.reshape(n_groups, size // chunk, chunk, a.shape[-1])
    if not device:
        return PatchDictionary(*(shape(a) for a in (keys, aux, vals)))
    # may_alias: on CPU the device arrays share the (aligned) host buffers instead of copying them.
    return to_device(PatchDictionary(*(shape(a) for a in (keys, aux, vals))))


def to_device(dictionary: PatchDictionary) -> PatchDictionary:
    """A host dictionary's arrays on the default device; on CPU the device arrays share the (aligned) host buffers."""
    return PatchDictionary(*(jax.device_put(a, may_alias=True) for a in dictionary))


def _aligned_zeros(shape, dtype, alignment: int = 64):
    """``np.zeros`` whose data starts on an ``alignment``-byte boundary.

    On CPU, ``jax.device_put(..., may_alias=True)`` shares a host buffer only if it is aligned as XLA wants (NumPy's
    large allocations are 16-byte aligned); otherwise XLA copies it lazily at first use, which briefly held two
    copies of the largest array of a run (measured: +3.5 GB at the first evaluation of a 3.5 GB dictionary).
    """
    count = int(np.prod(shape))
    raw = np.zeros(count * np.dtype(dtype).itemsize + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + count * np.dtype(dtype).itemsize].view(dtype).reshape(shape)


def _round_up(m: int, multiple: int) -> int:
    return -(-m // multiple) * multiple


def _storage(images):
    """8-bit codes when the data is 8-bit (4x smaller dictionaries), else float32."""
    codes = encode_8bit(images)
    return codes if codes is not None else np.asarray(images, np.float32)


def ideal_dictionary(
    images, *, chunk_size: int = 256, deduplicate: bool = True, device: bool = True
) -> PatchDictionary:
    """IS dictionary: whole training images as keys and as values (docs/maths.md §4.2).

    ``device=False`` returns host (NumPy) arrays; :func:`to_device` moves them.
    """
    stored = _storage(images)
    flat = _ArrayRows(stored.reshape(stored.shape[0], -1))
    table = _assemble([flat], [slice(0, flat.dim)], chunk_size=chunk_size, deduplicate=deduplicate, device=device)
    return PatchDictionary(*(a[0] for a in table))


class Region(NamedTuple):
    """A set of query-pixel groups that share a dictionary layout.

    Group ``g`` holds the query pixels ``pixels[g]`` (flat indices ``r * W + c``) and is answered by the dictionary
    of the training patches centred at ``centre_rows[g] x centre_cols[g]`` (the same positions in every image).
    """

    pixels: np.ndarray  # [G, Q_g] int
    centre_rows: np.ndarray  # [G, R_g] int
    centre_cols: np.ndarray  # [G, C_g] int


def els_regions(h: int, w: int, k: int) -> tuple[Region, ...]:
    """ELS: every pixel queries one dictionary of all valid (fully interior) patches (docs/maths.md §4.4)."""
    d = k // 2
    rows, cols = np.arange(d, h - d), np.arange(d, w - d)
    return (Region(np.arange(h * w)[None], rows[None], cols[None]),)


def bbels_regions(h: int, w: int, k: int) -> tuple[Region, ...]:
    """bbELS: centre, edge and corner regions, each with its own dictionary (docs/maths.md §4.5).

    A coordinate in a border band (``< d`` or ``>= size - d``) only sees patches centred at that same coordinate; an
    interior coordinate sees patches centred at any interior coordinate.
    """
    d = k // 2
    in_r, in_c = np.arange(d, h - d), np.arange(d, w - d)
    bd_r = np.concatenate([np.arange(min(d, h)), np.arange(max(h - d, d), h)])
    bd_c = np.concatenate([np.arange(min(d, w)), np.arange(max(w - d, d), w)])
    regions = []
    if in_r.size and in_c.size:  # centre: the ELS dictionary
        regions.append(Region((in_r[:, None] * w + in_c[None, :]).reshape(1, -1), in_r[None], in_c[None]))
    if bd_r.size and in_c.size:  # top and bottom bands, one group per border row
        regions.append(Region(bd_r[:, None] * w + in_c[None, :], bd_r[:, None], np.repeat(in_c[None], bd_r.size, 0)))
    if in_r.size and bd_c.size:  # left and right bands, one group per border column
        regions.append(Region(in_r[None, :] * w + bd_c[:, None], np.repeat(in_r[None], bd_c.size, 0), bd_c[:, None]))
    if bd_r.size and bd_c.size:  # corners: one group per pixel, LS behaviour
        rr, cc = np.meshgrid(bd_r, bd_c, indexing="ij")
        rr, cc = rr.reshape(-1, 1), cc.reshape(-1, 1)
        regions.append(Region(rr * w + cc, rr, cc))
    return tuple(regions)


def region_dictionaries(
    images, k: int, regions, *, chunk_size: int = 4096, deduplicate: bool = True, device: bool = True
) -> tuple[PatchDictionary, ...]:
    """Builds one grouped :class:`PatchDictionary` per region from training images ``[N, H, W, C]``.

    The training images are zero-padded, so border-region patches carry the same zero padding as their queries;
    interior patches never touch the padding (they are the ELS "valid" patches).

    8-bit data is stored as uint8 codes (4x less memory), the padding included. Zero has no 8-bit code, but in every
    group of a bbELS region the padding sits at the same positions of every patch (a border row or column, or a
    corner pixel, is a single coordinate), and the zero-padded queries are zero there. So the padding may hold any
    constant code: it adds nothing to ``<q, psi>`` and the same constant to every ``||psi||^2`` of the group, which
    cancels in the softmax. The code 128 (0.0039) keeps that constant negligible. Groups whose padding is not at
    fixed positions are stored in float32 with true zeros.

    ``device=False`` returns host (NumPy) arrays; :func:`to_device` moves them.
    """
    images = np.asarray(images, np.float32)
    h, w, c = images.shape[1:]
    d = k // 2
    codes = encode_8bit(images)
    centre = (k // 2) * k + k // 2  # flat index of the centre pixel within a k x k patch
    fixed = lambda coords, size: coords.size == 1 or (coords.min() >= d and coords.max() < size - d)
    windows = {}  # one padded copy per storage, shared by all groups and regions
    out = []
    for region in regions:
        fixed_padding = all(fixed(r, h) and fixed(cc, w) for r, cc in zip(region.centre_rows, region.centre_cols))
        source = codes if (codes is not None and fixed_padding) else images
        if source.dtype not in windows:
            windows[source.dtype] = _patch_windows(source, k, pad_value=_PAD_CODE if source.dtype == np.uint8 else 0)
        groups = [
            _PatchRows(windows[source.dtype], rows, cols) for rows, cols in zip(region.centre_rows, region.centre_cols)
        ]
        centre_pixel = [slice(centre * c, (centre + 1) * c)] * len(groups)
        out.append(_assemble(groups, centre_pixel, chunk_size=chunk_size, deduplicate=deduplicate, device=device))
    return tuple(out)
