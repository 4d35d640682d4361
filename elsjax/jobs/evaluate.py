"""The evaluation job: how well each machine predicts a trained net's samples from the same seeds (the paper's
Tables 1 and 2; docs/maths.md §8).

For ``n_seeds`` seeds (and, for a class-conditional net, their classes): the net's DDIM samples at each of
``net_steps``, each machine's 19-step sample, and per seed and per (machine, net steps) the Pearson r, r^2, R^2
and MSE over all C*H*W values.

Resumable: every piece of work is saved under ``parts/`` as soon as it is done (the net's samples per step count;
each machine's samples per block of ``seeds_per_part`` seeds), tagged with what it was computed from. Running the
same config again computes only what is missing; a resumed evaluation equals an uninterrupted one (seed ``i``'s
noise does not depend on the blocks). ``machines``, ``net_steps`` and output-only fields may change between runs:
new machines are added, and a machine whose kind or scales changed is recomputed.

A machine's samples depend on its training set, seeds, scales and convention, not on the net: ``parts_from`` names
other evaluations (say, the other rows of a sweep) whose machine parts this one takes instead of computing them,
wherever a part's tag equals the one this run would give it but for the net, and that run's net was trained on the
same images and labels (compared value for value) with the same conditioning. A taken part is saved under this
run's ``parts/``; ``record.json`` names where each came from (``taken_parts``).

Outputs in ``out_dir``: ``summary.json`` (``n_seeds``, ``median_r``/``median_r2``/``median_R2``/``median_mse`` per
machine and net step count, ``frac_beats_ideal``, every per-seed value), ``samples.npz`` (seeds, classes, the net's
and every machine's samples), ``comparison.png`` (seed, net, machines side by side), ``r_violin_netN.png`` (per net step count N),
``config.json``, ``record.json`` (timings: net sampling, builds, machine steps, per machine; ``earlier_runs_s``: the
seconds of the parts that earlier runs computed and this one reused, ``taken`` those of parts from other runs).

``machines`` is a tuple of entries ``{name, denoiser, scales, knobs}`` (:func:`elsjax.fieldtypes.as_machines`);
:func:`machine_specs` checks them (each denoiser registered, its knobs its own) and resolves their scales, and any
knob given as a ``knob_calibration.json`` (``knobs={"tau": "RUN/knob_calibration.json"}``, or on the command line
``p=pca_locality:tau=RUN/knob_calibration.json``) to the value that calibration chose.

Example::

    elsjax evaluate --net experiments/checkpoints/mnist_resnet_zeros_cpu --n-seeds 50 \
        --machines bbels=bbels:MNIST_ResNet_zeros,ls=ls:MNIST_ResNet_zeros,ideal=ideal --out-dir runs/eval_mnist

Scale-out (docs/scale_out.md): ``mesh`` splits the machines' dictionaries and seeds over devices. With several
processes each builds the dictionaries of its share of the training set; process 0 alone reads and writes the run
directory (and the net's samples), and tells the others which machine parts are still to compute.
"""

from __future__ import annotations

import glob
import hashlib
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from elsjax import atomic, denoisers, dictcache, fieldtypes, figures, parts, runs, seeds, sharding
from elsjax import calibrate as calibrate_lib
from elsjax import config as config_lib
from elsjax import evaluate as evaluate_lib
from elsjax import scales as scales_lib
from elsjax.jobs import netdata

__all__ = [
    "run",
    "machine_specs",
    "describe_specs",
    "draw_comparison",
    "redraw_comparison",
    "MachineSpec",
    "resolve_scales",
    "resolve_knobs",
    "RESUMABLE_FIELDS",
]

# Fields that may change when an evaluation is resumed (parts record what they were computed from).
RESUMABLE_FIELDS = frozenset(
    {"machines", "net_steps", "progress", "png_scale", "out_dir", "batch_size", "seeds_per_part", "parts_from"}
    | {"mesh", "coordinator", "num_processes", "process_id"}  # where it runs changes only float32 rounding
)


