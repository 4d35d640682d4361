"""One reverse-sampling loop for anything that predicts noise: score machines and trained networks alike.

:func:`sample_loop` runs deterministic DDIM (docs/maths.md §2.3) over a time grid with ``lax.scan``. It takes
an :class:`EpsFn`, ``eps_fn(params, x, t, y) -> eps_hat``, and does not care whether ``params`` are network
weights (:class:`elsjax.nets.NetEpsFn`) or a score machine (``ScoreMachine.eps``, the machine as its own params).

The machine sampler (:func:`sample_machine`) follows the reference's grid (docs/maths.md §3, §6): ``n = len(scales)``
(20), evaluations at ``t = i / n`` for ``i = n - 1, ..., 1`` (t = 0.95 ... 0.05), the patch size at ``t = i / n`` is
``scales[i]`` (``scales[0]`` is never used), and the output is the last step's clean estimate. The calibration
stores the k for ``t = (j + 1) / n`` at index ``j``, so ``convention="corrected"`` reads ``scales[i - 1]`` instead.
Consecutive steps with the same k form one segment, run as one loop with that k's dictionaries; segments of
any length share one compiled program per k.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from elsjax import sampler
    >>> grid = sampler.noise.time_grid(20)              # the network grid: 20 steps from t = 1
    >>> eps_fn = lambda params, x, t, y: params * x     # a toy noise predictor
    >>> x1 = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
    >>> sampler.sample_loop(eps_fn, jnp.float32(0.9), x1, grid).shape
    (2, 4, 4, 1)
"""

from __future__ import annotations

import concurrent.futures
import functools
import gc
import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import machines, noise, patches, sharding

__all__ = [
    "EpsFn", "sample_loop", "sample_net", "machine_steps", "sample_machine", "CONVENTIONS", "KEEP_BYTES",
    "default_keep_bytes", "StepPosterior", "net_classes", "check_net_labels",
]  # fmt: skip

CONVENTIONS = ("reference", "corrected")

# On CPU, dictionaries needed again later in a non-monotone k schedule are kept up to this many bytes in all;
# beyond it they are rebuilt (about a build's time) so that peak memory stays near one dictionary (full 60k
# Fashion-MNIST: the k = 7, 9 and 11 dictionaries take 2-3.5 GB each). Accelerators keep up to a quarter of the
# device's memory.
KEEP_BYTES = 2 << 30


class EpsFn(Protocol):
    """The contract shared by trained nets and score machines: a noise predictor.

    ``eps_fn(params, x, t, y) -> eps_hat`` with ``x [B, H, W, C]`` float32, ``t [B]`` float32 times in (0, 1],
    ``y [B]`` int32 classes or None, and ``eps_hat`` of ``x``'s shape: the prediction of the noise ``eps`` in
    ``x = a_t x0 + b_t eps``. It must be a pure, traceable function of its arguments, and hashable (it is a static
    argument of the compiled loop); everything that changes between calls goes in the pytree ``params``.

    Implementations: :class:`elsjax.nets.NetEpsFn` (a Flax net; ``params`` its weights) and ``ScoreMachine.eps``
    (``params`` the :class:`~elsjax.machines.ScoreMachine` itself; ``y`` ignored, a conditional machine is built
    from its class's images).
    """

    def __call__(self, params: Any, x: jax.Array, t: jax.Array, y: jax.Array | None) -> jax.Array: ...


class StepPosterior(NamedTuple):
    """What :func:`sample_machine` records at one step when ``provenance`` is on (host NumPy arrays).

    Attributes:
      step: the step's index on the machine grid (0 is the first evaluation, at t = 0.95 on the paper's grid).
      t: the step's time.
      k: the patch size in use (0 for IS).
      x: ``[B, H, W, C]`` the noisy images the machine was evaluated at.
      posterior: the :class:`~elsjax.machines.Posterior` at ``(x, t)``: its ``mean`` is the step's clean estimate,
        ``entry`` indexes each pixel's dictionary (:func:`elsjax.machines.pixel_groups`).
    """

    step: int
    t: float
    k: int
    x: np.ndarray
    posterior: machines.Posterior


