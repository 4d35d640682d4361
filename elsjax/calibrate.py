"""Scale calibration (docs/maths.md §7): which patch size k makes a machine's noise estimate closest to a trained net's.

The net draws its own DDIM trajectory on the network grid (``t = i / n`` for ``i = n, ..., 1``, from seeds treated as
x at t = 1). At every step, and for every candidate k, the machine's noise estimate ``eps_k`` is evaluated at the
**current** x (before the update) and scored against the net's ``eps_hat`` by cosine similarity over the whole image
(all ``C * H * W`` values; the cosine of the scores ``-eps / b_t`` is the same number). The best k of a (seed, step)
is the argmax, the smallest k on ties (the reference's first maximum over an ascending list). Per step, the
schedule is the **lower** median over seeds (``torch.median``'s choice for an even count) and the mode.

Layout: entry ``j`` of every per-step array belongs to ``t = (j + 1) / n``, the layout of the published schedules
(docs/maths.md §6.4), so ``elsjax.sample(..., scales=calibration.median)`` uses the result exactly as the authors did
(including their off-by-one, docs/maths.md §6.2; ``convention="corrected"`` undoes it).

Cost: one net trajectory plus one batched net call for its noise estimates; then per class group (seeds grouped by
class, the dictionary restricted to that class's images) and per k one dictionary build and one batched machine
call over all (seed, step) states of the group. Each dictionary is freed before the next one is built.

Example:
    >>> import numpy as np
    >>> from elsjax import calibrate, denoisers
    >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    >>> net = denoisers.build("els", train, 5)          # a "net" that is the ELS machine with k = 5
    >>> cal = calibrate.calibrate(denoisers.Denoiser.eps, net, kind="els", train=train, ks=[3, 5, 7], n_seeds=2, num_steps=4)
    >>> cal.median, cal.times
    ([5, 5, 5, 5], [0.25, 0.5, 0.75, 1.0])
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from elsjax import checks, denoisers, noise, patches, sampler, sharding
from elsjax import seeds as seeds_lib
from elsjax.programs import Programs
from elsjax.progress import Phase, Progress

__all__ = [
    "Calibration",
    "calibrate",
    "calibrate_seeds",
    "draw",
    "cosine",
    "lower_median",
    "mode",
    "in_batches",
    "FORMAT",
]

FORMAT = "elsjax.calibration/1"  # tag of the to_dict() layout


class Calibration(NamedTuple):
    """The result of a calibration. Per-step entries ``j`` belong to ``t = (j + 1) / n`` (n = ``len(times)``).

    Attributes:
      ks: the candidate patch sizes, ascending.
      times: ``t`` of each entry, ``[(j + 1) / n for j in range(n)]``.
      per_seed: int64 ``[n_seeds, n]``, the best k of each seed at each step.
      median: per step the lower median over seeds (the schedule, as the published files).
      mode: per step the most frequent best k (the smallest on ties).
      cosine: float32 ``[n_seeds, n, len(ks)]``, the cosine similarity of each candidate with the net.
      seed: the PRNG seed of the starting noise (None when the seeds were given).
      y: int32 ``[n_seeds]`` class of each seed, or None (unconditional).
      kind: the machine calibrated.
    """

    ks: tuple[int, ...]
    times: list[float]
    per_seed: np.ndarray
    median: list[int]
    mode: list[int]
    cosine: np.ndarray
    seed: int | None
    y: np.ndarray | None
    kind: str = ""

    def to_dict(self) -> dict:
        """A JSON-ready dict (plain lists and numbers) holding every field; :meth:`from_dict` inverts it exactly.

        Example:
          >>> import json, numpy as np
          >>> c = Calibration((3, 5), [0.5, 1.0], np.array([[3, 5]]), [3, 5], [3, 5],
          ...                 np.ones((1, 2, 2), np.float32), 0, None, "els")
          >>> Calibration.from_dict(json.loads(json.dumps(c.to_dict()))).median
          [3, 5]
        """
        n = len(self.times)
        return {
            "format": FORMAT,
            "kind": self.kind,
            "ks": [int(k) for k in self.ks],
            "num_steps": n,
            "n_seeds": int(self.per_seed.shape[0]),
            "seed": None if self.seed is None else int(self.seed),
            "layout": f"entry j belongs to t = (j + 1) / {n}",
            "times": [float(t) for t in self.times],
            "median": [int(k) for k in self.median],
            "mode": [int(k) for k in self.mode],
            "y": None if self.y is None else [int(c) for c in self.y],
            "per_seed": np.asarray(self.per_seed).astype(int).tolist(),
            # float32 -> Python float is exact, and JSON keeps every digit of a float: the round trip is exact.
            "cosine": np.asarray(self.cosine, np.float32).astype(np.float64).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Rebuilds a :class:`Calibration` from :meth:`to_dict`'s output (also after a JSON round trip)."""
        if d.get("format") != FORMAT:
            raise ValueError(f"d: expected a dict of format {FORMAT!r}, got format {d.get('format')!r}")
        ks = tuple(int(k) for k in d["ks"])
        n = len(d["times"])
        per_seed = np.asarray(d["per_seed"], np.int64).reshape(-1, n)
        cos = np.asarray(d["cosine"], np.float32).reshape(per_seed.shape[0], n, len(ks))
        y = None if d.get("y") is None else np.asarray(d["y"], np.int32)
        return cls(
            ks=ks,
            times=[float(t) for t in d["times"]],
            per_seed=per_seed,
            median=[int(k) for k in d["median"]],
            mode=[int(k) for k in d["mode"]],
            cosine=cos,
            seed=d.get("seed"),
            y=y,
            kind=d.get("kind", ""),
        )