class MachineSpec(NamedTuple):
    """One machine of an evaluation: its name, denoiser (registered name), scales (None for a denoiser without a
    patch size) and knobs."""

    name: str
    denoiser: str
    scales: tuple[int, ...] | None
    knobs: dict


def resolve_scales(scales, name: str, *, field: str = "machines") -> tuple[int, ...]:
    """Scales from a published name, a tuple of patch sizes, or a ``calibration.json`` (its median); the messages
    name ``field`` (and the machine ``name``)."""
    if isinstance(scales, str) and scales.endswith(".json"):
        path = Path(scales)
        if not path.is_file():
            raise ValueError(f"{field}: {name}: no calibration file {scales!r}")
        saved = runs.read_json(path, name=field)
        median = saved.get("median") if isinstance(saved, dict) else None
        if median is None:
            raise ValueError(f"{field}: {path} has no 'median' (not a calibration.json written by elsjax calibrate)")
        try:
            return tuple(scales_lib.resolve(list(median)))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{field}: {path}: its 'median' is not a list of patch sizes ({err})") from None
    return tuple(scales_lib.resolve(scales))


def resolve_knobs(kind: str, knobs: dict, name: str) -> dict:
    """A machine's knobs, each value given as a ``knob_calibration.json`` (written by ``elsjax calibrate --knob``)
    replaced by the value it chose (its ``best``); the file must have calibrated that knob of that denoiser."""
    out = {}
    for knob, value in knobs.items():
        if isinstance(value, str) and value.endswith(".json"):
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"machines: {name}: knobs: no knob calibration file {value!r}")
            try:
                result = calibrate_lib.KnobCalibration.from_dict(runs.read_json(path, name="machines"))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"machines: {path} is not a knob_calibration.json (written by elsjax calibrate "
                                 "--knob)") from None  # fmt: skip
            if (result.kind, result.knob) != (kind, knob):
                raise ValueError(f"machines: {name}: {path} calibrated {result.kind}'s {result.knob!r}, not "
                                 f"{kind}'s {knob!r}")  # fmt: skip
            value = result.best
        out[knob] = value
    return out


def describe_specs(specs) -> dict:
    """The resolved machines as ``summary.json`` records them: ``{name: {kind, scales, knobs (if any)}}``. A finished
    run whose record differs from its config's specs resolved now was made from other calibrations.

    Example:
      >>> describe_specs(machine_specs("e=els:3,5"))
      {'e': {'kind': 'els', 'scales': [3, 5]}}
    """
    return {
        m.name: {"kind": m.denoiser, "scales": None if m.scales is None else list(m.scales),
                 **({"knobs": m.knobs} if m.knobs else {})}
        for m in specs
    }  # fmt: skip


def machine_specs(machines) -> list[MachineSpec]:
    """The machines of an evaluate config (entries of :func:`elsjax.fieldtypes.as_machines`, or their text): each
    denoiser checked (a registered name), its knobs checked against the denoiser's, its scales resolved.

    Example:
      >>> [tuple(m) for m in machine_specs("e=els:3,5,5,ideal=ideal")]
      [('e', 'els', (3, 5, 5), {}), ('ideal', 'ideal', None, {})]
    """
    specs = []
    for entry in fieldtypes.as_machines("machines", machines):
        name, cls = entry["name"], denoisers.get(entry["denoiser"])
        knobs = config_lib.denoiser_knobs(cls.name, entry["knobs"], field=f"machines: {name}: knobs")
        knobs = resolve_knobs(cls.name, knobs, name)
        if not cls.takes_k:
            specs.append(MachineSpec(name, cls.name, None, knobs))
        elif not entry["scales"]:
            raise ValueError(f"machines: '{name}={cls.name}' needs scales (NAME={cls.name}:SCALES)")
        else:
            specs.append(MachineSpec(name, cls.name, resolve_scales(entry["scales"], name), knobs))
    if not specs:
        raise ValueError("machines: give at least one machine")
    names = [m.name for m in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"machines: names must be unique, got {names}")
    return specs


