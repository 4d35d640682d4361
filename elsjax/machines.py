"""The four score machines: ideal (IS), local (LS), equivariant local (ELS) and boundary-broken ELS (bbELS).

Each machine is the same posterior-mean formula (docs/maths.md §4) over a different dictionary:

    mu(p) = sum_psi softmax_psi(-||q(p) - a_t psi||^2 / (2 b_t^2)) psi(centre),   score(p) = -(x(p) - a_t mu(p)) / b_t^2

* ``"ideal"``: one dictionary of whole training images, queried with the whole image (docs/maths.md §4.2);
* ``"ls"``: per pixel, the patches of the zero-padded training images at the same pixel (docs/maths.md §4.3);
* ``"els"``: circular query patches against every valid training patch (docs/maths.md §4.4);
* ``"bbels"``: zero-padded query patches; centre, edge and corner regions with their own dictionaries (docs/maths.md §4.5).

A :class:`ScoreMachine` is a pytree holding the precomputed dictionaries for one training set (already restricted
to a class, if conditioning) and one k. Its methods ``score``, ``denoise`` and ``eps`` are jit-compiled pure
functions of ``(machine, x, t)``: they trace, vmap and differentiate like any JAX function, and check nothing
(:func:`build` and :func:`elsjax.score` do the checking, on the host). ``ScoreMachine.eps`` follows the sampler's
:class:`~elsjax.sampler.EpsFn` contract with the machine as its ``params``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from elsjax import machines
    >>> train = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1), minval=-1, maxval=1)
    >>> m = machines.build("els", train, k=3)
    >>> x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    >>> m.score(x, jnp.array([0.5, 0.9])).shape
    (2, 8, 8, 1)
    >>> m.score(x, 0.5).shape                       # a scalar t applies to every image
    (2, 8, 8, 1)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import checks, noise, posterior, sharding
from elsjax.patches import (
    PAD_LOG_WEIGHT,
    ImageStack,
    PatchDictionary,
    bbels_regions,
    els_regions,
    ideal_dictionary,
    patches_at,
    region_dictionaries,
)

__all__ = ["KINDS", "ImageStack", "ScoreMachine", "Posterior", "build", "pixel_groups"]

KINDS = checks.KINDS

# Dictionary entries per streamed chunk. On CPU the [queries x chunk] logits block should stay near the caches
# (measured by experiments/bench.py: 512-2048 beat 4096-8192 for 1024 queries); accelerators want big GEMMs.
PATCH_CHUNK = {"cpu": 1024}
PATCH_CHUNK_ACCELERATOR = 16384
IMAGE_CHUNK = 64  # images per chunk for LS (its logits are [B, chunk, H, W])


def default_patch_chunk() -> int:
    """The patch chunk size for the default backend."""
    return PATCH_CHUNK.get(jax.default_backend(), PATCH_CHUNK_ACCELERATOR)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["tables"], meta_fields=["kind", "k", "image_shape", "mesh"]
)
@dataclasses.dataclass(frozen=True)
class ScoreMachine:
    """A score machine with its precomputed dictionaries.

    Attributes:
      tables: the machine's dictionaries, always a tuple: IS and ELS one :class:`~elsjax.patches.PatchDictionary`,
        bbELS one per region (centre, border groups, corners), LS one :class:`ImageStack`.
      kind: one of :data:`KINDS`.
      k: patch size (0 for IS).
      image_shape: ``(H, W, C)``.
      mesh: None (one device), or the ``jax.sharding.Mesh`` the tables are split over (:mod:`elsjax.sharding`):
        their entries over ``"entries"``, the images of a batch over ``"seeds"``.
    """

    tables: tuple[PatchDictionary | ImageStack, ...]
    kind: str
    k: int
    image_shape: tuple[int, int, int]
    mesh: jax.sharding.Mesh | None = None

    def denoise(self, x, t):
        """The posterior mean ``mu`` (the machine's clean-image estimate) at ``x [B, H, W, C]``, ``t`` scalar or ``[B]``."""
        return _denoise(self, x, _times(t, x))

    def score(self, x, t):
        """The machine's score ``-(x - a_t mu) / b_t^2`` at ``x [B, H, W, C]``, ``t`` scalar or ``[B]``."""
        return _score(self, x, _times(t, x))

    def eps(self, x, t, y=None):
        """The machine as a noise predictor, ``eps_hat = -b_t score = (x - a_t mu) / b_t`` (docs/maths.md §2.3).

        ``ScoreMachine.eps`` is an :class:`~elsjax.sampler.EpsFn` whose ``params`` is the machine. ``y`` is accepted
        for that contract and ignored: a conditional machine is built from its class's images.
        """
        del y
        return _eps(self, x, _times(t, x))

    def posterior(self, x, t, *, top: int):
        """The posterior mean with the ``top`` heaviest dictionary entries and the entropy of every pixel.

        One pass over the dictionaries (docs/maths.md §11), on a code path of its own: ``denoise``, ``score`` and
        ``eps`` are unchanged. The entries are indices into each pixel's own dictionary (:func:`pixel_groups`);
        :func:`elsjax.provenance` maps them to training images and positions.

        Args:
          x: ``[B, H, W, C]``.
          t: scalar or ``[B]``.
          top: entries kept per pixel (static: one compilation per value).

        Returns:
          A :class:`Posterior`.

        Raises:
          ValueError: a sharded machine (``mesh`` set): provenance runs on one device.
        """
        if self.mesh is not None:
            raise ValueError("mesh: provenance runs on one device; build the machine without a mesh")
        return _posterior(self, x, _times(t, x), int(top))


def build(
    kind: str, images, k: int | None = None, *, chunk_size: int | None = None, deduplicate: bool = True, mesh=None
) -> ScoreMachine:
    """Precomputes a machine's dictionaries from training images ``[N, H, W, C]`` (already class-filtered).

    Args:
      kind: ``"ideal"``, ``"ls"``, ``"els"`` or ``"bbels"``.
      images: float32 training images in [-1, 1], NHWC.
      k: odd patch size (ignored by ``"ideal"``).
      chunk_size: entries per streamed chunk (patches, or images for IS and LS).
      deduplicate: store each distinct patch once with its count (exact; IS, ELS and bbELS).
      mesh: None (one device), or a ``jax.sharding.Mesh`` (:func:`elsjax.make_mesh`): the dictionaries are split
        over its ``"entries"`` axis and replicated over ``"seeds"``. With several processes, ``images`` are this
        process's own training images (:func:`elsjax.sharding.local_part`): it builds and holds only their share.

    Returns:
      The :class:`ScoreMachine`.

    Raises:
      ValueError: an unknown kind, a bad k (even, < 3, or > H for ELS), images that are not finite NHWC float
        arrays in [-1, 1]. (Host-side checks; they cost nothing beside the build.)
    """
    checks.kind(kind)
    images = checks.train_images(images, "images")
    h, w, c = images.shape[1:]
    k = checks.patch_size("k", k, kind, (h, w))
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size: expected a positive integer or None, got {chunk_size!r}")
    mesh = sharding.check_mesh(mesh)
    on_device = mesh is None  # a sharded build stays on the host until sharding.shard_tables places its pieces
    if kind == "ideal":
        tables = (ideal_dictionary(images, chunk_size=chunk_size or 256, deduplicate=deduplicate, to_device=on_device),)
        k = 0
    elif kind == "ls":
        tables = (_image_stack(images, chunk_size or IMAGE_CHUNK, to_device=on_device),)
    else:
        regions = (els_regions if kind == "els" else bbels_regions)(h, w, k)
        tables = tuple(
            region_dictionaries(
                images, k, regions, chunk_size=chunk_size or default_patch_chunk(), deduplicate=deduplicate,
                to_device=on_device,
            )
        )  # fmt: skip
    if mesh is not None:
        tables = sharding.shard_tables(tables, mesh)
    return ScoreMachine(tables=tables, kind=kind, k=int(k), image_shape=(h, w, c), mesh=mesh)


class Posterior(NamedTuple):
    """What :meth:`ScoreMachine.posterior` returns, per image and pixel (the posterior is shared by the channels).

    Attributes:
      mean: ``[B, H, W, C]`` the posterior mean (as :meth:`ScoreMachine.denoise`, to float rounding).
      weight: ``[B, H, W, top]`` float32, the posterior weights of the heaviest entries, descending.
      entry: ``[B, H, W, top]`` int32, their indices in the pixel's dictionary (-1: no entry in that slot).
      entropy: ``[B, H, W]`` float32, the posterior entropy in nats over dictionary occurrences (docs/maths.md §11.2).
    """

    mean: jax.Array
    weight: jax.Array
    entry: jax.Array
    entropy: jax.Array


def pixel_groups(kind: str, image_shape, k: int):
    """Which dictionary answers each pixel: ``(table [H, W], group [H, W])`` indices into ``ScoreMachine.tables``
    and the table's groups (IS, LS and ELS: one table of one group; bbELS: its regions, docs/maths.md §4.5)."""
    h, w = image_shape[:2]
    table, group = np.zeros(h * w, np.int64), np.zeros(h * w, np.int64)
    if kind == "bbels":
        for i, region in enumerate(bbels_regions(h, w, k)):
            table[region.pixels.reshape(-1)] = i
            group[region.pixels.reshape(-1)] = np.repeat(np.arange(region.pixels.shape[0]), region.pixels.shape[1])
    return table.reshape(h, w), group.reshape(h, w)


def _image_stack(images, chunk: int, to_device: bool = True) -> ImageStack:
    n = images.shape[0]
    chunk = min(chunk, n)
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    log_w = np.concatenate([np.zeros(n), np.full(pad, PAD_LOG_WEIGHT)]).astype(np.float32)
    images = np.pad(images, ((0, pad), (0, 0), (0, 0), (0, 0)))
    put = jnp.asarray if to_device else np.asarray
    return ImageStack(put(images.reshape((n_chunks, chunk) + images.shape[1:])), put(log_w.reshape(n_chunks, chunk)))


def _times(t, x):
    """``t`` as float32 ``[B]``: a scalar applies to every image of the batch."""
    t = jnp.asarray(t, jnp.float32)
    return jnp.broadcast_to(t, (x.shape[0],)) if t.ndim == 0 else t


@jax.jit
def _denoise(machine: ScoreMachine, x, t):
    if machine.mesh is not None:
        # The same maths per device, on its shard of every table and of the batch; the partial softmax states are
        # merged across "entries" before the division (sharding.merge_across).
        mean = functools.partial(_mean, machine.kind, machine.k, machine.image_shape)
        return sharding.map_entries(mean, machine.mesh, machine.tables, x, t)
    return _mean(machine.kind, machine.k, machine.image_shape, machine.tables, x, t)


def _mean(kind: str, k: int, image_shape, tables, x, t, combine=None):
    """The posterior mean; ``combine`` (sharded machines) maps each partial softmax state to the merged one."""
    a, b = noise.signal_noise_std(t)
    if kind == "ideal":
        return _ideal_mean(tables[0], x, a, b, combine)
    if kind == "ls":
        return _local_mean(tables[0], x, a, b, k, combine)
    padding = "circular" if kind == "els" else "zeros"
    regions = (els_regions if kind == "els" else bbels_regions)(*image_shape[:2], k)
    return _patch_mean(tables, regions, x, a, b, k, padding, combine)


def _merged(state, combine):
    return state if combine is None else combine(state)


@jax.jit
def _score(machine: ScoreMachine, x, t):
    a, b = noise.signal_noise_std(t)
    return -(x - _bcast(a) * _denoise(machine, x, t)) / _bcast(b * b)


@jax.jit
def _eps(machine: ScoreMachine, x, t):
    a, b = noise.signal_noise_std(t)
    return (x - _bcast(a) * _denoise(machine, x, t)) / _bcast(b)


_RENAMED = {"score": "ScoreMachine.score", "denoise": "ScoreMachine.denoise", "eps": "ScoreMachine.eps"}


def __getattr__(name):
    # machines.score(m, x, t) and friends became methods (m.score(x, t)); the old spellings work for one release.
    if name in _RENAMED:
        import warnings

        warnings.warn(
            f"elsjax.machines.{name}(machine, ...) is deprecated; use {_RENAMED[name]} (machine.{name}(...))",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(ScoreMachine, name)
    raise AttributeError(f"module 'elsjax.machines' has no attribute {name!r}")


def _bcast(v):
    return v[:, None, None, None]


def _ideal_mean(dictionary: PatchDictionary, x, a, b, combine=None):
    queries = posterior.augment_queries(x.reshape(x.shape[0], -1), a, b)
    return posterior.finalize(_merged(posterior.stream(queries, dictionary), combine)).reshape(x.shape)


def _patch_mean(tables, regions, x, a, b, k: int, padding: str, combine=None):
    n_img, h, w, c = x.shape
    rows, cols = np.arange(h), np.arange(w)
    queries = jax.vmap(patches_at, in_axes=(0, None, None, None, None))(x, k, rows, cols, padding)
    queries = queries.reshape(n_img, h * w, -1)
    mu = jnp.zeros((n_img, h * w, c), jnp.float32)
    for region, dictionary in zip(regions, tables):
        n_groups, q_per_group = region.pixels.shape
        # Queries of every image in a group form one batch, [G, B * Q_g, D]; a and b follow each query's image.
        group_q = queries[:, region.pixels].transpose(1, 0, 2, 3).reshape(n_groups, n_img * q_per_group, -1)
        a_q, b_q = jnp.repeat(a, q_per_group), jnp.repeat(b, q_per_group)
        aug = jax.vmap(posterior.augment_queries, in_axes=(0, None, None))(group_q, a_q, b_q)
        state = _merged(jax.vmap(posterior.stream)(aug, dictionary), combine)
        mean = jax.vmap(posterior.finalize)(state).reshape(n_groups, n_img, q_per_group, c)
        mu = mu.at[:, region.pixels.reshape(-1)].set(mean.transpose(1, 0, 2, 3).reshape(n_img, -1, c))
    return mu.reshape(x.shape)


def _window_sum(v, k: int):
    """Zero-padded k x k box sum over the last two axes (separable: rows, then columns)."""
    d = k // 2
    nd = v.ndim
    for axis in (nd - 2, nd - 1):
        window = [1] * nd
        window[axis] = k
        pads = [(0, 0)] * nd
        pads[axis] = (d, d)
        v = lax.reduce_window(v, 0.0, lax.add, window, [1] * nd, pads)
    return v


def _local_mean(stack: ImageStack, x, a, b, k: int, combine=None):
    """LS: exact per-pixel logits by box-summing the squared-difference map (no expansion, so no cancellation)."""
    n_img, h, w, c = x.shape
    inv_two_var = 0.5 / (b * b)

    def body(state, chunk):
        images, log_w = chunk  # [Nc, H, W, C], [Nc]
        n_chunk = images.shape[0]
        diff = x[:, None] - a[:, None, None, None, None] * images[None]
        logits = -_window_sum(jnp.sum(diff * diff, axis=-1), k) * inv_two_var[:, None, None, None]
        logits = logits + log_w[None, :, None, None]  # [B, Nc, H, W]
        logits = logits.transpose(0, 2, 3, 1).reshape(n_img * h * w, n_chunk)
        values = images.reshape(n_chunk, h * w, c)

        def weighted_sum(p):
            p = p.reshape(n_img, h * w, n_chunk)
            return jnp.einsum("bpn,npc->bpc", p, values, precision=posterior.PRECISION).reshape(-1, c)

        return posterior.update(state, logits, weighted_sum), None

    state = posterior.init_state(n_img * h * w, c)
    state, _ = lax.scan(body, state, (stack.images, stack.log_weights))
    return posterior.finalize(_merged(state, combine)).reshape(x.shape)


# ------------------------------------------------------------------------------------------------------------------
# Provenance (docs/maths.md §11): the same means through posterior.stream_provenance, with the top entries and the
# entropy. A separate compiled program; the default one above is untouched.


@functools.partial(jax.jit, static_argnames=("top",))
def _posterior(machine: ScoreMachine, x, t, top: int) -> Posterior:
    a, b = noise.signal_noise_std(t)
    n_img, h, w, c = x.shape
    if machine.kind == "ideal":
        queries = posterior.augment_queries(x.reshape(n_img, -1), a, b)
        mean, weight, entry, entropy = posterior.finalize_provenance(
            posterior.stream_provenance(queries, machine.tables[0], top)
        )
        spread = lambda v: jnp.broadcast_to(v[:, None, None], (n_img, h, w) + v.shape[1:])
        return Posterior(mean.reshape(x.shape), spread(weight), spread(entry), spread(entropy))
    if machine.kind == "ls":
        mean, weight, entry, entropy = _local_provenance(machine.tables[0], x, a, b, machine.k, top)
    else:
        padding = "circular" if machine.kind == "els" else "zeros"
        regions = (els_regions if machine.kind == "els" else bbels_regions)(h, w, machine.k)
        mean, weight, entry, entropy = _patch_provenance(machine.tables, regions, x, a, b, machine.k, padding, top)
    return Posterior(
        mean.reshape(x.shape), weight.reshape(n_img, h, w, top), entry.reshape(n_img, h, w, top),
        entropy.reshape(n_img, h, w),
    )  # fmt: skip


def _patch_provenance(tables, regions, x, a, b, k: int, padding: str, top: int):
    n_img, h, w, c = x.shape
    rows, cols = np.arange(h), np.arange(w)
    queries = jax.vmap(patches_at, in_axes=(0, None, None, None, None))(x, k, rows, cols, padding)
    queries = queries.reshape(n_img, h * w, -1)
    mu = jnp.zeros((n_img, h * w, c), jnp.float32)
    weight = jnp.zeros((n_img, h * w, top), jnp.float32)
    entry = jnp.zeros((n_img, h * w, top), jnp.int32)
    entropy = jnp.zeros((n_img, h * w), jnp.float32)
    for region, dictionary in zip(regions, tables):
        n_groups, q_per_group = region.pixels.shape
        group_q = queries[:, region.pixels].transpose(1, 0, 2, 3).reshape(n_groups, n_img * q_per_group, -1)
        a_q, b_q = jnp.repeat(a, q_per_group), jnp.repeat(b, q_per_group)
        aug = jax.vmap(posterior.augment_queries, in_axes=(0, None, None))(group_q, a_q, b_q)
        if n_groups == 1:  # the bulk of ELS and bbELS: without vmap (batched top-k selection was 2.6x slower)
            one = posterior.stream_provenance(aug[0], jax.tree.map(lambda a: a[0], dictionary), top)
            out = tuple(v[None] for v in posterior.finalize_provenance(one))
        else:
            state = jax.vmap(lambda q, d: posterior.stream_provenance(q, d, top))(aug, dictionary)
            out = jax.vmap(posterior.finalize_provenance)(state)
        # [G, B * Q_g, ...] -> [B, G * Q_g, ...], in the order of region.pixels
        back = functools.partial(_to_batch, shape=(n_groups, n_img, q_per_group))
        where = region.pixels.reshape(-1)
        mu = mu.at[:, where].set(back(out[0]))
        weight = weight.at[:, where].set(back(out[1]))
        entry = entry.at[:, where].set(back(out[2]))
        entropy = entropy.at[:, where].set(back(out[3]))
    return mu, weight, entry, entropy


def _to_batch(v, shape):
    """``[G, B * Q_g, ...]`` -> ``[B, G * Q_g, ...]``, pixels in the order of ``region.pixels``."""
    n_groups, n_img, q_per_group = shape
    v = jnp.moveaxis(v.reshape(shape + v.shape[2:]), 1, 0)
    return v.reshape((n_img, n_groups * q_per_group) + v.shape[3:])


def _local_provenance(stack: ImageStack, x, a, b, k: int, top: int):
    """LS with provenance: as :func:`_local_mean`; an entry is a training image (its patch at the query pixel)."""
    n_img, h, w, c = x.shape
    inv_two_var = 0.5 / (b * b)
    chunk = stack.images.shape[1]

    def body(state, item):
        i, (images, log_w) = item
        n_chunk = images.shape[0]
        diff = x[:, None] - a[:, None, None, None, None] * images[None]
        logits = -_window_sum(jnp.sum(diff * diff, axis=-1), k) * inv_two_var[:, None, None, None]
        logits = logits + log_w[None, :, None, None]
        logits = logits.transpose(0, 2, 3, 1).reshape(n_img * h * w, n_chunk)
        values = images.reshape(n_chunk, h * w, c)

        def weighted_sum(p):
            p = p.reshape(n_img, h * w, n_chunk)
            return jnp.einsum("bpn,npc->bpc", p, values, precision=posterior.PRECISION).reshape(-1, c)

        return posterior.update_provenance(state, logits, log_w, weighted_sum, i * chunk), None

    state = posterior.init_provenance(n_img * h * w, c, top)
    items = (jnp.arange(stack.images.shape[0], dtype=jnp.int32), (stack.images, stack.log_weights))
    state, _ = lax.scan(body, state, items)
    return posterior.finalize_provenance(state)
