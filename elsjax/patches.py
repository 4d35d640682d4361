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

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from elsjax import compiled_dedup, dedup

__all__ = [
    "PAD_LOG_WEIGHT",
    "SHARED_SHAPE_BITS",
    "PatchDictionary",
    "ImageStack",
    "Region",
    "decode",
    "encode_8bit",
    "device_put",
    "aligned_zeros",
    "patches_at",
    "make_dictionary",
    "ideal_dictionary",
    "els_regions",
    "bbels_regions",
    "region_dictionaries",
    "Occurrences",
    "region_occurrences",
    "ideal_occurrences",
    "bucket",
    "HostBuilder",
    "CompiledBuilder",
    "default_builder",
]

# Finite (not -inf) so that reduced-precision splitting of the matmul on accelerators can never produce NaN.
PAD_LOG_WEIGHT = -1e30
_CODE_SCALE = np.float32(2.0 / 255.0)
_PAD_CODE = 128  # stands in for the zero padding of uint8 dictionaries (see region_dictionaries)

# Significant bits kept when shared shapes round a one-group table's chunk count up (4: at most 1/8 more chunks,
# 4.5% on average over the per-class dictionaries of MNIST and Fashion-MNIST; see experiments/results/fixed_costs.md).
SHARED_SHAPE_BITS = 4