def check_steps(steps) -> tuple[int, ...]:
    """The net's step counts (``net_steps``): at least one, each positive."""
    steps = fieldtypes.as_ints("net_steps", steps)
    if not steps or min(steps) < 1:
        raise ValueError(f"net_steps: expected comma-separated positive integers, got {','.join(map(str, steps))!r}")
    return steps


def _check(cfg) -> tuple[list[MachineSpec], tuple[int, ...]]:
    """The machines and net step counts of a config, every field checked before any work."""
    for key in ("n_seeds", "png_scale", "seeds_per_part"):
        if cfg[key] < 1:
            raise ValueError(f"{key}: expected a positive integer, got {cfg[key]}")
    for key in ("chunk_size", "batch_size", "limit", "seed"):
        if cfg[key] < 0:
            raise ValueError(f"{key}: expected a non-negative integer, got {cfg[key]}")
    specs, steps = machine_specs(cfg.machines), check_steps(cfg.net_steps)
    netdata.check_given(cfg.net, cfg.net_step)
    return specs, steps


class _Job(NamedTuple):
    """What every stage of one evaluation works from: its config, net and data, seeds, and where its parts go."""

    cfg: Any
    primary: bool  # process 0 reads and writes the run directory
    subject: netdata.NetAndData
    noise: np.ndarray
    y: np.ndarray | None
    train: Any  # this process's share of the training images, and their labels
    labels: Any
    parts: Path
    base_tag: dict  # what every part was computed from
    computed: list  # the parts this run computed
    reused: dict  # the seconds of the parts earlier or other runs computed ({"net", "machine", "taken": s; "untimed"})
    lenders: _Lenders  # other evaluations' machine parts (parts_from)
    taken: dict  # the parts this run took from other evaluations: name -> that evaluation's directory


def _start(cfg, primary: bool, log) -> _Job:
    """Starts (or resumes) the run directory and loads the net, its training set and the seeds."""
    out_dir = Path(cfg.out_dir)
    runs.dictionary_cache_dir()  # a bad $ELSJAX_DICTIONARY_CACHE_DIR is reported before the run starts
    resuming = primary and runs.start_run(
        out_dir, config_lib.as_saved(cfg), resumable=True, resumable_fields=RESUMABLE_FIELDS, kind="evaluation",
        defaults=config_lib.as_saved(config_lib.evaluate_config()),
    ).resuming  # fmt: skip
    subject = netdata.load(cfg.net, step=cfg.net_step, limit=cfg.limit, weights=cfg.net_weights)
    dataset = subject.dataset
    noise = seeds.noise(cfg.seed, cfg.n_seeds, dataset.images.shape[1:])
    y = seeds.classes(cfg.n_seeds, dataset.num_classes) if subject.conditional else None
    train, labels = sharding.local_share(dataset.images, dataset.labels)  # all of them with one process
    base_tag = {"seed": cfg.seed, "n_seeds": cfg.n_seeds, **subject.part_tag(cfg), "convention": cfg.convention}
    if resuming:
        log(f"resuming the evaluation in {out_dir}")
    reused = {"net": 0.0, "machine": 0.0, "taken": 0.0, "untimed": 0}
    lenders = _Lenders(cfg.parts_from, out_dir, subject, base_tag, log=log)
    return _Job(cfg, primary, subject, noise, y, train, labels, out_dir / "parts", base_tag, [], reused, lenders, {})


# The tag keys that name the net and where its training set came from: a machine part of another evaluation is the
# same computation when the rest of its tag is this run's and the training sets themselves are equal.
_NET_KEYS = ("net", "net_step", "net_weights", "limit")