def default_keep_bytes() -> int:
    """How many bytes of dictionaries :func:`sample_machine` keeps for reuse on the default backend."""
    if jax.default_backend() == "cpu":
        return KEEP_BYTES
    stats = jax.devices()[0].memory_stats() or {}
    return int(stats.get("bytes_limit", 4 * KEEP_BYTES)) // 4


def _sample_loop(eps_fn: EpsFn, params, x, grid, y=None, num_steps=None, return_trajectory: bool = False):
    grid = jnp.asarray(grid, jnp.float32)
    batch = x.shape[0]

    def step(i, carry):
        x, visited = carry
        t = jnp.broadcast_to(grid[i, 0], (batch,))
        t_prev = jnp.broadcast_to(grid[i, 1], (batch,))
        eps_hat = eps_fn(params, x, t, y)
        if return_trajectory:
            visited = visited.at[i].set(x)
        return noise.ddim_step(x, eps_hat, t, t_prev), visited

    visited = jnp.zeros((grid.shape[0],) + x.shape, x.dtype) if return_trajectory else None
    # A static length lowers to lax.scan; a traced num_steps to a while loop, so that segments of any length
    # share one compiled program per parameter shape.
    x, visited = lax.fori_loop(0, grid.shape[0] if num_steps is None else num_steps, step, (x, visited))
    return (x, visited) if return_trajectory else x


sample_loop = jax.jit(_sample_loop, static_argnames=("eps_fn", "return_trajectory"))
sample_loop.__doc__ = """Deterministic DDIM from ``x`` over ``grid`` (pairs ``(t, t_prev)``, ``[steps, 2]``).

Args:
  eps_fn: an :class:`EpsFn`; static (hashable).
  params: a pytree passed to ``eps_fn`` (network weights, or a :class:`~elsjax.machines.ScoreMachine`).
  x: the starting images ``[B, H, W, C]`` at ``grid[0, 0]``.
  grid: ``[steps, 2]`` float32, e.g. :func:`elsjax.noise.time_grid`.
  y: optional per-image labels ``[B]``, passed through to ``eps_fn``.
  num_steps: run only the first ``num_steps`` rows of ``grid`` (may be traced: grids padded to one length then
    share one compilation).
  return_trajectory: also return the ``x`` given to ``eps_fn`` at every step, ``[steps, B, H, W, C]`` (rows past
    ``num_steps`` are zero).

Returns:
  ``x`` at ``grid[-1, 1]`` (and the trajectory, if asked).
"""


def sample_net(eps_fn: EpsFn, params, seeds, *, num_steps: int = 20, y=None):
    """Runs a trained net's DDIM sampler (docs/maths.md §3): the seed is x at t = 1, ``num_steps`` evaluations at
    ``t = i / n`` for ``i = n, ..., 1`` (20 and 150 in the paper), the output is the clean estimate at ``t = 1/n``.

    It is :func:`sample_loop` on the network grid :func:`elsjax.noise.time_grid`; the machine sampler runs the
    same loop on its own grid (:func:`machine_steps`).

    Args:
      eps_fn: an :class:`EpsFn` (e.g. :class:`elsjax.nets.NetEpsFn`).
      params: the net's parameters.
      seeds: ``[B, H, W, C]`` float32.
      num_steps: number of reverse steps n.
      y: labels ``[B]`` (or one for all) for a class-conditional net, each in ``0 .. num_classes - 1`` (checked
        when concrete: an out-of-range class would otherwise give NaN samples, and -1 the last class).

    Example:
      >>> import jax.numpy as jnp
      >>> eps_fn = lambda params, x, t, y: params * x
      >>> sample_net(eps_fn, jnp.float32(1.0), jnp.ones((3, 4, 4, 1)), num_steps=2).shape
      (3, 4, 4, 1)
    """
    if int(num_steps) < 1:
        raise ValueError(f"num_steps: expected a positive integer, got {num_steps}")
    y = check_net_labels(y, np.shape(seeds)[0], net_classes(eps_fn, params))
    y = None if y is None else jnp.asarray(y, jnp.int32)
    return sample_loop(eps_fn, params, jnp.asarray(seeds, jnp.float32), noise.time_grid(int(num_steps)), y)


