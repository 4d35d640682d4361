"""The equivariant local score machines: ELS (docs/maths.md §4.4) and boundary-broken ELS (bbELS, §4.5).

Each pixel's query is its k x k patch; it is answered by the dictionary of its region (:class:`~elsjax.patches.Region`):
ELS has one region, every valid patch of every training image, queried with circular patches; bbELS has a centre
region (the ELS dictionary) and border and corner regions with their own, queried with zero-padded patches.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from elsjax import noise, patches, posterior
from elsjax.denoisers._base import register, static
from elsjax.denoisers._tables import DictionaryDenoiser, located, per_pixel
from elsjax.patches import PAD_LOG_WEIGHT

__all__ = [
    "PatchDenoiser",
    "PaddedShape",
    "PatchLayout",
    "EquivariantLocal",
    "BoundaryBroken",
    "DATA_PADDINGS",
    "circular_regions",
]

# Dictionary entries per streamed chunk. On CPU the [queries x chunk] logits block should stay near the caches
# (measured by experiments/bench.py: 512-2048 beat 4096-8192 for 1024 queries); accelerators want big GEMMs.
PATCH_CHUNK = {"cpu": 1024}
PATCH_CHUNK_ACCELERATOR = 16384


def default_patch_chunk() -> int:
    """The patch chunk size for the default backend."""
    return PATCH_CHUNK.get(jax.default_backend(), PATCH_CHUNK_ACCELERATOR)


class PaddedShape(NamedTuple):
    """The shapes a padded patch machine's program is compiled for (hashable; :meth:`PatchDenoiser.pad`).

    Attributes:
      k: the largest patch size it holds: ``k * k`` pixel slots per query, keys of ``C k^2`` values.
      tables: per table ``(groups, queries per group, chunk, chunks)``.
    """

    k: int
    tables: tuple[tuple[int, int, int, int], ...]

    def union(self, other: PaddedShape) -> PaddedShape:
        """The smallest shape that holds both (same number of tables)."""
        if len(self.tables) != len(other.tables):
            raise ValueError(f"shape: {self} and {other} have different tables")
        tables = tuple(tuple(map(max, a, b)) for a, b in zip(self.tables, other.tables))
        return PaddedShape(max(self.k, other.k), tables)


class PatchLayout(NamedTuple):
    """What a patch machine's evaluation needs of its patch size and table shapes, as arrays: host constants for
    the exact machine, data (pytree leaves) for a padded one, so that machines of different k share one program.

    Attributes:
      rows, cols: ``[H * W, S]`` int32, the image pixel in each of the ``S`` slots of each query pixel's patch (slot
        ``p < k * k`` is patch pixel ``(p // k, p % k)``, the flattening order of :func:`elsjax.patches.patches_at`).
      inside: ``[H * W, S]`` bool, False where the slot holds a zero (past ``k * k``, or beyond a zero-padded border).
      pixels: per table ``[G, Q]`` int32, the query pixels of each group (padding queries: pixel 0, never read).
      order: ``[H * W]`` int32, each pixel's place among the tables' results ``[G * Q]``, concatenated.
      num_chunks: per table the chunks to stream (int32 scalars; None: all).
      patch_size: the k it evaluates (int32; a padded machine's static ``k`` is its shape's).
    """

    rows: Any
    cols: Any
    inside: Any
    pixels: tuple
    order: Any
    num_chunks: tuple
    patch_size: Any


def _pad_table(table: patches.PatchDictionary, groups: int, chunk: int, n_chunks: int, width: int):
    """``table`` as ``groups x n_chunks`` chunks of ``chunk`` entries with keys of ``width`` values, and the number
    of chunks that hold its entries. Padding keys are zero (their queries are zero), padding entries have
    ``PAD_LOG_WEIGHT``; entries past ``n_chunks * chunk`` must be padding."""
    g, n, c, dim = table.keys.shape
    size = min(n * c, n_chunks * chunk)
    count = -(-size // chunk)

    def fit(a, fill, new_dim):
        flat = jnp.asarray(a).reshape(g, n * c, a.shape[-1])[:, :size]
        pads = ((0, groups - g), (0, n_chunks * chunk - size), (0, new_dim - a.shape[-1]))
        return jnp.pad(flat, pads, constant_values=fill).reshape(groups, n_chunks, chunk, new_dim)

    aux = table.aux
    norms, log_weights = fit(aux[..., :1], 0, 1), fit(aux[..., 1:], PAD_LOG_WEIGHT, 1)
    keys = fit(table.keys, 0, width)
    values = fit(table.values, 0, table.values.shape[-1])
    return patches.PatchDictionary(keys, jnp.concatenate([norms, log_weights], axis=-1), values), count


@dataclasses.dataclass(frozen=True)
class PatchDenoiser(DictionaryDenoiser):
    """A posterior over training patches, one dictionary per region of query pixels."""

    layout: PatchLayout | None = None  # None: the layout of the static k, exact sizes

    query_padding: ClassVar[str] = "zeros"

    @classmethod
    def regions(cls, h: int, w: int, k: int) -> tuple[patches.Region, ...]:
        raise NotImplementedError

    @classmethod
    def build_tables(cls, images, k, *, chunk_size, deduplicate, to_device, shape_bits, builder=None) -> tuple:
        h, w = images.shape[1:3]
        return patches.region_dictionaries(
            images, k, cls.regions(h, w, k), chunk_size=chunk_size or default_patch_chunk(), deduplicate=deduplicate,
            to_device=to_device, shape_bits=shape_bits, builder=builder,
        )  # fmt: skip

    def accumulate(self, x, t, accumulator, combine=None):
        a, b = noise.signal_noise_std(t)
        n_img, h, w, c = x.shape
        layout = self.layout if self.layout is not None else self.patch_layout(h, w, self.k)
        # Every query pixel's patch, gathered slot by slot ([B, H * W, S * C]); zero where a slot is padding.
        queries = jnp.where(layout.inside[None, :, :, None], x[:, layout.rows, layout.cols], 0.0)
        queries = queries.reshape(n_img, h * w, -1)
        outs = []
        for pixels, num_chunks, dictionary in zip(layout.pixels, layout.num_chunks, self.tables):
            n_groups, q_per_group = pixels.shape
            # Queries of every image in a group form one batch, [G, B * Q_g, D]; a and b follow each query's image.
            group_q = queries[:, pixels].transpose(1, 0, 2, 3).reshape(n_groups, n_img * q_per_group, -1)
            a_q, b_q = jnp.repeat(a, q_per_group), jnp.repeat(b, q_per_group)
            aug = jax.vmap(posterior.augment_queries, in_axes=(0, None, None))(group_q, a_q, b_q)
            run = functools.partial(posterior.stream, accumulator=accumulator, num_chunks=num_chunks)
            if n_groups == 1:  # the bulk of ELS and bbELS: without vmap (a batched top-k selection was 2.6x slower)
                state = jax.tree.map(lambda v: v[None], run(aug[0], jax.tree.map(lambda v: v[0], dictionary)))
            else:
                state = jax.vmap(run)(aug, dictionary)
            if combine is not None:
                state = combine(state)
            out = jax.vmap(accumulator.finalize)(state)
            # [G, B * Q_g, ...] -> [B, G * Q_g, ...], pixels in the order of the layout's pixels
            outs.append(jax.tree.map(functools.partial(_to_batch, shape=(n_groups, n_img, q_per_group)), out))
        gather = lambda *vs: jnp.concatenate(vs, axis=1)[:, layout.order].reshape((n_img * h * w,) + vs[0].shape[2:])
        return per_pixel(jax.tree.map(gather, *outs), n_img, h, w)

    @classmethod
    def patch_layout(cls, h: int, w: int, k: int, shape: PaddedShape | None = None) -> PatchLayout:
        """The :class:`PatchLayout` of patch size ``k`` for ``h x w`` images (host arrays), padded to ``shape``
        (None: the exact sizes, every chunk streamed)."""
        regions = cls.regions(h, w, k)
        slots = k * k if shape is None else shape.k * shape.k
        d = k // 2
        p = np.arange(slots)
        dy, dx = p // k - d, p % k - d  # slot p < k * k is pixel (p // k, p % k) of the patch, row-major
        rows = np.arange(h).repeat(w)[:, None] + dy[None]
        cols = np.tile(np.arange(w), h)[:, None] + dx[None]
        inside = np.broadcast_to(p[None] < k * k, rows.shape)
        if cls.query_padding == "circular":
            rows, cols = rows % h, cols % w
        else:
            inside = inside & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            rows, cols = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
        pixels = [region.pixels for region in regions]
        if shape is not None:
            pixels = [
                np.pad(px, ((0, g - px.shape[0]), (0, q - px.shape[1])), constant_values=-1)
                for px, (g, q, _, _) in zip(pixels, shape.tables)
            ]
        flat = np.concatenate([px.reshape(-1) for px in pixels])
        order = np.zeros(h * w, np.int64)
        order[flat[flat >= 0]] = np.flatnonzero(flat >= 0)
        as_int = lambda v: np.asarray(v, np.int32)
        return PatchLayout(
            rows=as_int(rows), cols=as_int(cols), inside=np.asarray(inside), order=as_int(order),
            pixels=tuple(as_int(np.maximum(px, 0)) for px in pixels),  # padding queries repeat pixel 0, unread
            num_chunks=(None,) * len(pixels), patch_size=np.int32(k),
        )  # fmt: skip

    @classmethod
    def entry_bounds(cls, shape, k: int, **knobs) -> tuple[int, ...]:
        """Per table, an upper bound of the distinct entries of a group (every patch distinct), for training
        images of ``shape = (N, H, W, C)``."""
        n, h, w = shape[:3]
        return tuple(n * max(len(r) * len(c) for r, c in zip(reg.centre_rows, reg.centre_cols))
                     for reg in cls.dictionary_regions(h, w, k, **knobs))  # fmt: skip

    @classmethod
    def shape_bound(cls, shape, k: int, chunks, **knobs) -> PaddedShape:
        """A :class:`PaddedShape` that holds the machine of patch size ``k`` built from training images of ``shape``
        with chunks of ``chunks[i]`` entries in table i, whatever the data (before building it)."""
        h, w = shape[1:3]
        bounds = cls.entry_bounds(shape, k, **knobs)
        tables = tuple((*reg.pixels.shape, c, -(-m // c)) for reg, c, m in zip(cls.regions(h, w, k), chunks, bounds))
        return PaddedShape(k, tables)

    @classmethod
    def dictionary_regions(cls, h: int, w: int, k: int, **knobs) -> tuple[patches.Region, ...]:
        """The regions the dictionaries are built from (the query regions, unless a knob says otherwise)."""
        return cls.regions(h, w, k)

    def padded_shape(self) -> PaddedShape:
        """This machine's own :class:`PaddedShape` (its exact sizes)."""
        h, w = self.image_shape[:2]
        pixels = [r.pixels for r in self.regions(h, w, self.k)] if self.layout is None else self.layout.pixels
        tables = tuple((*px.shape, t.keys.shape[-2], t.keys.shape[-3]) for px, t in zip(pixels, self.tables))
        return PaddedShape(self.k, tables)

    def pad(self, shape: PaddedShape) -> PatchDenoiser:
        """This machine with its tables padded to ``shape`` and its patch size as data (:class:`PatchLayout`):
        machines of several k padded to one shape share one compiled program, and give the same results to float32
        rounding (padding slots of keys and queries are zero, padding entries have ``PAD_LOG_WEIGHT`` and are not
        streamed, padding queries are dropped). The padded machine's static ``k`` is ``shape.k``.

        Raises:
          ValueError: a sharded machine, or a shape smaller than the machine's own.
        """
        if self.mesh is not None:
            raise ValueError("mesh: padded programs run on one device")
        own = self.padded_shape()
        if len(own.tables) != len(shape.tables) or own.k > shape.k:
            raise ValueError(f"shape: {shape} cannot hold a machine of shape {own}")
        h, w, c = self.image_shape
        k = self.k if self.layout is None else int(self.layout.patch_size)
        layout = self.patch_layout(h, w, k, shape)
        tables, num_chunks = [], []
        for table, (groups, _, chunk, n_chunks) in zip(self.tables, shape.tables):
            padded, count = _pad_table(table, groups, chunk, n_chunks, c * shape.k * shape.k)
            tables.append(padded)
            num_chunks.append(jnp.int32(count))
        layout = layout._replace(num_chunks=tuple(num_chunks))
        return dataclasses.replace(self, tables=tuple(tables), k=shape.k, layout=jax.tree.map(jnp.asarray, layout))

    @classmethod
    def memory_bound(cls, shape, k, itemsize: int) -> int:
        n, h, w, c = shape
        return n * cls.positions(h, w, k) * ((k * k * c + c) * itemsize + 8)

    @classmethod
    def positions(cls, h: int, w: int, k: int) -> int:
        """Patch positions per training image in the largest dictionary."""
        return h * w

    @classmethod
    def pixel_groups(cls, image_shape, k: int):
        """Which dictionary answers each pixel: ``(table [H, W], group [H, W])``, indices into the tables and the
        table's groups."""
        h, w = image_shape[:2]
        table, group = np.zeros(h * w, np.int64), np.zeros(h * w, np.int64)
        for i, region in enumerate(cls.regions(h, w, k)):
            table[region.pixels.reshape(-1)] = i
            group[region.pixels.reshape(-1)] = np.repeat(np.arange(region.pixels.shape[0]), region.pixels.shape[1])
        return table.reshape(h, w), group.reshape(h, w)

    @classmethod
    def occurrence_tables(cls, images, k):
        h, w = images.shape[1:3]
        return patches.region_occurrences(images, k, cls.regions(h, w, k))

    @classmethod
    def locate(cls, entry, tables, k, num_images: int):
        table, group = cls.pixel_groups(entry.shape[1:3], k)
        image = np.full(entry.shape, -1, np.int64)
        row, col, count = image.copy(), image.copy(), np.zeros_like(image)
        for i, occ in enumerate(tables):
            mask = np.broadcast_to((table == i)[None, :, :, None], entry.shape)
            g = np.broadcast_to(group[None, :, :, None], entry.shape)[mask]
            image[mask], row[mask], col[mask], count[mask] = occ.locate(g, entry[mask])
        return located(image, row, col, count, image >= 0)

    @classmethod
    def occurrences(cls, train, k, pixel, image: int, position) -> np.ndarray:
        h, w = train.shape[1:3]
        r0, c0 = (int(v) for v in pixel)
        flat = r0 * w + c0
        for region in cls.regions(h, w, k):
            where = np.argwhere(region.pixels == flat)
            if where.size:
                g = int(where[0, 0])
                rows, cols = region.centre_rows[g], region.centre_cols[g]
                break
        found = patches.patches_at(train, k, rows, cols, "zeros").view(np.uint32)  # [N, R, C, D]
        ref = patches.patches_at(train[int(image)], k, np.array([position[0]]), np.array([position[1]]), "zeros")
        same = np.argwhere((found == ref.view(np.uint32)[0, 0]).all(axis=-1))  # (n, r, c) in order
        return np.stack([same[:, 0], rows[same[:, 1]], cols[same[:, 2]]], axis=1).astype(np.int64)


def _to_batch(v, shape):
    """``[G, B * Q_g, ...]`` -> ``[B, G * Q_g, ...]``, pixels in the order of ``region.pixels``."""
    n_groups, n_img, q_per_group = shape
    v = jnp.moveaxis(v.reshape(shape + v.shape[2:]), 1, 0)
    return v.reshape((n_img, n_groups * q_per_group) + v.shape[3:])


DATA_PADDINGS = ("valid", "circular")


@register("els")
@dataclasses.dataclass(frozen=True)
class EquivariantLocal(PatchDenoiser):
    """ELS: circular query patches against every valid (fully interior) training patch (docs/maths.md §4.4).

    Knob ``data_padding`` (docs/maths.md §12.7): ``"valid"`` (the default, the authors' convention: the dictionary
    holds the ``N (H-k+1)(W-k+1)`` patches that lie inside the training images) or ``"circular"`` (the training
    images are padded circularly, as their queries are, and the dictionary holds all ``N H W`` circular patches:
    analytic-diffusion-studio's convention, which moves the posterior mean by up to 0.17 relative). The provenance
    hooks (:meth:`occurrence_tables`, :meth:`fewest_occurrences`) describe the valid dictionary; a circular
    machine's entries index :func:`elsjax.patches.region_occurrences` of :func:`circular_regions` with
    ``padding="circular"``.
    """

    query_padding = "circular"
    data_padding: str = static(default="valid")
    knobs = ("data_padding",)

    @classmethod
    def build(cls, images, k=None, *, data_padding="valid", **options):
        if data_padding not in DATA_PADDINGS:
            raise ValueError(f"data_padding: expected one of {DATA_PADDINGS}, got {data_padding!r}")
        knobs = {} if data_padding == "valid" else {"data_padding": data_padding}  # valid: the cache keys as before
        return super().build(images, k, **options, **knobs)

    @classmethod
    def build_tables(
        cls, images, k, *, chunk_size, deduplicate, to_device, shape_bits, data_padding="valid", builder=None
    ):
        options = dict(deduplicate=deduplicate, to_device=to_device, shape_bits=shape_bits, builder=builder)
        if data_padding == "valid":
            return super().build_tables(images, k, chunk_size=chunk_size, **options)
        h, w = images.shape[1:3]
        return patches.region_dictionaries(
            images, k, circular_regions(h, w), chunk_size=chunk_size or default_patch_chunk(), padding="circular",
            **options,
        )  # fmt: skip

    @classmethod
    def regions(cls, h, w, k):
        return patches.els_regions(h, w, k)

    @classmethod
    def dictionary_regions(cls, h, w, k, data_padding="valid"):
        return patches.els_regions(h, w, k) if data_padding == "valid" else circular_regions(h, w)

    @classmethod
    def check_k(cls, name, k, image_shape):
        k = super().check_k(name, k, image_shape)
        h, w = image_shape[:2]
        if k > min(h, w):
            raise ValueError(
                f"{name}: ELS needs k <= H and k <= W (no valid {k}x{k} patch in a {h}x{w} image), got {k}"
            )
        return k

    @classmethod
    def positions(cls, h, w, k):
        return (h - k + 1) * (w - k + 1)

    @classmethod
    def fewest_occurrences(cls, shape, k) -> int:
        n, h, w = shape[:3]
        return n * (h - k + 1) * (w - k + 1)


def circular_regions(h: int, w: int) -> tuple[patches.Region, ...]:
    """ELS with ``data_padding="circular"``: every pixel queries one dictionary of the patches centred at every
    pixel of the circularly padded training images."""
    return (patches.Region(np.arange(h * w)[None], np.arange(h)[None], np.arange(w)[None]),)


@register("bbels")
@dataclasses.dataclass(frozen=True)
class BoundaryBroken(PatchDenoiser):
    """bbELS: zero-padded query patches; centre, edge and corner regions with their own dictionaries (§4.5)."""

    @classmethod
    def regions(cls, h, w, k):
        return patches.bbels_regions(h, w, k)