def _training_set_digest(subject: netdata.NetAndData) -> str:
    """What a machine's samples take from the net's side: its training images and labels, their number of classes,
    and whether the seeds are class-conditional."""
    dataset = subject.dataset
    digest = hashlib.sha256(repr((subject.conditional, dataset.num_classes, dataset.images.shape)).encode())
    digest.update(np.ascontiguousarray(dataset.images, np.float32).tobytes())
    digest.update(np.ascontiguousarray(dataset.labels, np.int64).tobytes())
    return digest.hexdigest()


class _Lenders:
    """The machine parts of other evaluations (``parts_from``) that this one may take instead of computing them."""

    def __init__(self, patterns, own_dir: Path, subject: netdata.NetAndData, base_tag: dict, *, log):
        own = Path(own_dir).resolve()
        found = (Path(d) for pattern in patterns for d in sorted(glob.glob(pattern)))
        self.dirs = list(dict.fromkeys(d for d in found if d.resolve() != own and (d / "parts").is_dir()))
        self.log = log
        self._digest = None  # this run's training set, computed when a part is first matched
        self._subject = subject
        # (net, step, weights, limit) of a lender -> same training set; this run's own net needs no comparing
        self._same: dict[tuple, bool] = {tuple(base_tag.get(k) for k in _NET_KEYS): True}

    def _same_training_set(self, saved: dict) -> bool:
        key = tuple(saved.get(k) for k in _NET_KEYS)
        if key not in self._same:
            net, step, weights, limit = key
            try:
                lender = netdata.load(net, step=step, limit=limit or 0, weights=weights or "raw")
            except (OSError, ValueError) as err:  # a lender whose net is gone lends nothing
                self.log(f"elsjax: note: parts made with {net} are not taken ({err})")
                self._same[key] = False
                return False
            self._digest = self._digest or _training_set_digest(self._subject)
            self._same[key] = _training_set_digest(lender) == self._digest
        return self._same[key]

    def take(self, name: str, tag: dict):
        """``(samples, seconds, lender directory)`` of the first lender's part ``name`` computed as ``tag`` describes
        (up to the net), or None."""
        for lender in self.dirs:
            path = lender / "parts" / name
            saved = parts.read_tag(path)
            if saved is None or not parts.same_tag(saved, tag, ignore=_NET_KEYS) or not self._same_training_set(saved):
                continue
            samples, seconds = parts.load(path, saved, key="samples")
            if samples is not None:
                return samples, seconds, lender
        return None


def _reuse(job: _Job, part: str, seconds: float | None) -> None:
    """Counts a part an earlier run computed (parts saved without their seconds are counted apart)."""
    job.reused["untimed"] += seconds is None
    job.reused[part] += seconds or 0.0


def _net_outputs(job: _Job, steps) -> dict:
    """The net's samples at each step count, from saved parts or computed (process 0 only: only the metrics use
    them)."""
    out = {}
    for n in steps:
        path, tag = job.parts / f"net_{n}.npz", {**job.base_tag, "net_steps": n}
        samples, seconds = parts.load(path, tag, key="samples")
        if samples is None:
            start_s = time.perf_counter()
            samples = evaluate_lib.net_samples(job.subject.eps_fn, job.subject.params, job.noise, y=job.y,
                                               num_steps=n, batch_size=job.cfg.batch_size or None)  # fmt: skip
            parts.save(path, np.asarray(samples, np.float32), tag, time.perf_counter() - start_s, key="samples")
            job.computed.append(path.name)
        else:
            _reuse(job, "net", seconds)
        out[n] = samples
    return out


