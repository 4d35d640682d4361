"""Scoring machines against a trained net at the net's own states: what every calibration shares (docs/maths.md §7).

The net draws its own DDIM trajectory on the network grid (``t = i / n`` for ``i = n, ..., 1``, from seeds treated as
x at t = 1; :func:`net_states`). A plan of machines (:class:`Column`: a candidate, its patch size, its knobs, the steps
it scores) is then evaluated at those states, each machine's noise estimate scored against the net's by cosine
similarity over the whole image (:func:`cosines`). :mod:`elsjax.calibrate` chooses a patch size per step
(:func:`elsjax.calibrate.calibrate`) or one value of a knob (:func:`elsjax.calibrate.calibrate_knob`) from them.

Cost: one net trajectory plus one batched net call for its noise estimates; then per class group (seeds grouped by
class, the dictionary restricted to that class's images) and per machine of the plan one dictionary build and one
batched machine call over its (seed, step) states. Each dictionary is freed before the next one is built.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import time
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from elsjax import checks, denoisers, noise, patches, sampler, sharding
from elsjax import seeds as seeds_lib
from elsjax.programs import Programs
from elsjax.progress import Phase

__all__ = [
    "cosine",
    "lower_median",
    "mode",
    "draw",
    "Study",
    "study",
    "Column",
    "Parts",
    "cosines",
    "net_states",
    "in_batches",
]


def cosine(a, b) -> np.ndarray:
    """Cosine similarity of each pair of images over all their values, ``[B]`` float64 (NaN if one is all zero).

    Computed in float64 on the host; ``cosine(a, a)`` is exactly 1.

    Example:
      >>> import numpy as np
      >>> cosine(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0], [2.0, 2.0]])).round(4).tolist()
      [0.7071, 1.0]
    """
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))


def lower_median(values, axis: int = 0) -> np.ndarray:
    """The lower median along ``axis`` (``torch.median``: the ``(n - 1) // 2``-th smallest), same dtype.

    Example:
      >>> lower_median([[3, 9], [5, 7], [7, 5], [9, 3]]).tolist()
      [5, 5]
    """
    v = np.sort(np.asarray(values), axis=axis)
    return np.take(v, (v.shape[axis] - 1) // 2, axis=axis)


def mode(values, axis: int = 0) -> np.ndarray:
    """The most frequent value along ``axis``, the smallest on ties.

    Example:
      >>> mode([[3, 9], [5, 7], [5, 7], [3, 5]]).tolist()
      [3, 7]
    """
    v = np.moveaxis(np.asarray(values), axis, -1)
    flat = v.reshape(-1, v.shape[-1])
    out = np.empty(flat.shape[0], v.dtype)
    for i, row in enumerate(flat):
        uniq, counts = np.unique(row, return_counts=True)  # ascending, so argmax takes the smallest on ties
        out[i] = uniq[np.argmax(counts)]
    return out.reshape(v.shape[:-1])


def draw(
    seed: int, n_seeds: int, image_shape, *, labels=None, conditional: bool = False, num_classes: int | None = None
):
    """The starting noise and classes of a calibration or an evaluation (:mod:`elsjax.seeds`).

    Args:
      seed: PRNG seed of the noise.
      n_seeds: number of seeds.
      image_shape: ``(H, W, C)``.
      labels: training labels ``[N]`` (for the number of classes, when ``num_classes`` is not given).
      conditional: draw a class per seed (seed ``i`` gets ``i mod num_classes``).
      num_classes: the number of classes (default ``max(labels) + 1``).

    Returns:
      ``(seeds float32 [n_seeds, H, W, C], y int32 [n_seeds] or None)``.

    Example:
      >>> s, y = draw(0, 3, (4, 4, 1), labels=[0, 1, 1, 0], conditional=True)
      >>> s.shape, y.tolist()
      ((3, 4, 4, 1), [0, 1, 0])
    """
    seed = checks.integer("seed", seed, 0)
    n_seeds = checks.integer("n_seeds", n_seeds, 1)
    noise = seeds_lib.noise(seed, n_seeds, tuple(int(s) for s in image_shape))
    if not conditional:
        return noise, None
    if num_classes is None:
        if labels is None:
            raise ValueError("labels: a conditional job needs the training labels (or num_classes)")
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ValueError(f"labels: expected non-negative integers [N], got {labels.dtype} {labels.shape}")
        num_classes = int(labels.max()) + 1
    num_classes = checks.integer("num_classes", num_classes, 1)
    return noise, seeds_lib.classes(n_seeds, num_classes)


class Study(NamedTuple):
    """The checked inputs of a calibration: the seeds (x at t = 1), their classes, the class groups (each with its
    training images), the number of steps, the batch size and the mesh."""

    x1: np.ndarray
    y: np.ndarray | None
    groups: list
    num_steps: int
    batch_size: int | None
    mesh: Any


def study(eps_fn, params, seeds, train, labels, y, num_steps, batch_size, mesh) -> Study:
    """Checks what every calibration takes (before any work) and groups the seeds by class."""
    x1 = checks.images("seeds", seeds, train.shape[1:])
    n = checks.integer("num_steps", num_steps, 1)
    if batch_size is not None:
        batch_size = checks.integer("batch_size", batch_size, 1)
    mesh = sharding.check_mesh(mesh)
    groups = checks.class_groups(x1.shape[0], train, labels, y)
    if y is not None:
        y = np.broadcast_to(np.asarray(y, np.int32), (x1.shape[0],)).copy()  # validated by checks.class_groups
        sampler.check_net_labels(y, x1.shape[0], sampler.net_classes(eps_fn, params))  # and within the net's classes
    return Study(x1, y, groups, n, batch_size, mesh)


class Column(NamedTuple):
    """One machine of a calibration: the candidate (column) it scores, its patch size (None: none), its knobs, and
    the grid rows (steps) at which it is evaluated."""

    column: int
    k: int | None
    knobs: dict
    rows: np.ndarray


class Parts(Protocol):
    """Where the finished units of a calibration are kept, so that a killed calibration resumes (None: nowhere).

    A unit is one machine of the plan (:class:`Column`) over one class group: its cosines ``[rows, seeds]``. Each
    unit is looked up by ``load(name, tag, shape)`` before any work and saved by ``save(name, tag, values,
    seconds)`` as soon as it is computed; ``tag`` (JSON-ready) says what it was computed from, and ``load`` returns
    the values only if they were computed from an equal tag. :class:`elsjax.parts.Store` keeps them in files.
    """

    def load(self, name: str, tag: dict, shape: tuple[int, ...]) -> np.ndarray | None: ...

    def save(self, name: str, tag: dict, values: np.ndarray, seconds: float) -> None: ...


def _fingerprint(array) -> str:
    """A short digest of an array's shape, dtype and bytes (what a unit's tag records of its seeds and images)."""
    a = np.ascontiguousarray(array)
    return hashlib.sha256(repr((a.shape, a.dtype.str)).encode() + a.tobytes()).hexdigest()[:20]


def _group_tag(study: Study, group) -> dict:
    """What every unit of a class group records of it: its seeds (indices and starting noise) and its training
    images (digests, computed once per group)."""
    index, images = group
    return {"seeds": [int(i) for i in index], "x1": _fingerprint(study.x1[index]), "train": _fingerprint(images)}


def _unit(denoiser, study: Study, group, group_tag: dict, column: Column, chunk_size) -> tuple[str, dict]:
    """The name and tag of one unit (a machine of the plan over one class group): everything its cosines depend
    on but the net, which the caller's parts record (:class:`Parts`)."""
    index, y = group[0], study.y
    label = "all" if y is None else f"class{int(y[index[0]])}"
    name = f"cosine_{label}_c{column.column:02d}" + (f"_k{column.k}" if column.k else "")
    tag = {
        "kind": denoiser.name, "column": column.column, "k": column.k, "knobs": dict(column.knobs),
        "rows": [int(r) for r in column.rows], "num_steps": study.num_steps, "n_seeds": int(study.x1.shape[0]),
        "chunk_size": chunk_size, "batch_size": study.batch_size, **group_tag,
    }  # fmt: skip
    return name, tag