def net_classes(eps_fn, params) -> int | None:
    """The number of classes a Flax net (:class:`elsjax.nets.NetEpsFn`) embeds: 0 if unconditional, None if
    ``eps_fn`` is not such a net (then nothing is known)."""
    graphdef = getattr(eps_fn, "graphdef", None)
    if graphdef is None:
        return None
    from flax import nnx

    try:
        module = nnx.merge(graphdef, params)
    except Exception:  # noqa: BLE001 - params that do not fit the graph: the net's own call will say so
        return None
    sizes = [m.num_embeddings for _, m in nnx.iter_modules(module) if isinstance(m, nnx.Embed)]
    return int(sizes[0]) if sizes else 0


def check_net_labels(y, batch: int, num_classes: int | None):
    """``y`` checked for a net of ``num_classes`` classes: integers ``[batch]`` (a scalar is broadcast), each in
    ``0 .. num_classes - 1``. Traced values, and any value when ``num_classes`` is unknown (None) or 0, pass.

    Example:
      >>> check_net_labels([12], 1, 10)
      Traceback (most recent call last):
      ...
      ValueError: y: class 12 is out of range for this net (classes 0..9)
    """
    if y is None or isinstance(y, jax.core.Tracer):
        return y
    arr = np.asarray(y)
    if arr.ndim == 0:
        arr = np.full(batch, arr)
    if arr.shape != (batch,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"y: expected integer classes of shape ({batch},), got {arr.dtype} {arr.shape}")
    if num_classes:
        bad = arr[(arr < 0) | (arr >= num_classes)]
        if bad.size:
            raise ValueError(f"y: class {int(bad[0])} is out of range for this net (classes 0..{num_classes - 1})")
    return arr


