"""The stable public entry points :func:`score` and :func:`sample`, with input validation and class conditioning.

Arrays are NHWC float32, training images in [-1, 1]. Class conditioning restricts the dictionary to the training
images of the requested class (docs/maths.md §1); seeds with different classes are grouped, each group run once
with its class's dictionaries, and the results put back in the caller's order.

Both return a ``jax.Array`` and compose with JAX transformations in ``x`` (and ``t``): concrete inputs are checked
on the host (:mod:`elsjax.checks`); traced ones (inside ``jax.jit``, ``jax.grad``, ``jax.vmap``) are checked for
shape only and passed through. The training images, labels and classes must be concrete: a dictionary is built
on the host. To trace through a fixed machine, build it once with :func:`elsjax.denoisers.build` and call its
jit-compiled ``score`` (the layer that composes everywhere). ``kind`` is any registered denoiser
(:func:`elsjax.denoisers.names`).

Both take ``mesh=``: None (the default) runs on one device exactly as before; a ``jax.sharding.Mesh`` from
:func:`elsjax.make_mesh` splits every dictionary over its ``"entries"`` axis and the batch over ``"seeds"``
(:mod:`elsjax.sharding`, docs/scale_out.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from elsjax import checks, denoisers, patches, sampler, sharding
from elsjax.sharding import make_mesh

__all__ = ["score", "sample", "make_mesh"]


def score(
    kind: str,
    x,
    t,
    *,
    train,
    k: int | None = None,
    labels=None,
    y=None,
    chunk_size: int | None = None,
    mesh=None,
    **knobs,
):
    """The score of a machine at a batch of noisy images.

    Args:
      kind: a registered denoiser (:func:`elsjax.denoisers.names`): ``"ideal"``, ``"ls"``, ``"els"``, ``"bbels"``, ...
      x: noisy images ``[B, H, W, C]``.
      t: time in [:data:`elsjax.noise.MIN_TIME`, 1], a float or one per image ``[B]``.
      train: training images ``[N, H, W, C]`` in [-1, 1].
      k: odd patch size >= 3 (not used by ``"ideal"``).
      labels: training labels ``[N]`` (needed for ``y``).
      y: class per image ``[B]``, or None for the unconditional machine.
      chunk_size: dictionary entries per streamed chunk (default per machine).
      mesh: None (one device), or a ``jax.sharding.Mesh`` from :func:`elsjax.make_mesh`: each dictionary split
        over ``"entries"``, the images over ``"seeds"`` (which must divide ``B``). With several processes
        (:func:`elsjax.sharding.initialize`), ``train`` and ``labels`` are this process's own share of the
        training set and ``x``, ``t``, ``y`` the same on every process.
      knobs: the denoiser's own keyword arguments (:attr:`elsjax.denoisers.Denoiser.knobs`).

    Returns:
      The score ``[B, H, W, C]``, a ``jax.Array``.

    Example:
      >>> import numpy as np, elsjax
      >>> rng = np.random.default_rng(0)
      >>> train = rng.uniform(-1, 1, (6, 9, 9, 1)).astype(np.float32)
      >>> x = rng.normal(size=(2, 9, 9, 1)).astype(np.float32)
      >>> elsjax.score("bbels", x, 0.5, train=train, k=3).shape
      (2, 9, 9, 1)
      >>> import jax                                        # differentiable in x
      >>> jax.grad(lambda x: elsjax.score("els", x, 0.5, train=train, k=3).sum())(x).shape
      (2, 9, 9, 1)
    """
    denoiser = denoisers.get(kind)
    train = checks.train_images(train)
    x = checks.images("x", x, train.shape[1:])
    t = checks.times(t, x.shape[0])
    k = denoiser.check_k("k", k, train.shape[1:])
    mesh = _check_mesh(mesh, x.shape[0], "x")
    out = _Output(x.shape, mesh, traced=checks.is_traced(x, t))
    for index, images in checks.class_groups(x.shape[0], train, labels, y):
        machine = denoisers.build(denoiser, images, k, chunk_size=chunk_size, mesh=mesh, **knobs)
        xs, ts = jnp.asarray(x)[index], jnp.asarray(t)[index]
        if mesh is None:
            out.set(index, machine.score(xs, ts))
        else:  # each class group split over "seeds" (padded to a multiple of it)
            out.set(index, machine.score(sharding.put_batch(xs, mesh), sharding.put_batch(ts, mesh))[: len(index)])
    return out.result()


def sample(
    kind: str,
    seeds,
    *,
    train,
    scales: Sequence[int],
    labels=None,
    y=None,
    convention: str = "reference",
    chunk_size: int | None = None,
    progress=None,
    keep_bytes: int | None = None,
    mesh=None,
    cache=None,
    **knobs,
):
    """Samples from a machine on the reference grid: 19 DDIM steps from t = 0.95 to the clean output.

    Args:
      kind: a registered denoiser (:func:`elsjax.denoisers.names`).
      seeds: ``[B, H, W, C]`` starting noise (treated as x at t = 0.95, as the reference does).
      train: training images ``[N, H, W, C]`` in [-1, 1].
      scales: the patch size k of each step, a sequence of n odd ints (n = 20 in the paper; docs/maths.md §6).
      labels: training labels ``[N]`` (needed for ``y``).
      y: class per seed ``[B]``, or None.
      convention: ``"reference"`` uses ``scales[i]`` at t = i/n (the authors' sampler); ``"corrected"`` uses
        ``scales[i - 1]`` (the index the calibration meant).
      chunk_size: dictionary entries per streamed chunk (default per machine).
      progress: optional callback, see :func:`elsjax.sampler.sample_machine` (called once per class group).
      keep_bytes: memory for dictionaries that non-monotone scales need again (see
        :func:`elsjax.sampler.sample_machine`); 0 rebuilds every time, the smallest peak memory.
      mesh: None (one device), or a ``jax.sharding.Mesh`` from :func:`elsjax.make_mesh`: dictionaries split over
        ``"entries"``, seeds over ``"seeds"`` (which must divide ``B``; each class group is padded to a multiple
        of it). With several processes, ``train`` and ``labels`` are this process's share of the training set.
      cache: an :class:`elsjax.dictcache.DictionaryCache` the dictionaries are taken from and kept in (None: built).
      knobs: the denoiser's own keyword arguments (:attr:`elsjax.denoisers.Denoiser.knobs`), the same at every step.

    Returns:
      ``[B, H, W, C]`` samples, a ``jax.Array``, inside the training pixel range.
    """
    denoiser = denoisers.get(kind)
    train, seeds, scales = checks.sampling_args(denoiser, seeds, train, scales, convention, sampler.CONVENTIONS)
    if keep_bytes is not None and (not isinstance(keep_bytes, (int, np.integer)) or keep_bytes < 0):
        raise ValueError(f"keep_bytes: expected a non-negative integer or None, got {keep_bytes!r}")
    mesh = _check_mesh(mesh, seeds.shape[0], "seeds")
    out = _Output(seeds.shape, mesh, traced=checks.is_traced(seeds))
    groups = checks.class_groups(seeds.shape[0], train, labels, y)
    # Several classes: dictionaries padded to shared shapes, so that classes share compiled programs (exact).
    shape_bits = patches.SHARED_SHAPE_BITS if len(groups) > 1 else None
    for index, images in groups:
        samples = sampler.sample_machine(
            denoiser, jnp.asarray(seeds)[index], images, scales, convention=convention, chunk_size=chunk_size,
            progress=progress, keep_bytes=keep_bytes, mesh=mesh, shape_bits=shape_bits, cache=cache,
            knobs=knobs,
        )  # fmt: skip
        out.set(index, samples)
    return out.result()


def _check_mesh(mesh, batch: int, what: str):
    mesh = sharding.check_mesh(mesh)
    if mesh is not None:
        sharding.check_batch(batch, mesh, what)
    return mesh


class _Output:
    """The caller's batch put back together from class groups: on the device, or (sharded results) on the host."""

    def __init__(self, shape, mesh, traced: bool):
        self.host = mesh is not None and not traced  # a sharded result may live on other processes' devices too
        self.value = np.zeros(shape, np.float32) if self.host else jnp.zeros(shape, jnp.float32)

    def set(self, index, value):
        if self.host:
            self.value[index] = sharding.to_host(value)
        else:
            self.value = self.value.at[index].set(value)

    def result(self):
        return jnp.asarray(self.value)
