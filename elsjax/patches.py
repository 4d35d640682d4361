"""Patch extraction and patch dictionaries (SPEC 3).

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

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "PAD_LOG_WEIGHT",
    "PatchDictionary",
    "Region",
    "patches_at",
    "make_dictionary",
    "ideal_dictionary",
    "els_regions",
    "bbels_regions",
    "region_dictionaries",
]

# Finite (not -inf) so that reduced-precision splitting of the matmul on accelerators can never produce NaN.
PAD_LOG_WEIGHT = -1e30


class PatchDictionary(NamedTuple):
    """Training patches prepared for the streaming posterior kernel.

    Attributes:
      keys: ``[..., n_chunks, chunk, D + 2]`` float32, ``[psi, ||psi||^2, log_weight]``.
      values: ``[..., n_chunks, chunk, V]`` float32, the value of each entry (centre pixel, or whole image).
    """

    keys: jax.Array
    values: jax.Array

    @property
    def num_entries(self) -> int:
        """Number of entries per group, padding included."""
        return self.keys.shape[-3] * self.keys.shape[-2]


def patches_at(image, k: int, rows, cols, padding: str):
    """k x k patches of one image centred at every ``(r, c)`` in ``rows x cols``.

    Args:
      image: ``[H, W, C]``.
      k: odd patch size.
      rows: 1-D integer array of centre rows.
      cols: 1-D integer array of centre columns.
      padding: ``"zeros"`` or ``"circular"``: how the image is extended beyond its border.

    Returns:
      ``[len(rows), len(cols), k * k * C]``, each patch flattened in (row, column, channel) order.
    """
    d = k // 2
    mode = {"zeros": "constant", "circular": "wrap"}[padding]
    padded = jnp.pad(image, ((d, d), (d, d), (0, 0)), mode=mode)
    offs = np.arange(k)
    r_idx = np.asarray(rows)[:, None] + offs[None, :]  # [R, k] in padded coordinates
    c_idx = np.asarray(cols)[:, None] + offs[None, :]  # [Cc, k]
    patches = padded[r_idx[:, None, :, None], c_idx[None, :, None, :]]  # [R, Cc, k, k, C]
    return patches.reshape(len(rows), len(cols), -1)


def make_dictionary(keys, values, *, log_weights=None, chunk_size: int = 2048) -> PatchDictionary:
    """Augments, pads and chunks raw patches ``keys [..., M, D]`` with ``values [..., M, V]``.

    Args:
      keys: patches, ``[..., M, D]``.
      values: ``[..., M, V]``.
      log_weights: optional ``[..., M]`` log-multiplicity of each entry (0 when every entry appears once).
      chunk_size: maximum number of entries per chunk.

    Returns:
      The :class:`PatchDictionary`.
    """
    keys = jnp.asarray(keys, jnp.float32)
    values = jnp.asarray(values, jnp.float32)
    m = keys.shape[-2]
    if m == 0:
        raise ValueError("dictionary: no patches (empty training set or class)")
    chunk = min(chunk_size, _round_up(m, 8))
    n_chunks = math.ceil(m / chunk)
    pad = n_chunks * chunk - m
    sqnorm = jnp.sum(keys * keys, axis=-1, keepdims=True)
    if log_weights is None:
        log_weights = jnp.zeros(keys.shape[:-1], jnp.float32)
    aug = jnp.concatenate([keys, sqnorm, jnp.asarray(log_weights, jnp.float32)[..., None]], axis=-1)
    lead = [(0, 0)] * (keys.ndim - 2)
    aug = jnp.pad(aug, lead + [(0, pad), (0, 0)])
    if pad:
        aug = aug.at[..., m:, -1].set(PAD_LOG_WEIGHT)
    values = jnp.pad(values, lead + [(0, pad), (0, 0)])
    batch = keys.shape[:-2]
    return PatchDictionary(
        keys=aug.reshape(batch + (n_chunks, chunk, aug.shape[-1])),
        values=values.reshape(batch + (n_chunks, chunk, values.shape[-1])),
    )


def _round_up(m: int, multiple: int) -> int:
    return -(-m // multiple) * multiple


def ideal_dictionary(images, *, chunk_size: int = 256) -> PatchDictionary:
    """IS dictionary: whole training images as keys and as values (SPEC 3.1)."""
    images = jnp.asarray(images, jnp.float32)
    n, h, w, c = images.shape
    flat = images.reshape(n, h * w * c)
    return make_dictionary(flat, flat, chunk_size=chunk_size)


class Region(NamedTuple):
    """A set of query-pixel groups that share a dictionary layout.

    Group ``g`` holds the query pixels ``pixels[g]`` (flat indices ``r * W + c``) and is answered by the dictionary
    of the training patches centred at ``centre_rows[g] x centre_cols[g]`` (the same positions in every image).
    """

    pixels: np.ndarray  # [G, Q_g] int
    centre_rows: np.ndarray  # [G, R_g] int
    centre_cols: np.ndarray  # [G, C_g] int


def els_regions(h: int, w: int, k: int) -> tuple[Region, ...]:
    """ELS: every pixel queries one dictionary of all valid (fully interior) patches (SPEC 3.3)."""
    d = k // 2
    rows, cols = np.arange(d, h - d), np.arange(d, w - d)
    return (Region(np.arange(h * w)[None], rows[None], cols[None]),)


def bbels_regions(h: int, w: int, k: int) -> tuple[Region, ...]:
    """bbELS: centre, edge and corner regions, each with its own dictionary (SPEC 3.4).

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


def region_dictionaries(images, k: int, regions, *, chunk_size: int = 2048) -> tuple[PatchDictionary, ...]:
    """Builds one grouped :class:`PatchDictionary` per region from training images ``[N, H, W, C]``.

    The training images are zero-padded, so border-region patches carry the same zero padding as their queries;
    interior patches never touch the padding (they are the ELS "valid" patches).

    All groups of a region have the same shape, so each region is one gather, and the whole build is one jitted
    program: building op by op (a gather per group, hundreds of groups for a large k) cost seconds of dispatch
    per (class, k), more than the sampling itself on small training sets.
    """
    build = functools.partial(_region_dictionaries, k=k, regions=regions, chunk_size=chunk_size)
    return jax.jit(build)(jnp.asarray(images, jnp.float32))


def _region_dictionaries(images, *, k: int, regions, chunk_size: int) -> tuple[PatchDictionary, ...]:
    c = images.shape[-1]
    d = k // 2
    padded = jnp.pad(images, ((0, 0), (d, d), (d, d), (0, 0)))
    centre = d * k + d  # flat index of the centre pixel within a k x k patch
    offsets = np.arange(k)
    out = []
    for region in regions:
        r_idx = np.asarray(region.centre_rows)[:, :, None] + offsets  # [G, R_g, k] in padded coordinates
        c_idx = np.asarray(region.centre_cols)[:, :, None] + offsets  # [G, C_g, k]
        p = padded[:, r_idx[:, :, None, :, None], c_idx[:, None, :, None, :]]  # [N, G, R_g, C_g, k, k, C]
        keys = jnp.moveaxis(p, 1, 0).reshape(r_idx.shape[0], -1, k * k * c)  # [G, N * R_g * C_g, D], (n, r, c) order
        values = keys.reshape(keys.shape[:2] + (k * k, c))[:, :, centre, :]
        out.append(make_dictionary(keys, values, chunk_size=chunk_size))
    return tuple(out)
