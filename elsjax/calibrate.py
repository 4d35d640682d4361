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

One value of a denoiser's scalar knob (PCA-locality's ``tau``, sCFDM's ``smoothing``) is calibrated the same way
(:func:`calibrate_knob`): each candidate value is scored at the net's states, and the value with the highest mean
cosine over every seed and step is chosen, one number for the whole trajectory, as the knob is one number in its
paper. The net's trajectory and the cosines are :mod:`elsjax.scoring`'s.

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

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from elsjax import checks, denoisers, scoring
from elsjax.programs import Programs
from elsjax.progress import Progress
from elsjax.scoring import cosine, draw, in_batches, lower_median, mode

__all__ = [
    "Calibration",
    "KnobCalibration",
    "calibrate",
    "calibrate_seeds",
    "calibrate_knob",
    "knob_candidates",
    "draw",
    "cosine",
    "lower_median",
    "mode",
    "in_batches",
    "FORMAT",
    "KNOB_FORMAT",
]

FORMAT = "elsjax.calibration/1"  # tag of Calibration.to_dict()'s layout
KNOB_FORMAT = "elsjax.knob_calibration/1"  # tag of KnobCalibration.to_dict()'s layout


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
    parts: scoring.Parts | None = None,
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
      parts: None, or where the finished units (per class group and candidate: its cosines) are kept
        (:class:`elsjax.scoring.Parts`, e.g. :class:`elsjax.parts.Store`): each unit saved there is taken from it,
        each one computed is saved to it at once, so that a killed calibration resumes; the result is the same.

    Returns:
      A :class:`Calibration`.

    Raises:
      ValueError: naming the argument: unknown kind, bad candidates, training images out of range or not NHWC,
        missing or inconsistent labels, a class without training images, a non-positive count.
    """
    train = checks.train_images(train)
    seeds, y = _drawn(seed, n_seeds, train, labels, conditional, num_classes)
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
        parts=parts,
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
    parts: scoring.Parts | None = None,
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
    study = scoring.study(eps_fn, params, seeds, train, labels, y, num_steps, batch_size, mesh)
    n = study.num_steps
    # Without a patch size: one machine, the same score for every candidate.
    machine_ks = ks if denoiser.takes_k else ks[:1]
    every_step = np.arange(n)
    plan = [scoring.Column(col, int(k) if denoiser.takes_k else None, dict(knobs or {}), every_step)
            for col, k in enumerate(machine_ks)]  # fmt: skip
    cos = scoring.cosines(eps_fn, params, denoiser, study, plan, len(ks), chunk_size=chunk_size, progress=progress,
                          cache=cache, programs=programs, parts=parts)  # fmt: skip
    if not denoiser.takes_k:
        cos[:] = cos[:, :, :1]

    # The best k per (seed, step) (first maximum; NaN never wins), the lower median and the mode per step.
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
        y=study.y,
        kind=denoiser.name,
    )


def _drawn(seed, n_seeds, train, labels, conditional, num_classes):
    """The starting noise and classes of a calibration (:func:`elsjax.scoring.draw`), the labels checked present."""
    seeds, y = draw(seed, n_seeds, train.shape[1:], labels=labels, conditional=conditional, num_classes=num_classes)
    if conditional and labels is None:
        raise ValueError("labels: a conditional calibration needs the training labels (to restrict each dictionary)")
    return seeds, y


# ----------------------------------------------------------------------------------------------------------------
# One value of a knob.


class KnobCalibration(NamedTuple):
    """The result of a knob calibration. Per-step entries ``j`` belong to ``t = (j + 1) / n`` (n = ``len(times)``).

    Attributes:
      kind: the denoiser calibrated.
      knob: the knob chosen (one of the denoiser's :attr:`~elsjax.denoisers.Denoiser.knobs`).
      candidates: its candidate values, ascending.
      best: the candidate with the highest mean cosine over every seed and step (the first on ties): the value.
      mean_cosine: per candidate, the mean cosine over every seed and step (NaN values left out).
      per_step: per step, the candidate with the highest mean cosine over the seeds (for information).
      cosine: float32 ``[n_seeds, n, len(candidates)]``, the cosine similarity of each candidate with the net.
      times: ``t`` of each entry, ``[(j + 1) / n for j in range(n)]``.
      scales: the patch size of each step (None for a denoiser without one).
      knobs: the denoiser's other knobs, the same for every candidate.
      seed: the PRNG seed of the starting noise (None when the seeds were given).
      y: int32 ``[n_seeds]`` class of each seed, or None (unconditional).
    """

    kind: str
    knob: str
    candidates: tuple
    best: float
    mean_cosine: list[float]
    per_step: list
    cosine: np.ndarray
    times: list[float]
    scales: tuple[int, ...] | None
    knobs: dict
    seed: int | None
    y: np.ndarray | None

    def to_dict(self) -> dict:
        """A JSON-ready dict holding every field; :meth:`from_dict` inverts it exactly."""
        n = len(self.times)
        return {
            "format": KNOB_FORMAT, "kind": self.kind, "knob": self.knob, "best": self.best,
            "candidates": list(self.candidates), "mean_cosine": [float(c) for c in self.mean_cosine],
            "per_step": list(self.per_step), "num_steps": n, "n_seeds": int(self.cosine.shape[0]),
            "seed": None if self.seed is None else int(self.seed), "layout": f"entry j belongs to t = (j + 1) / {n}",
            "times": [float(t) for t in self.times], "scales": None if self.scales is None else list(self.scales),
            "knobs": dict(self.knobs), "y": None if self.y is None else [int(c) for c in self.y],
            "cosine": np.asarray(self.cosine, np.float32).astype(np.float64).tolist(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> KnobCalibration:
        """Rebuilds a :class:`KnobCalibration` from :meth:`to_dict`'s output (also after a JSON round trip)."""
        if not isinstance(d, dict) or d.get("format") != KNOB_FORMAT:
            found = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"d: expected a dict of format {KNOB_FORMAT!r}, got format {found!r}")
        n, values = len(d["times"]), tuple(d["candidates"])
        return cls(
            kind=d["kind"], knob=d["knob"], candidates=values, best=d["best"], mean_cosine=list(d["mean_cosine"]),
            per_step=list(d["per_step"]), cosine=np.asarray(d["cosine"], np.float32).reshape(-1, n, len(values)),
            times=[float(t) for t in d["times"]], scales=None if d["scales"] is None else tuple(d["scales"]),
            knobs=dict(d["knobs"]), seed=d.get("seed"), y=None if d.get("y") is None else np.asarray(d["y"], np.int32),
        )  # fmt: skip