# ----------------------------------------------------------------------------------------------------------------
# Small pure pieces.


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


# ----------------------------------------------------------------------------------------------------------------
# The calibration.


def calibrate(
    eps_fn: Callable,
    params,
    *,
    kind: str,
    train,
    ks: Sequence[int],
    labels=None,
    conditional: bool = False,
    num_classes: int | None = None,
    n_seeds: int = 10,
    seed: int = 0,
    num_steps: int = 20,
    chunk_size: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    mesh=None,
    cache=None,
    programs: Programs | None = None,
    knobs: Mapping | None = None,
) -> Calibration:
    """Calibrates a machine's k schedule against a net (docs/maths.md §7) from seeds drawn by :func:`draw`.

    Args:
      eps_fn: the net, ``eps_fn(params, x [B, H, W, C], t [B], y [B] int or None) -> eps_hat``; static and hashable
        (an :class:`elsjax.sampler.EpsFn`: :class:`elsjax.nets.NetEpsFn`, or ``Denoiser.eps``).
      params: the net's parameters (any pytree).
      kind: a registered denoiser, e.g. ``"bbels"``, ``"els"``, ``"ls"`` or ``"ideal"`` (for one without a patch size
        every candidate scores the same and the smallest wins).
      train: training images ``[N, H, W, C]`` in [-1, 1] (the reference uses the first 5000).
      ks: the candidate patch sizes, odd integers >= 3 (``k <= H, W`` for ELS); sorted ascending.
      labels: training labels ``[N]``, needed when ``conditional`` (ignored otherwise).
      conditional: the net is class-conditional: seed ``i`` gets class ``i mod num_classes``, the net sees it and
        the machines use that class's images only.
      num_classes: number of classes (default ``max(labels) + 1``).
      n_seeds: number of seeds (10 in the paper's README).
      seed: PRNG seed of the starting noise (:func:`elsjax.seeds.noise`).
      num_steps: n, the steps of the net's trajectory (20 in the paper).
      chunk_size: dictionary entries per streamed chunk (default per machine).
      batch_size: images per net or machine call (default: all states of a class group at once); results do not
        depend on it beyond float rounding.
      progress: an :class:`elsjax.progress.Progress`, called as each phase *ends*: ``NET`` (the net's
        trajectory and noise estimates), then per (class group, k) ``BUILD`` (the dictionary), ``COMPILE``
        (the machine's program) and ``EVALUATE`` (all states scored); ``done`` of ``total`` counts (class group,
        k) pairs. :class:`elsjax.runs.PhaseTimer` turns these calls into a split of the wall time.
      mesh: None (one device) or a mesh from :func:`elsjax.make_mesh`: every machine's dictionary is split over
        ``"entries"`` and its batch of states over ``"seeds"`` (padded to a multiple of it); the net runs on one
        device. With several processes ``train`` and ``labels`` are this process's share of the training set.
      cache: an :class:`elsjax.dictcache.DictionaryCache` the dictionaries are taken from and kept in (None: built).
      programs: the :class:`elsjax.programs.Programs` that keeps compiled machine programs (None: a new one for this
        call; denoisers of one shape share a program).
      knobs: the denoiser's own keyword arguments (:attr:`elsjax.denoisers.Denoiser.knobs`), the same for every k.

    Returns:
      A :class:`Calibration`.

    Raises:
      ValueError: naming the argument: unknown kind, bad candidates, training images out of range or not NHWC,
        missing or inconsistent labels, a class without training images, a non-positive count.
    """
    train = checks.train_images(train)
    seeds, y = draw(seed, n_seeds, train.shape[1:], labels=labels, conditional=conditional, num_classes=num_classes)
    if conditional and labels is None:
        raise ValueError("labels: a conditional calibration needs the training labels (to restrict each dictionary)")
    return calibrate_seeds(
        eps_fn,
        params,
        seeds,
        kind=kind,
        train=train,
        ks=ks,
        labels=labels,
        y=y,
        num_steps=num_steps,
        chunk_size=chunk_size,
        batch_size=batch_size,
        progress=progress,
        seed=seed,
        mesh=mesh,
        cache=cache,
        programs=programs,
        knobs=knobs,
    )


