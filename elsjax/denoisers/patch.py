"""The equivariant local score machines: ELS (docs/maths.md §4.4) and boundary-broken ELS (bbELS, §4.5).

Each pixel's query is its k x k patch; it is answered by the dictionary of its region (:class:`~elsjax.patches.Region`):
ELS has one region, every valid patch of every training image, queried with circular patches; bbELS has a centre
region (the ELS dictionary) and border and corner regions with their own, queried with zero-padded patches.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from elsjax import noise, patches, posterior
from elsjax.denoisers._base import register, static
from elsjax.denoisers._tables import DictionaryDenoiser, located, per_pixel

__all__ = ["PatchDenoiser", "EquivariantLocal", "BoundaryBroken", "DATA_PADDINGS", "circular_regions"]

# Dictionary entries per streamed chunk. On CPU the [queries x chunk] logits block should stay near the caches
# (measured by experiments/bench.py: 512-2048 beat 4096-8192 for 1024 queries); accelerators want big GEMMs.
PATCH_CHUNK = {"cpu": 1024}
PATCH_CHUNK_ACCELERATOR = 16384


def default_patch_chunk() -> int:
    """The patch chunk size for the default backend."""
    return PATCH_CHUNK.get(jax.default_backend(), PATCH_CHUNK_ACCELERATOR)


@dataclasses.dataclass(frozen=True)
class PatchDenoiser(DictionaryDenoiser):
    """A posterior over training patches, one dictionary per region of query pixels."""

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
        k = self.k
        rows, cols = np.arange(h), np.arange(w)
        queries = jax.vmap(patches.patches_at, in_axes=(0, None, None, None, None))(
            x, k, rows, cols, self.query_padding
        )
        queries = queries.reshape(n_img, h * w, -1)
        regions = self.regions(h, w, k)
        outs = []
        for region, dictionary in zip(regions, self.tables):
            n_groups, q_per_group = region.pixels.shape
            # Queries of every image in a group form one batch, [G, B * Q_g, D]; a and b follow each query's image.
            group_q = queries[:, region.pixels].transpose(1, 0, 2, 3).reshape(n_groups, n_img * q_per_group, -1)
            a_q, b_q = jnp.repeat(a, q_per_group), jnp.repeat(b, q_per_group)
            aug = jax.vmap(posterior.augment_queries, in_axes=(0, None, None))(group_q, a_q, b_q)
            if n_groups == 1:  # the bulk of ELS and bbELS: without vmap (a batched top-k selection was 2.6x slower)
                state = posterior.stream(aug[0], jax.tree.map(lambda v: v[0], dictionary), accumulator=accumulator)
                state = jax.tree.map(lambda v: v[None], state)
            else:
                state = jax.vmap(lambda q, d: posterior.stream(q, d, accumulator=accumulator))(aug, dictionary)
            if combine is not None:
                state = combine(state)
            out = jax.vmap(accumulator.finalize)(state)
            # [G, B * Q_g, ...] -> [B, G * Q_g, ...], pixels in the order of region.pixels
            outs.append(jax.tree.map(functools.partial(_to_batch, shape=(n_groups, n_img, q_per_group)), out))
        order = np.argsort(np.concatenate([region.pixels.reshape(-1) for region in regions]))
        gather = lambda *vs: jnp.concatenate(vs, axis=1)[:, order].reshape((n_img * h * w,) + vs[0].shape[2:])
        return per_pixel(jax.tree.map(gather, *outs), n_img, h, w)

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