def machine_steps(scales: Sequence[int], convention: str = "reference"):
    """The machine sampler's grid and the k used at each step.

    Args:
      scales: the calibrated schedule (length n, 20 in the paper); entry j belongs to ``t = (j + 1) / n``.
      convention: ``"reference"`` (``scales[i]`` at ``t = i / n``, as the authors' sampler does) or
        ``"corrected"`` (``scales[i - 1]``).

    Returns:
      ``(grid [n - 1, 2] float32, ks [n - 1] int)``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    n = len(scales)
    shift = 0 if convention == "reference" else 1
    ks = np.array([int(scales[i - shift]) for i in range(n - 1, 0, -1)], np.int64)
    return noise.time_grid(n, start=n - 1), ks


def sample_machine(
    kind: str,
    seeds,
    images,
    scales: Sequence[int],
    *,
    convention: str = "reference",
    chunk_size: int | None = None,
    return_trajectory: bool = False,
    progress: Callable[[str, int, int, int], None] | None = None,
    keep_bytes: int | None = None,
    mesh=None,
    provenance: int | None = None,
    provenance_steps: Sequence[int] | None = None,
):
    """Runs a score machine from ``seeds`` (treated as x at t = 0.95 on the reference grid) to its clean output.

    Args:
      kind: machine kind (see :data:`elsjax.machines.KINDS`).
      seeds: ``[B, H, W, C]`` float32.
      images: the (class-filtered) training images ``[N, H, W, C]``.
      scales: the k schedule, see :func:`machine_steps`.
      convention: see :func:`machine_steps`.
      chunk_size: dictionary chunk size (default per machine).
      return_trajectory: also return the ``x`` at every evaluation, ``[steps, B, H, W, C]``.
      progress: optional ``progress(phase, steps_done, total_steps, k)``, called with phase ``"build"`` before a
        dictionary is built, ``"built"`` after it, and ``"sample"`` after each segment of steps (for progress bars
        and timings).
      keep_bytes: keep dictionaries that a later segment needs again while they take at most this many bytes in
        all (default :func:`default_keep_bytes`); others are freed and rebuilt when needed. The dictionaries of the
        schedule's distinct k are built before the first step while an upper bound of their size (every patch
        distinct) fits in it, each one's program compiling on a background thread while the next is built.
        Results do not depend on it.
      mesh: None (one device) or a ``jax.sharding.Mesh`` (:func:`elsjax.make_mesh`): each dictionary is split over
        ``"entries"`` and the seeds over ``"seeds"`` (padded by repetition to a multiple of it, the padding
        dropped at the end); the loop runs on the sharded state. With several processes, ``images`` are this
        process's own training images and ``seeds`` the same on every process.
      provenance: None (the default: the loop is exactly as without this argument), or ``top``: at the recorded
        steps the machine is evaluated by :meth:`~elsjax.machines.ScoreMachine.posterior` (the same mean, to float
        rounding, with the ``top`` heaviest entries and the entropy, in the same pass), and a
        :class:`StepPosterior` is kept per recorded step. Not with ``mesh`` or ``return_trajectory``.
      provenance_steps: the step indices to record (default: every step); other steps run the default loop.

    Returns:
      ``[B, H, W, C]`` samples (and the trajectory, if asked; or, with ``provenance``, the list of
      :class:`StepPosterior` in step order). The output is a posterior mean, a convex combination of training
      pixels: it is clipped to the training images' range to remove float32 rounding beyond it (a sample's minimum
      was measured at -1.0000001 with data in [-1, 1]).
    """
    report = progress or (lambda *args: None)
    mesh = sharding.check_mesh(mesh)
    if provenance is not None:
        if mesh is not None:
            raise ValueError("mesh: provenance runs on one device; sample without a mesh")
        if return_trajectory:
            raise ValueError("return_trajectory: not with provenance (each recorded step keeps its x)")
    lo, hi = (float(np.min(images)), float(np.max(images))) if mesh is None else sharding.global_range(images)
    keep_bytes = default_keep_bytes() if keep_bytes is None else keep_bytes
    grid, ks = machine_steps(scales, convention)
    if kind == "ideal":
        ks = np.zeros_like(ks)  # IS has no patch size: one segment
    batch = np.shape(seeds)[0]
    x = jnp.asarray(seeds, jnp.float32)
    if mesh is not None:
        x = sharding.put_batch(x, mesh)  # split over "seeds"
    visited, built, start, records = [], {}, 0, []
    # Ahead of time: each dictionary's program compiles on a background thread while the next dictionary is built.
    ahead = None if isinstance(x, jax.core.Tracer) else concurrent.futures.ThreadPoolExecutor(1)
    compiling = {}

    def build(k, done):
        report("build", done, len(ks), int(k))
        built[k] = machines.build(kind, images, int(k) or None, chunk_size=chunk_size, mesh=mesh)
        report("built", done, len(ks), int(k))
        if ahead is not None:
            compiling[k] = ahead.submit(_compile, built[k], x, grid, return_trajectory)

    if ahead is not None:  # the schedule's distinct k in order of first use, while they fit in keep_bytes
        budget, itemsize = keep_bytes, 1 if patches.encode_8bit(images) is not None else 4
        for k in dict.fromkeys(ks):
            budget -= _bytes_bound(kind, np.shape(images), int(k), itemsize)
            if budget < 0:
                break
            build(k, 0)
    for k, steps in itertools.groupby(ks):
        length = len(list(steps))
        if k not in built:
            build(k, start)
        if k in compiling:
            compiling.pop(k).result()
        machine = built.pop(k)
        if k in ks[start + length :] and _nbytes(machine) + sum(map(_nbytes, built.values())) <= keep_bytes:
            built[k] = machine  # needed again and within the budget; anything else is freed after this segment
        if provenance is None:
            # Every segment's grid is padded to the full length: one compilation per k, whatever the segment lengths.
            segment = np.zeros_like(grid)
            segment[:length] = grid[start : start + length]
            out = sample_loop(
                machines.ScoreMachine.eps, machine, x, segment, num_steps=jnp.int32(length),
                return_trajectory=return_trajectory,
            )  # fmt: skip
            x, traj = out if return_trajectory else (out, None)
        else:
            out = x = _record_segment(machine, x, grid, start, length, int(k), provenance, provenance_steps, records)
            traj = None
        # Dispatch is asynchronous: without waiting, the next dictionary would be built while this segment still
        # runs and holds its own, so every dictionary of the schedule stayed alive (full 60k: 16 GB).
        if not isinstance(x, jax.core.Tracer):
            x = jax.block_until_ready(x)
        del machine, out
        if k not in built:
            # Some reference cycle (not traced) keeps the dictionary's host buffers alive until the cyclic garbage
            # collector runs; without this the next build overlapped the last dictionary (measured +1x at N=20000).
            gc.collect()
        visited.append(traj[:length] if return_trajectory else None)
        start += length
        report("sample", start, len(ks), int(k))
    if ahead is not None:
        ahead.shutdown()
    x = jnp.clip(x, lo, hi)
    if mesh is not None:
        x = x[:batch]
        visited = [v[:, :batch] for v in visited] if return_trajectory else visited
    if provenance is not None:
        return x, records
    return (x, jnp.concatenate(visited)) if return_trajectory else x


def _record_segment(machine, x, grid, start: int, length: int, k: int, top: int, steps, records: list):
    """One segment of :func:`sample_machine` with provenance: recorded steps one by one through the posterior
    path, runs of other steps through :func:`sample_loop` exactly as without provenance."""
    is_recorded = lambda i: steps is None or i in steps
    i, end = start, start + length
    while i < end:
        if is_recorded(i):
            t = jnp.full((x.shape[0],), grid[i, 0], jnp.float32)
            t_prev = jnp.full((x.shape[0],), grid[i, 1], jnp.float32)
            x_next, post = _posterior_step(machine, x, t, t_prev, top)
            records.append(StepPosterior(i, float(grid[i, 0]), k, np.asarray(x), jax.tree.map(np.asarray, post)))
            x, i = x_next, i + 1
            continue
        run = next((j for j in range(i, end) if is_recorded(j)), end) - i
        segment = np.zeros_like(grid)
        segment[:run] = grid[i : i + run]
        x = sample_loop(machines.ScoreMachine.eps, machine, x, segment, num_steps=jnp.int32(run))
        i += run
    return x


@functools.partial(jax.jit, static_argnames=("top",))
def _posterior_step(machine, x, t, t_prev, top: int):
    """One DDIM step of the machine through its provenance path: ``(x at t_prev, Posterior at (x, t))``."""
    post = machine.posterior(x, t, top=top)
    a, b = noise.signal_noise_std(t)
    eps_hat = (x - a[:, None, None, None] * post.mean) / b[:, None, None, None]  # as ScoreMachine.eps
    return noise.ddim_step(x, eps_hat, t, t_prev), post


def _nbytes(tree) -> int:
    return sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(tree))


def _compile(machine, x, grid, return_trajectory: bool) -> None:
    """Compiles (and caches) the loop's program for ``machine``'s shapes by running zero steps of it."""
    out = sample_loop(
        machines.ScoreMachine.eps, machine, x, np.zeros_like(grid), num_steps=jnp.int32(0),
        return_trajectory=return_trajectory,
    )  # fmt: skip
    jax.block_until_ready(out)


def _bytes_bound(kind: str, shape, k: int, itemsize: int) -> int:
    """An upper bound of a machine's dictionary bytes (every patch distinct); ``itemsize`` 1 for 8-bit data."""
    n, h, w, c = shape
    if kind == "ideal":
        return n * (2 * h * w * c * itemsize + 8)
    if kind == "ls":
        return n * (h * w * c * 4 + 4)
    positions = (h - k + 1) * (w - k + 1) if kind == "els" else h * w
    return n * positions * ((k * k * c + c) * itemsize + 8)