def cosines(eps_fn, params, denoiser, study: Study, plan, columns: int, *, chunk_size, progress, cache, programs,
            parts: Parts | None = None):  # fmt: skip
    """The cosine of each planned machine with the net at the net's own states, float64 ``[n_seeds, n, columns]``
    (entry j at t = (j + 1) / n; NaN where no machine of the plan scores a (step, candidate)).

    With ``parts``, each unit (a machine over a class group) is taken from it if an earlier run saved it, and saved
    to it as soon as it is computed; the net runs only if a unit is missing. The result is the same either way."""
    x1, n, batch_size, mesh = study.x1, study.num_steps, study.batch_size, study.mesh
    report = progress or (lambda *args: None)
    n_seeds = x1.shape[0]
    programs = Programs() if programs is None else programs
    cos = np.full((n, n_seeds, columns), np.nan)  # grid-row order: row i is t = (n - i) / n
    todo = []
    for group in study.groups:  # 1. the units earlier runs saved (tags and digests only when there are parts)
        group_tag = None if parts is None else _group_tag(study, group)
        for column in plan:
            name, tag = (None, None) if parts is None else _unit(denoiser, study, group, group_tag, column, chunk_size)
            saved = None if parts is None else parts.load(name, tag, (len(column.rows), len(group[0])))
            if saved is None:
                todo.append((group, column, name, tag))
            else:
                cos[column.rows[:, None], group[0][None, :], column.column] = saved
    total = len(study.groups) * len(plan)
    done = total - len(todo)
    if not todo:
        return cos[::-1].transpose(1, 0, 2)

    # 2. The net's own trajectory on the network grid, and its noise estimate at every visited x.
    states, t_states, net = net_states(eps_fn, params, x1, study.y, n, batch_size)
    report(Phase.NET, done, total, 0)

    # 3. Per missing unit: one dictionary, one batched evaluation over its (step, seed) states.
    # Several classes: dictionaries padded to shared shapes, so that classes share compiled programs (exact).
    shape_bits = patches.SHARED_SHAPE_BITS if len(study.groups) > 1 else None
    for (index, images), (column, k, knobs, grid_rows), name, tag in todo:
        start_s = time.perf_counter()
        rows = (grid_rows[:, None] * n_seeds + index[None, :]).reshape(-1)
        machine = denoisers.build(denoiser, images, k, chunk_size=chunk_size, mesh=mesh, cache=cache,
                                  shape_bits=shape_bits, **knobs)  # fmt: skip
        report(Phase.BUILD, done, total, k or 0)
        compiled = functools.partial(report, Phase.COMPILE, done, total, k or 0)
        eps_k = in_batches(_machine_eps, (states[rows], t_states[rows]), batch_size, static=machine,
                           on_compiled=compiled, mesh=mesh, programs=programs)  # fmt: skip
        del machine
        gc.collect()  # free this dictionary before the next build (see sampler.sample_machine)
        values = cosine(eps_k, net[rows]).reshape(len(grid_rows), -1)
        cos[grid_rows[:, None], index[None, :], column] = values
        if parts is not None:
            parts.save(name, tag, values, time.perf_counter() - start_s)
        done += 1
        report(Phase.EVALUATE, done, total, k or 0)
    return cos[::-1].transpose(1, 0, 2)  # [n_seeds, n]: entry j is t = (j + 1) / n