def _machine_outputs(job: _Job, spec: MachineSpec, n_steps: int, *, timer, mesh, cache):
    """One machine's samples of every seed, block by block from saved parts or computed (None off process 0)."""
    cfg, pieces = job.cfg, []
    scales = spec.scales if spec.scales is not None else (3,) * n_steps
    for start in range(0, cfg.n_seeds, cfg.seeds_per_part):
        stop = min(start + cfg.seeds_per_part, cfg.n_seeds)
        path = job.parts / f"machine_{spec.name}_{start:05d}-{stop:05d}.npz"
        tag = {**job.base_tag, "kind": spec.denoiser, "scales": None if spec.scales is None else list(spec.scales),
               "seeds": [start, stop], **({"knobs": spec.knobs} if spec.knobs else {}),
               **({"steps": n_steps} if spec.scales is None else {})}  # fmt: skip  # a k-less machine: its step count
        samples, seconds = parts.load(path, tag, key="samples") if job.primary else (None, None)
        if samples is not None:
            lender = parts.source(path)  # a part an earlier run took from another evaluation
            if lender is not None:
                job.taken[path.name] = lender
            _reuse(job, "machine" if lender is None else "taken", seconds)
        elif job.primary and (taken := job.lenders.take(path.name, tag)) is not None:
            samples, seconds, lender = taken
            parts.save(path, samples, tag, seconds, key="samples", source=str(lender))
            job.taken[path.name] = str(lender)
            _reuse(job, "taken", seconds)
            job.lenders.log(f"{path.name}: taken from {lender} (the same machine and seeds, on the same training set)")
        if not _on_primary(samples is not None):  # every process computes what process 0 lacks
            start_s = time.perf_counter()
            y = None if job.y is None else job.y[start:stop]
            groups = 1 if y is None else len(np.unique(y))  # every class group runs the machine's steps
            bar = runs.StepBar(groups * (len(scales) - 1), enabled=cfg.progress and job.primary,
                               desc=f"{spec.name} seeds {start}-{stop - 1}")  # fmt: skip
            try:
                samples = evaluate_lib.machine_samples(
                    spec.denoiser, job.noise[start:stop], train=job.train, scales=scales, labels=job.labels, y=y,
                    convention=cfg.convention, chunk_size=cfg.chunk_size or None,
                    progress=runs.PhaseTimer.chain(timer, bar), mesh=mesh, cache=cache, knobs=spec.knobs,
                )  # fmt: skip
            finally:
                bar.close()
            if job.primary:
                parts.save(path, np.asarray(samples, np.float32), tag, time.perf_counter() - start_s, key="samples")
            job.computed.append(path.name)
        pieces.append(samples)
    return np.concatenate(pieces) if job.primary else None


def _write_results(job: _Job, specs, net_out: dict, machine_out: dict) -> dict:
    """``summary.json``, ``samples.npz`` and the figures; returns the summary."""
    cfg, out_dir = job.cfg, Path(job.cfg.out_dir)
    # The paper's "(E)LS > IS" column compares with the ideal score machine, whatever name it has here.
    ideal = next((m.name for m in specs if issubclass(denoisers.get(m.denoiser), denoisers.Ideal)), None)
    per_seed = evaluate_lib.agreement(machine_out, net_out)
    summary = evaluate_lib.summarize(per_seed, ideal=ideal)
    summary["machines_spec"] = describe_specs(specs)
    runs.write_json(out_dir / "summary.json", summary)
    atomic.save_npz(
        out_dir / "samples.npz", seeds=job.noise, labels=np.full(cfg.n_seeds, -1, np.int32) if job.y is None else job.y,
        prng_seed=np.int64(cfg.seed), **{f"net_{n}": v for n, v in net_out.items()},
        **{f"machine_{name}": v for name, v in machine_out.items()},
    )  # fmt: skip
    draw_comparison(out_dir, job.noise, net_out, machine_out)
    for n in net_out:
        figures.agreement_violin(
            {name: summary_r(per_seed, name, n) for name in machine_out}, out_dir / f"r_violin_net{n}.png",
            title=f"r(machine, net) over {cfg.n_seeds} seeds; net sampled with {n} DDIM steps",
        )  # fmt: skip
    return summary


def draw_comparison(out_dir, noise, net_out: dict, machine_out: dict) -> Path:
    """``comparison.png``: per seed, its noise, the net's samples and each machine's (nets' out-of-range pixels
    marked, :func:`elsjax.figures.comparison_grid`)."""
    columns = {"seed": noise, **{f"net {n} steps": v for n, v in net_out.items()}, **machine_out}
    return figures.comparison_grid(columns, Path(out_dir) / "comparison.png", unbounded=("seed",))