def knob_candidates(kind, knob: str, values, *, name: str = "candidates") -> tuple:
    """The candidate values of a knob calibration, checked (before any work) and sorted ascending: ``knob`` one of
    the denoiser's knobs, ``values`` distinct finite real numbers (ints stay ints). Whether the denoiser accepts each
    value (e.g. ``tau >= 0``) is its own check, made by :func:`calibrate_knob` before the net runs.

    Example:
      >>> knob_candidates("pca_locality", "tau", [0.05, 0, 0.02])
      (0, 0.02, 0.05)
      >>> knob_candidates("pca_locality", "tau", [])
      Traceback (most recent call last):
      ...
      ValueError: candidates: expected at least one value of the knob 'tau'
    """
    denoiser = denoisers.get(kind)
    if knob not in denoiser.knobs:
        raise ValueError(f"knob: the {denoiser.name!r} denoiser has no knob {knob!r} (its knobs: "
                         f"{', '.join(denoiser.knobs) or 'none'})")  # fmt: skip

    def check(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"{name}: expected finite numbers, got {v!r}")
        return int(v) if isinstance(v, numbers.Integral) else float(v)

    return checks.distinct_sorted(name, values, check, expected="a sequence of numbers",
                                  empty=f"expected at least one value of the knob {knob!r}")  # fmt: skip