def net_states(eps_fn, params, x1, y, n: int, batch_size):
    """The net's DDIM trajectory from ``x1`` on the n-step network grid and its noise estimate at every state:
    ``(states [n * B, H, W, C], t [n * B], eps [n * B, H, W, C])``, state ``i * B + b`` at grid row i, seed b."""
    n_seeds = x1.shape[0]
    grid = noise.time_grid(n)
    y_net = None if y is None else jnp.asarray(y)
    _, traj = sampler.sample_loop(eps_fn, params, jnp.asarray(x1), grid, y_net, return_trajectory=True)
    states = np.asarray(traj).reshape((n * n_seeds,) + x1.shape[1:])
    t_states = np.repeat(grid[:, 0], n_seeds)
    y_states = None if y is None else np.tile(y, n)
    net = in_batches(lambda *a: _net_eps(eps_fn, params, *a), (states, t_states, y_states), batch_size)
    del traj
    if jax.process_count() > 1:  # every process runs the net; the machines must see the very same states
        states, net = sharding.broadcast((states, net))
    return states, t_states, net


_net_eps = jax.jit(lambda eps_fn, params, x, t, y: eps_fn(params, x, t, y), static_argnums=0)


_machine_eps = jax.jit(lambda machine, x, t: machine.eps(x, t))


def in_batches(fn, arrays, batch_size, *, static=None, on_compiled=None, mesh=None, programs: Programs | None = None):
    """``fn`` over the leading axis in batches of ``batch_size`` (the last padded by repetition: one compilation).

    With ``static`` (a denoiser), ``fn(static, *batch)`` (``fn`` a ``jax.jit`` function) is compiled ahead of the
    first batch through ``programs`` (:class:`elsjax.programs.Programs`; None: a new one) and ``on_compiled`` is
    called after, so that a caller can time compilation apart; denoisers of one shape share a program. With
    ``mesh``, each batch is padded to a multiple of its ``"seeds"`` axis and split over it.
    """
    total = len(arrays[0])
    size = total if batch_size is None else min(batch_size, total)
    if mesh is not None:
        size = -(-size // sharding.axis_size(mesh, sharding.SEEDS)) * sharding.axis_size(mesh, sharding.SEEDS)
    out, compiled = None, None
    for start in range(0, total, size):
        stop = min(start + size, total)
        pad = size - (stop - start)
        batch = [
            None if a is None else jnp.asarray(np.concatenate([a[start:stop], np.repeat(a[stop - 1 : stop], pad, 0)]))
            for a in arrays
        ]
        if mesh is not None:
            batch = [None if a is None else sharding.put_batch(a, mesh) for a in batch]
        if static is not None:
            if compiled is None:
                programs = Programs() if programs is None else programs
                compiled = programs.compile(fn, static, *batch)
                if on_compiled is not None:
                    on_compiled()
            result = sharding.to_host(compiled(static, *batch))[: stop - start]
        else:
            result = np.asarray(fn(*batch))[: stop - start]
        if out is None:
            out = np.empty((total,) + result.shape[1:], result.dtype)
        out[start:stop] = result
    return out
