"""What the denoisers that stream tables share: the mesh path (:class:`OnMesh`: IS, LS, ELS, bbELS, PCA-locality,
nearest, PSPC), and for the dictionary denoisers (IS, LS, ELS, bbELS, nearest) building through a cache."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import numpy as np

from elsjax import dictcache, patches, posterior, shardedkernel, sharding
from elsjax.denoisers._base import Denoiser, Located, static

__all__ = ["OnMesh", "DictionaryDenoiser", "per_pixel", "here", "located"]


class OnMesh(Denoiser):
    """The mesh path of a denoiser whose :meth:`accumulate` streams ``tables``: the same maths per device on its
    shard of every table (split over ``"entries"``) and of the batch (split over ``"seeds"``), the devices' partial
    results merged by :attr:`merge_across` (:func:`elsjax.shardedkernel.map_entries`).

    A subclass is a frozen dataclass with the fields ``tables`` (a tuple of
    :class:`~elsjax.patches.PatchDictionary` or :class:`~elsjax.patches.ImageStack`, entries along their chunk
    axis) and ``mesh`` (static, None for one device); its other arrays are replicated on every device. Its
    :meth:`accumulate` applies ``combine`` (:attr:`merge_across`, given only on a mesh) to its partial state.
    """

    # How the devices' partial results merge inside shard_map: the softmax states' exact merge.
    merge_across: ClassVar[Callable] = staticmethod(shardedkernel.merge_across)

    @staticmethod
    def place(tables, mesh) -> tuple:
        """Host tables split over the ``"entries"`` of ``mesh`` (:func:`elsjax.shardedkernel.shard_tables`), or
        unchanged for ``mesh=None``."""
        return tuple(tables) if mesh is None else tuple(shardedkernel.shard_tables(tables, mesh))

    def posterior_mean(self, x, t):
        if self.mesh is None:
            return self.accumulate(x, t, posterior.MEAN)
        local = lambda tables, x, t, combine: dataclasses.replace(self, tables=tables).accumulate(
            x, t, posterior.MEAN, combine
        )
        return shardedkernel.map_entries(local, self.mesh, self.tables, x, t, combine=self.merge_across)


@dataclasses.dataclass(frozen=True)
class DictionaryDenoiser(OnMesh):
    """A denoiser whose posterior streams precomputed tables through :func:`elsjax.posterior.stream`.

    Attributes:
      tables: the dictionaries, a tuple (IS and ELS one :class:`~elsjax.patches.PatchDictionary`, bbELS one per
        region, LS one :class:`~elsjax.patches.ImageStack`).
      k: patch size (0 for IS).
      image_shape: ``(H, W, C)``.
      mesh: None (one device), or the ``jax.sharding.Mesh`` the tables are split over (:mod:`elsjax.sharding`):
        their entries over ``"entries"``, the images of a batch over ``"seeds"``.
    """

    tables: tuple
    k: int = static()
    image_shape: tuple[int, int, int] = static()
    mesh: Any = static(default=None)

    cacheable: ClassVar[bool] = True  # tables a DictionaryCache can keep (PatchDictionary tuples)

    @classmethod
    def build_tables(cls, images, k, *, chunk_size, deduplicate: bool, to_device: bool, shape_bits) -> tuple:
        """The tables of training images ``[N, H, W, C]`` (host arrays when ``to_device`` is False)."""
        raise NotImplementedError

    @classmethod
    def build(
        cls,
        images,
        k=None,
        *,
        chunk_size=None,
        deduplicate=True,
        mesh=None,
        cache=None,
        shape_bits=None,
        builder=None,
        **knobs,
    ) -> DictionaryDenoiser:
        """``knobs`` (checked by the subclass) are passed to :meth:`build_tables`, become part of the cache key,
        and are set as the denoiser's (static) fields of the same names. ``builder``
        (:class:`~elsjax.patches.HostBuilder` or :class:`~elsjax.patches.CompiledBuilder`, None: the backend's
        default) builds the same tables either way, so it is not part of the cache key."""
        mesh = sharding.check_mesh(mesh)
        to_device = mesh is None  # a sharded build stays on the host until shardedkernel.shard_tables places its pieces
        options = dict(chunk_size=chunk_size, deduplicate=deduplicate, to_device=to_device, shape_bits=shape_bits)
        options.update({} if builder is None else {"builder": builder})  # older build_tables need not take it
        make = lambda: cls.build_tables(images, k, **options, **knobs)
        if cache is None or not cls.cacheable:
            tables = make()
        else:
            key = (dictcache.digest(np.asarray(images, np.float32)), cls.name, k, chunk_size, deduplicate, shape_bits, to_device)  # fmt: skip
            key += tuple(sorted(knobs.items()))
            tables = cache.get_or_build(key, make, to_device=patches.device_put if to_device else None)
        tables = cls.place(tables, mesh)
        return cls(tables=tables, k=int(k or 0), image_shape=tuple(images.shape[1:]), mesh=mesh, **knobs)

    @classmethod
    def fewest_occurrences(cls, shape, k) -> int:
        return int(shape[0])


def per_pixel(out, n: int, h: int, w: int):
    """An accumulator's result over the queries of every pixel, ``[B * H * W, ...]`` per leaf, as ``[B, H, W, ...]``."""
    return jax.tree.map(lambda v: v.reshape((n, h, w) + v.shape[1:]), out)


def here(entry: np.ndarray):
    """Each slot's own pixel: ``(rows, cols)`` broadcast to ``entry [B, H, W, top]``."""
    _, h, w, _ = entry.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.broadcast_to(rows[None, :, :, None], entry.shape), np.broadcast_to(cols[None, :, :, None], entry.shape)


def located(image, row, col, count, valid) -> Located:
    invalid = lambda a: np.where(valid, a, -1).astype(np.int64)
    return Located(invalid(image), invalid(row), invalid(col), np.where(valid, count, 0).astype(np.int64), valid)
