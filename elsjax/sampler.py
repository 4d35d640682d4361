"""One reverse-sampling loop for anything that predicts noise: score machines and trained networks alike.

:func:`sample_loop` runs deterministic DDIM (docs/maths.md §2.3) over a time grid with ``lax.scan``. It takes
an :class:`EpsFn`, ``eps_fn(params, x, t, y) -> eps_hat``, and does not care whether ``params`` are network
weights (:class:`elsjax.nets.NetEpsFn`) or a denoiser (``Denoiser.eps``, the denoiser as its own params).

The machine sampler (:func:`sample_machine`) follows the reference's grid (docs/maths.md §3, §6): ``n = len(scales)``
(20), evaluations at ``t = i / n`` for ``i = n - 1, ..., 1`` (t = 0.95 ... 0.05), the patch size at ``t = i / n`` is
``scales[i]`` (``scales[0]`` is never used), and the output is the last step's clean estimate. The calibration
stores the k for ``t = (j + 1) / n`` at index ``j``, so ``convention="corrected"`` reads ``scales[i - 1]`` instead.
Consecutive steps with the same k form one segment, run as one loop with that k's dictionaries; segments of
any length share one compiled program per k, or, with padded programs (the default on accelerators), one per
bucket of k: at most two for any schedule (:mod:`elsjax.sample_plan`, docs/performance.md).

Beside DDIM, :func:`sample_edm` runs EDM's Heun (or Euler) sampler on EDM's sigma parameterisation of the same
schedule (``sigma = b_t / a_t``, :func:`karras_sigmas`; docs/maths.md §12.8), for any :class:`EpsFn`.

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

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import denoisers, noise
from elsjax.progress import Progress
from elsjax.sample_plan import (
    CONVENTIONS,
    KEEP_BYTES,
    Run,
    SamplePlan,
    Segment,
    default_keep_bytes,
    machine_steps,
    plan,
)

__all__ = [
    "EpsFn", "sample_loop", "sample_net", "machine_steps", "sample_machine", "machine_trajectory", "sample_posteriors",
    "plan", "SamplePlan", "Segment", "CONVENTIONS", "KEEP_BYTES", "default_keep_bytes", "StepPosterior", "net_classes",
    "check_net_labels",
    "SIGMA_MAX", "sigma_of_time", "time_of_sigma", "karras_sigmas", "edm_denoiser", "sample_edm", "EDM_METHODS",
]  # fmt: skip


class EpsFn(Protocol):
    """The contract shared by trained nets and score machines: a noise predictor.

    ``eps_fn(params, x, t, y) -> eps_hat`` with ``x [B, H, W, C]`` float32, ``t [B]`` float32 times in (0, 1],
    ``y [B]`` int32 classes or None, and ``eps_hat`` of ``x``'s shape: the prediction of the noise ``eps`` in
    ``x = a_t x0 + b_t eps``. It must be a pure, traceable function of its arguments, and hashable (it is a static
    argument of the compiled loop); everything that changes between calls goes in the pytree ``params``.

    Implementations: :class:`elsjax.nets.NetEpsFn` (a Flax net; ``params`` its weights) and ``Denoiser.eps``
    (``params`` the :class:`~elsjax.denoisers.Denoiser` itself; ``y`` ignored, a conditional machine is built
    from its class's images).
    """

    def __call__(self, params: Any, x: jax.Array, t: jax.Array, y: jax.Array | None) -> jax.Array: ...


class StepPosterior(NamedTuple):
    """What :func:`sample_posteriors` records at one step (host NumPy arrays).

    Attributes:
      step: the step's index on the machine grid (0 is the first evaluation, at t = 0.95 on the paper's grid).
      t: the step's time.
      k: the patch size in use (0 for IS).
      x: ``[B, H, W, C]`` the noisy images the machine was evaluated at.
      posterior: the :class:`~elsjax.denoisers.Posterior` at ``(x, t)``: its ``mean`` is the step's clean estimate,
        ``entry`` indexes each pixel's dictionary (:meth:`elsjax.denoisers.PatchDenoiser.pixel_groups`).
    """

    step: int
    t: float
    k: int
    x: np.ndarray
    posterior: denoisers.Posterior


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
  params: a pytree passed to ``eps_fn`` (network weights, or a :class:`~elsjax.denoisers.Denoiser`).
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


def sample_machine(
    kind,
    seeds,
    images,
    scales: Sequence[int],
    *,
    convention: str = "reference",
    chunk_size: int | None = None,
    progress: Progress | None = None,
    keep_bytes: int | None = None,
    mesh=None,
    cache=None,
    shape_bits: int | None = None,
    knobs: dict | None = None,
    padded: bool | None = None,
):
    """Runs a denoiser from ``seeds`` (treated as x at t = 0.95 on the reference grid) to its clean output.

    Args:
      kind: a registered denoiser (its name or class, :func:`elsjax.denoisers.names`).
      seeds: ``[B, H, W, C]`` float32.
      images: the (class-filtered) training images ``[N, H, W, C]``.
      scales: the k schedule, see :func:`machine_steps`.
      convention: see :func:`machine_steps`.
      chunk_size: dictionary chunk size (default per machine).
      progress: an :class:`elsjax.progress.Progress`, called with :attr:`~elsjax.progress.Phase.BUILD` before a
        dictionary is built, ``BUILT`` after it, and ``SAMPLE`` after each segment of steps.
      keep_bytes: keep dictionaries that a later segment needs again while they take at most this many bytes in
        all (default :func:`default_keep_bytes`); others are freed and rebuilt when needed. The dictionaries of the
        schedule's distinct k are built before the first step while an upper bound of their size (every patch
        distinct) fits in it, each one's program compiling on a background thread while the next is built
        (:func:`plan`). Results do not depend on it.
      mesh: None (one device) or a ``jax.sharding.Mesh`` (:func:`elsjax.make_mesh`): each dictionary is split over
        ``"entries"`` and the seeds over ``"seeds"`` (padded by repetition to a multiple of it, the padding
        dropped at the end); the loop runs on the sharded state. With several processes, ``images`` are this
        process's own training images and ``seeds`` the same on every process.
      cache: an :class:`elsjax.dictcache.DictionaryCache` the dictionaries are taken from and kept in.
      shape_bits: dictionaries padded to shared shapes (:func:`elsjax.patches.bucket`), or None.
      knobs: the denoiser's own keyword arguments (:attr:`elsjax.denoisers.Denoiser.knobs`), the same at every step.
      padded: padded programs for patch machines: every k of a bucket padded to one shape, one compiled program per
        bucket, at most two (:func:`elsjax.sample_plan.program_buckets`); the same results to float32 rounding.
        None: :func:`elsjax.sample_plan.default_padded` (on accelerators, not on CPU); never with a mesh.

    Returns:
      ``[B, H, W, C]`` samples. The output is a posterior mean, a convex combination of training pixels: it is
      clipped to the training images' range to remove float32 rounding beyond it (a sample's minimum was measured at
      -1.0000001 with data in [-1, 1]).
    """
    warm = lambda machine, x, grid: jax.block_until_ready(
        sample_loop(denoisers.Denoiser.eps, machine, x, np.zeros_like(grid), num_steps=jnp.int32(0))
    )
    run = Run(
        kind, seeds, images, scales, convention=convention, chunk_size=chunk_size, progress=progress,
        keep_bytes=keep_bytes, mesh=mesh, cache=cache, shape_bits=shape_bits, knobs=knobs, warm=warm, padded=padded,
    )  # fmt: skip
    for segment, machine in run:
        grid = run.padded_grid(segment.start, segment.length)
        run.x = sample_loop(denoisers.Denoiser.eps, machine, run.x, grid, num_steps=jnp.int32(segment.length))
    return run.result()


def machine_trajectory(kind, seeds, images, scales: Sequence[int], *, convention: str = "reference", **options):
    """:func:`sample_machine` that also returns the ``x`` of every evaluation: ``(samples, [steps, B, H, W, C])``.

    ``options`` are :func:`sample_machine`'s (not ``mesh``: the trajectory of a sharded sample is not kept).
    """
    if options.get("mesh") is not None:
        raise ValueError("mesh: machine_trajectory runs on one device")
    warm = lambda machine, x, grid: jax.block_until_ready(
        sample_loop(denoisers.Denoiser.eps, machine, x, np.zeros_like(grid), num_steps=jnp.int32(0),
                    return_trajectory=True)
    )  # fmt: skip
    run = Run(kind, seeds, images, scales, convention=convention, warm=warm, **_run_options(options))
    visited = []
    for segment, machine in run:
        grid = run.padded_grid(segment.start, segment.length)
        run.x, traj = sample_loop(
            denoisers.Denoiser.eps, machine, run.x, grid, num_steps=jnp.int32(segment.length), return_trajectory=True
        )
        visited.append(traj[: segment.length])
    return run.result(), jnp.concatenate(visited)


def sample_posteriors(
    kind, seeds, images, scales: Sequence[int], *, top: int, steps: Sequence[int] | None = None,
    convention: str = "reference", **options,
):  # fmt: skip
    """:func:`sample_machine` that records the posterior of chosen steps: ``(samples, [StepPosterior, ...])``.

    At the recorded steps the denoiser is evaluated by :meth:`~elsjax.denoisers.Denoiser.posterior` (the same mean,
    to float rounding, with the ``top`` heaviest entries and the entropy, in the same pass); the other steps run
    the default loop. ``steps``: the step indices to record (default: every step). ``options`` are
    :func:`sample_machine`'s (not ``mesh``: provenance runs on one device).
    """
    if options.get("mesh") is not None:
        raise ValueError("mesh: provenance runs on one device; sample without a mesh")
    warm = lambda machine, x, grid: None  # the recorded steps compile as they come
    options = {**_run_options(options), "padded": False}  # records name each step's own k and its dictionaries
    run = Run(kind, seeds, images, scales, convention=convention, warm=warm, **options)
    records = []
    for segment, machine in run:
        run.x = _record_segment(run, machine, segment, top, steps, records)
    return run.result(), records


def _run_options(options: dict) -> dict:
    defaults = dict(
        chunk_size=None, progress=None, keep_bytes=None, mesh=None, cache=None, shape_bits=None, knobs=None, padded=None
    )
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f"unexpected options {sorted(unknown)}")
    return {**defaults, **options}


def _record_segment(run: Run, machine, segment: Segment, top: int, steps, records: list):
    """One segment with provenance: recorded steps one by one through the posterior path, runs of other steps
    through :func:`sample_loop` exactly as without provenance."""
    is_recorded = lambda i: steps is None or i in steps
    x, grid = run.x, run.plan.grid
    i, end = segment.start, segment.start + segment.length
    while i < end:
        if is_recorded(i):
            t = jnp.full((x.shape[0],), grid[i, 0], jnp.float32)
            t_prev = jnp.full((x.shape[0],), grid[i, 1], jnp.float32)
            x_next, post = _posterior_step(machine, x, t, t_prev, top)
            records.append(
                StepPosterior(i, float(grid[i, 0]), segment.k, np.asarray(x), jax.tree.map(np.asarray, post))
            )
            x, i = x_next, i + 1
            continue
        length = next((j for j in range(i, end) if is_recorded(j)), end) - i
        x = sample_loop(denoisers.Denoiser.eps, machine, x, run.padded_grid(i, length), num_steps=jnp.int32(length))
        i += length
    return x


@functools.partial(jax.jit, static_argnames=("top",))
def _posterior_step(machine, x, t, t_prev, top: int):
    """One DDIM step of the machine through its provenance path: ``(x at t_prev, Posterior at (x, t))``."""
    post = machine.posterior(x, t, top=top)
    a, b = noise.signal_noise_std(t)
    eps_hat = (x - a[:, None, None, None] * post.mean) / b[:, None, None, None]  # as Denoiser.eps
    return noise.ddim_step(x, eps_hat, t, t_prev), post


# ------------------------------------------------------------------------------------------------------------------
# EDM's parameterisation and Heun's sampler (Karras et al. 2022; docs/maths.md §12.8).
#
# EDM writes the forward process as x~ = x0 + sigma eps: elsjax's x_t = a_t x0 + b_t eps in the variable x~ = x_t / a_t,
# with sigma(t) = b_t / a_t = tan(pi t / 2.016) and t(sigma) = (2.016 / pi) arctan(sigma), so every sigma in
# [0, tan(pi / 2.016) = 80.2] (EDM's usual sigma_max is 80) is one t in [0, 1]. The denoiser D(x~; sigma) = E[x0 | x~]
# of any EpsFn (a trained net, or a denoiser's Denoiser.eps) is (x - b eps_hat(x, t)) / a at x = a x~, and the
# probability-flow ODE is dx~ / dsigma = (x~ - D(x~; sigma)) / sigma. sample_edm integrates it from sigma_max down to 0
# on a sigma grid (karras_sigmas, EDM's rho = 7) with Heun's second-order method (EDM's Algorithm 1, deterministic:
# the last step, to sigma = 0, is an Euler step) or Euler's. The seeds are standard normal; the sample starts at
# x~ = sigma_max * seeds.


SIGMA_MAX = math.tan(math.pi / 2.016)  # sigma at t = 1: 80.2
EDM_METHODS = ("heun", "euler")


def sigma_of_time(t):
    """``sigma = b_t / a_t = tan(pi t / 2.016)`` (float32, as :func:`elsjax.noise.signal_noise_std`)."""
    a, b = noise.signal_noise_std(t)
    return b / a


def time_of_sigma(sigma):
    """``t = (2.016 / pi) arctan(sigma)``, the time of noise level ``sigma`` (float32)."""
    return jnp.arctan(jnp.asarray(sigma, jnp.float32)) * jnp.float32(2.016 / math.pi)


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> np.ndarray:
    """EDM's noise levels: ``n`` levels from ``sigma_max`` down to ``sigma_min`` spaced evenly in ``sigma^(1/rho)``,
    then 0; float32 ``[n + 1]``.

    ``sigma_max`` may be at most :data:`SIGMA_MAX` (t = 1) and ``sigma_min`` at least ``sigma(MIN_TIME)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if not 0 < sigma_min < sigma_max <= SIGMA_MAX * (1 + 1e-6):
        raise ValueError(
            f"sigma_max: expected 0 < sigma_min < sigma_max <= {SIGMA_MAX:.4g} (t = 1), got {sigma_min}, {sigma_max}"
        )
    if rho <= 0:
        raise ValueError(f"rho: expected a positive number, got {rho}")
    ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return np.append(sigmas, 0.0).astype(np.float32)