def bucket(n: int, bits: int) -> int:
    """``n`` rounded up to ``bits`` significant binary digits (``bucket(9, 2) == 12``, ``bucket(100, 4) == 104``).

    Shared shapes (``shape_bits`` of the dictionary builders): each compiled program serves one dictionary shape,
    and the exact deduplication gives every class (and every training set) its own size, so a job that builds the
    dictionaries of several classes would compile one program per (class, k). With ``shape_bits=b`` every table
    uses full chunks (``chunk_size`` entries) and its chunk count is rounded up by :func:`bucket`: to ``b``
    significant bits for one-group tables (ELS, IS, the bbELS centre: the costly ones), to a power of two for
    tables of several groups (bbELS borders and corners, whose queries are few). Padding entries have
    ``log_weight = PAD_LOG_WEIGHT``: a padding chunk leaves the softmax state bit for bit unchanged, so results are
    identical; it only costs its share of the evaluation.

    Example:
      >>> import numpy as np
      >>> keys = np.arange(68, dtype=np.float32).reshape(34, 2)  # 17 chunks of 2
      >>> make_dictionary(keys, keys[:, :1], chunk_size=2, shape_bits=SHARED_SHAPE_BITS).keys.shape
      (18, 2, 2)
    """
    step = 1 << max(0, int(n).bit_length() - bits)
    return -(-int(n) // step) * step


def _layout(m: int, chunk_size: int, n_groups: int, bits: int | None) -> tuple[int, int]:
    """``(chunk, n_chunks)`` of a table of ``n_groups`` groups of at most ``m`` distinct entries each."""
    if bits is None:
        chunk = min(chunk_size, _round_up(m, 8))
        return chunk, math.ceil(m / chunk)
    return chunk_size, bucket(math.ceil(m / chunk_size), bits if n_groups == 1 else 1)


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


class ImageStack(NamedTuple):
    """Training images chunked for the LS machine: ``images [n_chunks, chunk, H, W, C]``, ``log_weights [n, chunk]``.

    Padding images are zero with ``log_weight = PAD_LOG_WEIGHT``.
    """

    images: jax.Array
    log_weights: jax.Array


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
        windows = windows[..., dedup.as_slice(rows), :, :, :, :][
            ..., dedup.as_slice(cols), :, :, :
        ]  # [..., R, Cc, C, k, k]
        return np.moveaxis(windows, -3, -1).reshape(out_shape)
    padded = jnp.pad(image, pad_width, mode=mode)
    offs = np.arange(k)
    r_idx = np.asarray(rows)[:, None] + offs[None, :]  # [R, k] in padded coordinates
    c_idx = np.asarray(cols)[:, None] + offs[None, :]  # [Cc, k]
    return padded[..., r_idx[:, None, :, None], c_idx[None, :, None, :], :].reshape(out_shape)


def _padded(images, k: int, pad_value=0, padding: str = "zeros"):
    """The images ``[N, H + k - 1, W + k - 1, C]`` padded by ``k // 2`` on each side with ``pad_value``.

    ``padding="circular"`` wraps the images around instead (``pad_value`` unused)."""
    d = k // 2
    width = ((0, 0), (d, d), (d, d), (0, 0))
    if padding == "circular":
        return np.pad(images, width, mode="wrap")
    return np.pad(images, width, constant_values=pad_value)


def make_dictionary(
    keys, values, *, chunk_size: int = 4096, deduplicate: bool = True, shape_bits: int | None = None, builder=None
) -> PatchDictionary:
    """Deduplicates, pads and chunks patches ``keys [M, D]`` with ``values [M, V]`` for the posterior kernel.

    Args:
      keys: patches ``[M, D]``, float32 or uint8 codes (see :func:`decode`).
      values: ``[M, V]``, the value of each entry, same dtype as keys.
      chunk_size: maximum number of entries per chunk.
      deduplicate: keep each distinct patch once with log(count) on its logit (exact when values are a function of
        the key, as a centre pixel or a whole image is).
      shape_bits: round the chunk count up to shared shapes (:func:`bucket`); None: the exact size.
      builder: :class:`HostBuilder` or :class:`CompiledBuilder` (the same dictionary); None: :func:`default_builder`.

    Returns:
      The :class:`PatchDictionary` (device arrays).
    """
    table = _build(
        builder,
        [dedup.ArrayRows(keys)],
        [np.asarray(values)],
        chunk_size=chunk_size,
        deduplicate=deduplicate,
        shape_bits=shape_bits,
    )
    return PatchDictionary(*(a[0] for a in table))


def _assemble(
    sources,
    values,
    *,
    chunk_size: int,
    deduplicate: bool,
    block: int | None = None,
    to_device: bool = True,
    shape_bits: int | None = None,
) -> PatchDictionary:
    """One grouped dictionary from row sources (one per group), on the host: distinct rows written into place.

    ``values[g]`` is an array of per-row values, or a slice of key columns (the centre pixel, or the whole image).
    ``to_device=False`` returns the host (NumPy) arrays, 64-byte aligned, instead of device arrays.
    """
    block = block or dedup.BUILD_BLOCK
    groups = [dedup.groups(source, block, deduplicate) for source in sources]
    n_groups, dim, dtype = len(sources), sources[0].dim, sources[0].dtype
    while True:  # runs once, twice after a 64-bit hash collision
        m = max(len(first) for first, _, _ in groups)
        chunk, n_chunks = _layout(m, chunk_size, n_groups, shape_bits)
        size = n_chunks * chunk
        keys = aligned_zeros((n_groups, size, dim), dtype)
        collided = [
            g
            for g, (source, (first, _, group_of)) in enumerate(zip(sources, groups))
            if not dedup.fill_group(source, first, group_of, keys[g], block)
        ]
        if not collided:
            break
        for g in collided:
            groups[g] = dedup.exact_groups(sources[g], block)
    n_values = values[0].stop - values[0].start if isinstance(values[0], slice) else values[0].shape[-1]
    vals = aligned_zeros((n_groups, size, n_values), dtype)
    aux = aligned_zeros((n_groups, size, 2), np.float32)
    aux[..., 1] = PAD_LOG_WEIGHT
    squares = _code_squares() if dtype == np.uint8 else None

    def norms_and_values(item):
        g, lo, hi = item
        first = groups[g][0]
        rows = keys[g, lo:hi]
        aux[g, lo:hi, 0] = dedup.square_norms(rows, squares)  # the largest term of the expanded logit
        vals[g, lo:hi] = rows[:, values[g]] if isinstance(values[g], slice) else values[g][first[lo:hi]]

    dedup.parallel(
        norms_and_values, [(g, lo, hi) for g, (f, _, _) in enumerate(groups) for lo, hi in dedup.blocks(len(f), block)]
    )
    for g, (first, counts, _) in enumerate(groups):
        aux[g, : len(first), 1] = np.log(counts)
    shape = lambda a: a.reshape(n_groups, size // chunk, chunk, a.shape[-1])
    if not to_device:
        return PatchDictionary(*(shape(a) for a in (keys, aux, vals)))
    # may_alias: on CPU the device arrays share the (aligned) host buffers instead of copying them.
    return device_put(PatchDictionary(*(shape(a) for a in (keys, aux, vals))))


def _code_squares():
    """float64 squares of the decoded values of the 256 uint8 codes (exact: float32 values)."""
    return decode(np.arange(256, dtype=np.uint8)).astype(np.float64) ** 2


def _assemble_compiled(sources, values, *, chunk_size, deduplicate, to_device=True, shape_bits=None, hash_mask):
    """:func:`_assemble` in compiled programs on the default device (:mod:`elsjax.compiled_dedup`), bit for bit."""
    as_patches = lambda s: (s.padded, s.k, s.centre_rows, s.centre_cols) if isinstance(s, dedup.PatchRows) else (
        s.array[:, None, None, :], 1, np.zeros(1, np.int32), np.zeros(1, np.int32))  # fmt: skip
    by_columns = isinstance(values[0], slice)
    table = compiled_dedup.assemble(
        [as_patches(s) for s in sources],
        layout=lambda m: _layout(m, chunk_size, len(sources), shape_bits),
        deduplicate=deduplicate, hash_mask=hash_mask, pad_log_weight=PAD_LOG_WEIGHT,
        value_columns=(values[0].start, values[0].stop) if by_columns else None,
        value_rows=None if by_columns else values[0],
        squares=_code_squares() if sources[0].dtype == np.uint8 else None,
    )  # fmt: skip
    if to_device:
        return PatchDictionary(*table)
    return PatchDictionary(*(_aligned_copy(np.asarray(a)) for a in table))


def _aligned_copy(a):
    out = aligned_zeros(a.shape, a.dtype)
    out[...] = a
    return out


@dataclasses.dataclass(frozen=True)
class HostBuilder:
    """Builds dictionaries with NumPy on the host, on :func:`elsjax.dedup.build_threads` threads."""

    def assemble(self, sources, values, **options) -> PatchDictionary:
        return _assemble(sources, values, **options)


@dataclasses.dataclass(frozen=True)
class CompiledBuilder:
    """Builds dictionaries in compiled programs on the default device (:mod:`elsjax.compiled_dedup`).

    The same dictionaries as :class:`HostBuilder`, bit for bit. ``hash_mask``: the hash bits kept (fewer force
    collisions, for tests).
    """

    hash_mask: int = compiled_dedup.FULL_HASH

    def assemble(self, sources, values, **options) -> PatchDictionary:
        options.pop("block", None)
        return _assemble_compiled(sources, values, hash_mask=self.hash_mask, **options)


def default_builder() -> HostBuilder | CompiledBuilder:
    """The faster build for the default backend: compiled on accelerators, on the host on CPU (measured by
    experiments/bench_build.py)."""
    return HostBuilder() if jax.default_backend() == "cpu" else CompiledBuilder()


def _build(builder, sources, values, **options) -> PatchDictionary:
    for source in sources:
        if source.num_rows == 0:
            raise ValueError("dictionary: no patches (empty training set or class)")
    return (builder or default_builder()).assemble(sources, values, **options)


def device_put(dictionary: PatchDictionary) -> PatchDictionary:
    """A host dictionary's arrays on the default device; on CPU the device arrays share the (aligned) host buffers."""
    return PatchDictionary(*(jax.device_put(a, may_alias=True) for a in dictionary))


def aligned_zeros(shape, dtype, alignment: int = 64):
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
    images,
    *,
    chunk_size: int = 256,
    deduplicate: bool = True,
    to_device: bool = True,
    shape_bits: int | None = None,
    builder=None,
) -> PatchDictionary:
    """IS dictionary: whole training images as keys and as values (docs/maths.md §4.2).

    ``to_device=False`` returns host (NumPy) arrays, 64-byte aligned (for :mod:`elsjax.sharding`, which places the
    pieces itself); :func:`device_put` moves them. ``shape_bits``: see :func:`bucket`. ``builder``: see
    :func:`make_dictionary`.
    """
    stored = _storage(images)
    flat = dedup.ArrayRows(stored.reshape(stored.shape[0], -1))
    table = _build(
        builder,
        [flat], [slice(0, flat.dim)], chunk_size=chunk_size, deduplicate=deduplicate, to_device=to_device,
        shape_bits=shape_bits,
    )  # fmt: skip
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
    images,
    k: int,
    regions,
    *,
    chunk_size: int = 4096,
    deduplicate: bool = True,
    to_device: bool = True,
    shape_bits: int | None = None,
    padding: str = "zeros",
    builder=None,
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

    ``to_device=False`` returns host (NumPy) arrays, 64-byte aligned (for :mod:`elsjax.sharding`, which places the
    pieces itself); :func:`device_put` moves them. ``shape_bits``: see :func:`bucket`. ``padding="circular"``
    wraps the training images around instead of zero-padding them (ELS's ``data_padding="circular"``; every patch
    is then made of training pixels, so 8-bit data is always stored as codes). ``builder``: see
    :func:`make_dictionary`.
    """
    images = np.asarray(images, np.float32)
    c = images.shape[-1]
    centre = (k // 2) * k + k // 2  # flat index of the centre pixel within a k x k patch
    out = []
    for groups in _region_sources(images, k, regions, padding):
        centre_pixel = [slice(centre * c, (centre + 1) * c)] * len(groups)
        out.append(
            _build(
                builder,
                groups,
                centre_pixel,
                chunk_size=chunk_size,
                deduplicate=deduplicate,
                to_device=to_device,
                shape_bits=shape_bits,
            )  # fmt: skip
        )
    return tuple(out)


def _region_sources(images, k, regions, padding: str = "zeros"):
    """Per region, the row source of each group (uint8 codes where the padding is at fixed positions, or wraps)."""
    h, w = images.shape[1:3]
    d = k // 2
    codes = encode_8bit(images)
    fixed = lambda coords, size: coords.size == 1 or (coords.min() >= d and coords.max() < size - d)
    padded = {}  # one padded copy per storage, shared by all groups and regions
    for region in regions:
        fixed_padding = padding == "circular" or all(
            fixed(r, h) and fixed(cc, w) for r, cc in zip(region.centre_rows, region.centre_cols)
        )
        source = codes if (codes is not None and fixed_padding) else images
        if source.dtype not in padded:
            pad_value = _PAD_CODE if source.dtype == np.uint8 else 0
            padded[source.dtype] = _padded(source, k, pad_value=pad_value, padding=padding)
        yield [
            dedup.PatchRows(padded[source.dtype], k, rows, cols)
            for rows, cols in zip(region.centre_rows, region.centre_cols)
        ]


class Occurrences(NamedTuple):
    """Where the entries of one grouped dictionary come from: a host-side (NumPy) side table for provenance.

    Entry ``j`` of group ``g`` is the distinct patch (or image) whose first occurrence, in (image, row, column)
    order, is source row ``first[g, j]`` of that group, and which occurs ``counts[g, j]`` times; source row ``i``
    is the patch of image ``n`` centred at ``(centre_rows[g][r], centre_cols[g][c])`` with
    ``(n, r, c) = np.unravel_index(i, (N, R_g, C_g))`` (docs/maths.md §11.3). Entries past a group's distinct
    patches (padding) have ``first = -1`` and ``counts = 0``.

    Attributes:
      first: ``[G, U]`` int64, flat source row of each entry's first occurrence.
      counts: ``[G, U]`` int64, occurrences of each entry.
      centre_rows: ``[G, R]`` int, the centre rows of group g's patches (for IS: ``[[0]]``).
      centre_cols: ``[G, C]`` int, the centre columns (for IS: ``[[0]]``).
    """

    first: np.ndarray
    counts: np.ndarray
    centre_rows: np.ndarray
    centre_cols: np.ndarray

    def locate(self, group, entry):
        """``(image, row, col, count)`` of entries ``entry`` (any shape) in groups ``group`` (broadcast); -1 (and a
        count of 0) for padding or negative entries."""
        group, entry = np.broadcast_arrays(np.asarray(group, np.int64), np.asarray(entry, np.int64))
        valid = (entry >= 0) & (entry < self.first.shape[1])
        safe = np.where(valid, entry, 0)
        first = np.where(valid, self.first[group, safe], -1)
        valid &= first >= 0
        first = np.where(valid, first, 0)
        n_rows, n_cols = self.centre_rows.shape[1], self.centre_cols.shape[1]
        image, rest = np.divmod(first, n_rows * n_cols)
        r, c = np.divmod(rest, n_cols)
        row, col = self.centre_rows[group, r], self.centre_cols[group, c]
        invalid = lambda a: np.where(valid, a, -1)
        return invalid(image), invalid(row), invalid(col), np.where(valid, self.counts[group, safe], 0)


def _occurrences(sources, deduplicate: bool, rows, cols) -> Occurrences:
    found = [
        dedup.distinct_rows(source) if deduplicate else (np.arange(source.num_rows), np.ones(source.num_rows, np.int64))
        for source in sources
    ]
    size = max(len(first) for first, _ in found)
    first = np.full((len(found), size), -1, np.int64)
    counts = np.zeros((len(found), size), np.int64)
    for g, (f, n) in enumerate(found):
        first[g, : len(f)], counts[g, : len(n)] = f, n
    return Occurrences(first, counts, np.asarray(rows), np.asarray(cols))


def region_occurrences(
    images, k: int, regions, *, deduplicate: bool = True, padding: str = "zeros"
) -> tuple[Occurrences, ...]:
    """The :class:`Occurrences` of each region's dictionary, as :func:`region_dictionaries` builds them.

    It groups the same rows the same way (exact deduplication, groups in order of first occurrence), so entry j
    here is entry j of the built dictionary, whatever its chunk size or shape padding. It costs one hashing pass
    over the patches and holds no dictionary.

    Example:
      >>> import numpy as np
      >>> images = np.zeros((3, 5, 5, 1), np.float32)          # every patch is the same: one entry, 27 occurrences
      >>> occ = region_occurrences(images, 3, els_regions(5, 5, 3))[0]
      >>> occ.counts.tolist(), [int(v) for v in occ.locate(0, 0)]    # (image, row, col, count)
      ([[27]], [0, 1, 1, 27])
    """
    images = np.asarray(images, np.float32)
    return tuple(
        _occurrences(groups, deduplicate, region.centre_rows, region.centre_cols)
        for groups, region in zip(_region_sources(images, k, regions, padding), regions)
    )


def ideal_occurrences(images, *, deduplicate: bool = True) -> Occurrences:
    """The :class:`Occurrences` of :func:`ideal_dictionary`'s entries (whole images; position ``(0, 0)``)."""
    stored = _storage(images)
    flat = dedup.ArrayRows(stored.reshape(stored.shape[0], -1))
    return _occurrences([flat], deduplicate, [[0]], [[0]])