def calibrate_knob(
    eps_fn: Callable,
    params,
    *,
    kind: str,
    knob: str,
    candidates: Sequence,
    train,
    k: int | Sequence[int] | None = None,
    knobs: Mapping | None = None,
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
    parts: scoring.Parts | None = None,
) -> KnobCalibration:
    """Calibrates one value of a denoiser's knob against a net: the candidate whose noise estimates have the highest
    mean cosine with the net's over every seed and step of the net's trajectory (docs/maths.md §7.4).

    Args:
      kind, knob, candidates: the denoiser, the knob and its candidate values (:func:`knob_candidates`).
      k: the denoiser's patch size: None for one without (PCA-locality, sCFDM), one k for every step, or one per
        step in the calibration's layout (entry j at t = (j + 1) / n: e.g. a :class:`Calibration`'s median).
      knobs: the denoiser's other knobs, the same for every candidate (e.g. sCFDM's ``samples`` and ``key``).
      The other arguments are :func:`calibrate`'s (a unit of ``parts``: a candidate at one k over a class group).

    Returns:
      A :class:`KnobCalibration`.

    Raises:
      ValueError: as :func:`calibrate`; a knob the denoiser lacks, no candidate, a candidate it refuses (its own
        message, e.g. ``tau: expected a number >= 0``), a k where none is taken or a missing or wrong-length k.

    Example:
      >>> import numpy as np
      >>> from elsjax import denoisers
      >>> train = np.random.default_rng(0).uniform(-1, 1, (12, 6, 6, 1)).astype(np.float32)
      >>> net = denoisers.build("pca_locality", train, tau=0.5)   # a "net" that is PCA-locality with tau = 0.5
      >>> c = calibrate_knob(denoisers.Denoiser.eps, net, kind="pca_locality", knob="tau", candidates=[0, 0.5, 0.9],
      ...                    train=train, n_seeds=2, num_steps=4)
      >>> c.best, c.per_step
      (0.5, [0.5, 0.5, 0.5, 0.5])
    """
    denoiser = denoisers.get(kind)
    values = knob_candidates(denoiser, knob, candidates)
    train = checks.train_images(train)
    n = checks.integer("num_steps", num_steps, 1)
    scales = _knob_scales(denoiser, k, n, train.shape[1:])
    knobs = dict(knobs or {})
    if knob in knobs:
        raise ValueError(f"knobs: {knob!r} is the knob calibrated; give its values as candidates only")
    for v in values:  # the denoiser's own checks of every value, on two images, before the net runs
        denoisers.build(denoiser, train[:2], None if scales is None else scales[0], **knobs, **{knob: v})
    seeds, y = _drawn(seed, n_seeds, train, labels, conditional, num_classes)
    study = scoring.study(eps_fn, params, seeds, train, labels, y, n, batch_size, mesh)
    # Each candidate runs once per distinct k (at the steps that use it); grid row i is entry n - 1 - i.
    by_row = [None] * n if scales is None else scales[::-1]
    plan = [scoring.Column(col, kk, {**knobs, knob: v}, np.flatnonzero([r == kk for r in by_row]))
            for col, v in enumerate(values) for kk in dict.fromkeys(by_row)]  # fmt: skip
    cos = scoring.cosines(eps_fn, params, denoiser, study, plan, len(values), chunk_size=chunk_size,
                          progress=progress, cache=cache, programs=programs, parts=parts)  # fmt: skip
    mean, per_step = _mean_defined(cos, (0, 1)), _mean_defined(cos, 0)  # [candidates], [n, candidates]
    pick = lambda m: values[int(np.argmax(np.where(np.isnan(m), -np.inf, m)))]  # the first maximum
    return KnobCalibration(
        kind=denoiser.name, knob=knob, candidates=values, best=pick(mean), mean_cosine=[float(c) for c in mean],
        per_step=[pick(row) for row in per_step], cosine=cos.astype(np.float32),
        times=[(j + 1) / n for j in range(n)], scales=scales, knobs=knobs, seed=int(seed), y=study.y,
    )  # fmt: skip


def _mean_defined(cos, axis):
    """The mean cosine over ``axis`` of the values that are defined (NaN where none is)."""
    valid = ~np.isnan(cos)
    count = valid.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(valid, cos, 0.0).sum(axis=axis) / count, np.nan)


def _knob_scales(denoiser, k, n: int, image_shape) -> tuple[int, ...] | None:
    """The patch size of each step of a knob calibration (None for a denoiser without one), checked."""
    if not denoiser.takes_k:
        if k is not None:
            raise ValueError(f"k: the {denoiser.name!r} denoiser takes no patch size; pass k=None")
        return None
    if k is None:
        raise ValueError(f"k: the {denoiser.name!r} denoiser needs a patch size (one, or one per step)")
    scales = [k] * n if isinstance(k, numbers.Integral) and not isinstance(k, bool) else list(k)
    if len(scales) != n:
        raise ValueError(f"k: expected one patch size per step ({n}), got {len(scales)}")
    return tuple(int(denoiser.check_k("k", v, image_shape)) for v in scales)