def edm_denoiser(eps_fn, params, x_tilde, sigma, y=None):
    """EDM's ``D(x~; sigma)``, the clean estimate, of an :class:`EpsFn` at ``x~ [B, ...]``, ``sigma
    [B]`` (> 0)."""
    t = time_of_sigma(sigma)
    a, b = noise.signal_noise_std(t)
    shape = (-1,) + (1,) * (x_tilde.ndim - 1)
    a, b = a.reshape(shape), b.reshape(shape)
    x = a * x_tilde
    return (x - b * eps_fn(params, x, t, y)) / a


@functools.partial(jax.jit, static_argnames=("eps_fn", "method"))
def _sample_edm(eps_fn, params, seeds, sigmas, y, method: str):
    batch = seeds.shape[0]
    steps = sigmas.shape[0] - 1

    def drift(x, sigma):
        return (x - edm_denoiser(eps_fn, params, x, jnp.broadcast_to(sigma, (batch,)), y)) / sigma

    def step(i, x):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = drift(x, s)
        euler = x + (s_next - s) * d
        if method == "euler":
            return euler
        # Heun's correction, except on the step to sigma = 0 (where the drift is undefined): EDM's Algorithm 1.
        corrected = lambda: x + (s_next - s) * 0.5 * (d + drift(euler, s_next))
        return lax.cond(s_next > 0, corrected, lambda: euler)

    return lax.fori_loop(0, steps, step, sigmas[0] * seeds)