def calibrate_seeds(
    eps_fn: Callable,
    params,
    seeds,
    *,
    kind: str,
    train,
    ks: Sequence[int],
    labels=None,
    y=None,
    num_steps: int = 20,
    chunk_size: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    seed: int | None = None,
    mesh=None,
    cache=None,
    programs: Programs | None = None,
    knobs: Mapping | None = None,
) -> Calibration:
    """:func:`calibrate` from given starting noise ``seeds [B, H, W, C]`` (x at t = 1) and classes ``y [B]`` or None.

    ``seed`` is only recorded in the result. See :func:`calibrate` for the other arguments.

    Example:
      >>> import numpy as np
      >>> from elsjax import denoisers
      >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
      >>> x1 = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype(np.float32)
      >>> ideal = denoisers.build("ideal", train)
      >>> calibrate_seeds(denoisers.Denoiser.eps, ideal, x1, kind="ls", train=train, ks=[3, 15], num_steps=3).per_seed.tolist()
      [[15, 15, 15], [15, 15, 15]]
    """
    denoiser = denoisers.get(kind)
    train = checks.train_images(train)
    ks = checks.candidates("ks", ks, denoiser, train.shape[1:])
    x1 = checks.images("seeds", seeds, train.shape[1:])
    n = checks.integer("num_steps", num_steps, 1)
    if batch_size is not None:
        batch_size = checks.integer("batch_size", batch_size, 1)
    mesh = sharding.check_mesh(mesh)
    groups = checks.class_groups(x1.shape[0], train, labels, y)
    if y is not None:
        y = np.broadcast_to(np.asarray(y, np.int32), (x1.shape[0],)).copy()  # validated by checks.class_groups
        sampler.check_net_labels(y, x1.shape[0], sampler.net_classes(eps_fn, params))  # and within the net's classes
    report = progress or (lambda *args: None)
    n_seeds = x1.shape[0]
    programs = Programs() if programs is None else programs
    # Without a patch size: one machine, the same score for every candidate.
    machine_ks = ks if denoiser.takes_k else ks[:1]
    total = len(groups) * len(machine_ks)

    # 1. The net's own trajectory on the network grid, and its noise estimate at every visited x.
    states, t_states, net = _net_states(eps_fn, params, x1, y, n, batch_size)
    report(Phase.NET, 0, total, 0)

    # 2. Per class group and per k: one dictionary, one batched evaluation over all (step, seed) states of the group.
    cos = np.full((n, n_seeds, len(ks)), np.nan)  # grid-row order: row i is t = (n - i) / n
    done = 0
    # Several classes: dictionaries padded to shared shapes, so that classes share compiled programs (exact).
    shape_bits = patches.SHARED_SHAPE_BITS if len(groups) > 1 else None
    for index, images in groups:
        rows = (np.arange(n)[:, None] * n_seeds + index[None, :]).reshape(-1)
        xs, ts, target = states[rows], t_states[rows], net[rows]
        for col, k in enumerate(machine_ks):
            machine = denoisers.build(
                denoiser, images, int(k) if denoiser.takes_k else None, chunk_size=chunk_size, mesh=mesh,
                cache=cache, shape_bits=shape_bits, **(knobs or {}),
            )  # fmt: skip
            report(Phase.BUILD, done, total, int(k))
            compiled = functools.partial(report, Phase.COMPILE, done, total, int(k))
            eps_k = in_batches(
                _machine_eps, (xs, ts), batch_size, static=machine, on_compiled=compiled, mesh=mesh, programs=programs
            )
            del machine
            gc.collect()  # free this dictionary before the next build (see sampler.sample_machine)
            cos[:, index, col] = cosine(eps_k, target).reshape(n, len(index))
            done += 1
            report(Phase.EVALUATE, done, total, int(k))
    if not denoiser.takes_k:
        cos[:] = cos[:, :, :1]
    cos = cos[::-1].transpose(1, 0, 2)  # [n_seeds, n]: entry j is t = (j + 1) / n

    # 3. The best k per (seed, step) (first maximum; NaN never wins), the lower median and the mode per step.
    best = np.argmax(np.where(np.isnan(cos), -np.inf, cos), axis=-1)
    per_seed = np.asarray(ks, np.int64)[best]
    return Calibration(
        ks=tuple(ks),
        times=[(j + 1) / n for j in range(n)],
        per_seed=per_seed,
        median=[int(k) for k in lower_median(per_seed, axis=0)],
        mode=[int(k) for k in mode(per_seed, axis=0)],
        cosine=cos.astype(np.float32),
        seed=None if seed is None else int(seed),
        y=y,
        kind=denoiser.name,
    )


def _net_states(eps_fn, params, x1, y, n: int, batch_size):
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