def redraw_comparison(out_dir) -> Path:
    """Draws a finished evaluation's ``comparison.png`` again from its ``samples.npz`` (as :func:`run` draws it)."""
    with np.load(Path(out_dir) / "samples.npz") as samples:
        net_out = {k.removeprefix("net_"): samples[k] for k in samples.files if k.startswith("net_")}
        machine_out = {k.removeprefix("machine_"): samples[k] for k in samples.files if k.startswith("machine_")}
        return draw_comparison(out_dir, samples["seeds"], net_out, machine_out)


@runs.job
def run(cfg, *, log=print, cache=None) -> dict:
    """Runs (or resumes) one evaluation described by a :func:`elsjax.config.evaluate_config`.

    ``cache`` is the :class:`elsjax.dictcache.DictionaryCache` of the machines' dictionaries (default: a new one, on
    disk in ``$ELSJAX_DICTIONARY_CACHE_DIR`` if set); a sweep row passes its calibration's.

    Returns:
      The record written to ``record.json``.
    """
    clock = runs.Stopwatch()
    cfg = config_lib.merge(config_lib.evaluate_config(), cfg.to_dict())  # typed (lists given as text converted)
    mesh = sharding.setup(**config_lib.scale_out(cfg))  # before JAX starts
    primary = sharding.is_primary()
    specs, steps = _check(cfg)
    job = _start(cfg, primary, log)
    clock.lap("load")
    net_out = _net_outputs(job, steps) if primary else {}
    clock.lap("net")

    # A denoiser without k runs as many steps as the others (the length of their scales).
    n_steps = next((len(m.scales) for m in specs if m.scales is not None), evaluate_lib.DEFAULT_STEPS)
    # Every machine and every block of seeds needs the same dictionaries (per class and k): each is built once.
    cache = dictcache.DictionaryCache(directory=runs.dictionary_cache_dir()) if cache is None else cache
    machine_out, machine_seconds, timer = {}, {}, runs.PhaseTimer()
    for spec in specs:
        machine_out[spec.name] = _machine_outputs(job, spec, n_steps, timer=timer, mesh=mesh, cache=cache)
        machine_seconds[spec.name] = round(clock.lap(f"machine_{spec.name}"), 3)
    if not primary:
        return {"command": "elsjax evaluate", "computed_parts": job.computed, "timings": clock.laps()}

    summary = _write_results(job, specs, net_out, machine_out)
    clock.lap("metrics")
    untimed = job.reused.pop("untimed")
    timings = {**clock.laps(), "machine_s": machine_seconds, "builds_s": round(timer.seconds.get("built", 0.0), 3),
               "machine_steps_s": round(timer.seconds.get("sample", 0.0), 3),
               "earlier_runs_s": {k: round(v, 3) for k, v in job.reused.items()}, "earlier_runs_untimed_parts": untimed}  # fmt: skip
    record = {
        "command": "elsjax evaluate",
        "computed_parts": job.computed,
        "taken_parts": job.taken,
        "median_r": summary["median_r"],
        "frac_beats_ideal": summary["frac_beats_ideal"],
        "net": job.subject.describe(cfg.net),
        "data": job.subject.dataset.describe(),
        "seeds": seeds.describe(cfg.seed, job.noise.shape),
        "mesh": sharding.describe(mesh),
    }
    return runs.write_record(cfg.out_dir, record, config=cfg, timings=timings)


def _on_primary(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (so that all of them compute the same parts)."""
    return bool(sharding.broadcast(np.array(int(flag), np.int32)))


def summary_r(per_seed, name: str, steps: int) -> np.ndarray:
    """The per-seed r of one machine at one net step count."""
    return np.asarray(per_seed[name][steps]["r"])