def sample_edm(eps_fn, params, seeds, sigmas, *, y=None, method: str = "heun"):
    """Samples by integrating the probability-flow ODE over ``sigmas`` (descending, e.g. :func:`karras_sigmas`).

    Args:
      eps_fn: an :class:`EpsFn` (hashable; a trained net's, or ``elsjax.denoisers.Denoiser.eps``).
      params: its parameters (the net's weights, or the built denoiser).
      seeds: ``[B, H, W, C]`` standard normal noise; the sample starts at ``x~ = sigmas[0] * seeds``.
      sigmas: ``[n + 1]`` noise levels, descending, the last one 0, at most :data:`SIGMA_MAX`.
      y: labels ``[B]`` for a class-conditional net.
      method: ``"heun"`` (second order, 2n - 1 evaluations) or ``"euler"`` (n evaluations).

    Returns:
      ``[B, H, W, C]``: ``x~`` at ``sigma = 0``, the sample.

    Example:
      >>> import jax.numpy as jnp
      >>> eps_fn = lambda params, x, t, y: jnp.zeros_like(x)      # predicts no noise: D(x~) = x~
      >>> sample_edm(eps_fn, None, jnp.ones((1, 2, 2, 1)), karras_sigmas(4)).shape
      (1, 2, 2, 1)
      >>> round(float(time_of_sigma(sigma_of_time(0.3))), 6)
      0.3
    """
    if method not in EDM_METHODS:
        raise ValueError(f"method: expected one of {EDM_METHODS}, got {method!r}")
    sigmas = np.asarray(sigmas, np.float32)
    if sigmas.ndim != 1 or sigmas.size < 2 or np.any(np.diff(sigmas) >= 0) or sigmas[-1] < 0:
        raise ValueError("sigmas: expected at least 2 descending noise levels, the last >= 0")
    if sigmas[0] > SIGMA_MAX * (1 + 1e-6) or (sigmas[:-1] <= 0).any():
        raise ValueError(f"sigmas: every level but the last must lie in (0, {SIGMA_MAX:.4g}] (t <= 1)")
    y = None if y is None else jnp.asarray(y, jnp.int32)
    return _sample_edm(eps_fn, params, jnp.asarray(seeds, jnp.float32), jnp.asarray(sigmas), y, method)
