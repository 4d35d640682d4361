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

Outputs in ``out_dir``: ``summary.json`` (``n_seeds``, ``median_r``/``median_r2``/``median_R2``/``median_mse`` per
machine and net step count, ``frac_beats_ideal``, every per-seed value), ``samples.npz`` (seeds, classes, the net's
and every machine's samples), ``comparison.png`` (seed, net, machines side by side), ``r_violin_netN.png`` (per net step count N),
``config.json``, ``record.json`` (timings: net sampling, builds, machine steps, per machine; ``earlier_runs_s``: the
seconds of the parts that earlier runs computed and this one reused).

Example::

    elsjax evaluate --net experiments/checkpoints/mnist_resnet_zeros_cpu --n-seeds 50 \
        --machines bbels=bbels:MNIST_ResNet_zeros,ls=ls:MNIST_ResNet_zeros,ideal=ideal --out-dir runs/eval_mnist

Scale-out (docs/scale_out.md): ``mesh`` splits the machines' dictionaries and seeds over devices. With several
processes each builds the dictionaries of its share of the training set; process 0 alone reads and writes the run
directory (and the net's samples), and tells the others which machine parts are still to compute.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from elsjax import atomic, denoisers, dictcache, figures, runs, seeds, sharding
from elsjax import config as config_lib
from elsjax import evaluate as evaluate_lib
from elsjax import scales as scales_lib
from elsjax.jobs import netdata

__all__ = ["run", "parse_machines", "MachineSpec", "RESUMABLE_FIELDS"]

# Fields that may change when an evaluation is resumed (parts record what they were computed from).
RESUMABLE_FIELDS = frozenset(
    {"machines", "net_steps", "progress", "png_scale", "out_dir", "batch_size", "seeds_per_part"}
    | {"mesh", "coordinator", "num_processes", "process_id"}  # where it runs changes only float32 rounding
)


class MachineSpec(tuple):
    """``(name, kind, scales)``: one machine of an evaluation; ``scales`` is None for the IS."""

    __slots__ = ()

    def __new__(cls, name: str, kind: str, scales):
        return super().__new__(cls, (name, kind, None if scales is None else tuple(int(k) for k in scales)))

    name = property(lambda self: self[0])
    kind = property(lambda self: self[1])
    scales = property(lambda self: self[2])


def _resolve_scales(text: str, source: str):
    """Scales from a published name, a list (``3,3,5`` or ``3+3+5``), or a ``calibration.json`` (its median)."""
    text = text.strip()
    if text.endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"machines: {source}: no calibration file {text!r}")
        saved = runs.read_json(path, name="machines")
        median = saved.get("median") if isinstance(saved, dict) else None
        if median is None:
            raise ValueError(f"machines: {path} has no 'median' (not a calibration.json written by elsjax calibrate)")
        try:
            return scales_lib.resolve(list(median))
        except (TypeError, ValueError) as err:
            raise ValueError(f"machines: {path}: its 'median' is not a list of patch sizes ({err})") from None
    return scales_lib.resolve(text.replace("+", ","))


_MACHINES_SYNTAX = (
    "NAME=KIND:SCALES entries separated by commas, SCALES a published name, a calibration.json or patch sizes "
    "separated by commas (or '+'), e.g. e=bbels:3,3,5,5,ls=ls:MNIST_ResNet_zeros,ideal=ideal"
)


def _entries(text: str) -> list[str]:
    """The machine entries of ``text``: comma-separated, where a bare integer continues the previous entry's list of
    patch sizes (``e=els:3,5,5,ideal=ideal`` is ``e=els:3+5+5`` and ``ideal=ideal``)."""
    entries = []
    for token in [t.strip() for t in str(text).split(",") if t.strip()]:
        if "=" not in token and token.lstrip("+").replace("+", "").isdigit():
            if not entries or ":" not in entries[-1]:
                raise ValueError(f"machines: {token!r} follows no NAME=KIND:SCALES entry; expected {_MACHINES_SYNTAX}")
            entries[-1] += "+" + token
        else:
            entries.append(token)
    return entries


def parse_machines(text: str) -> list[MachineSpec]:
    """``"bbels=bbels:MNIST_ResNet_zeros,ls=ls:3,3,5,5,ideal=ideal"`` -> machine specs (a list of patch sizes may
    also be joined by ``+``: ``ls=ls:3+3+5+5``).

    Example:
      >>> [tuple(m) for m in parse_machines("e=els:3,5,5,ideal=ideal")]
      [('e', 'els', (3, 5, 5)), ('ideal', 'ideal', None)]
    """
    specs = []
    for entry in _entries(text):
        name, sep, rest = entry.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"machines: expected {_MACHINES_SYNTAX}; got {entry!r}")
        kind, _, scales_text = rest.partition(":")
        kind = denoisers.get(kind.strip()).name
        if not denoisers.get(kind).takes_k:
            specs.append(MachineSpec(name.strip(), kind, None))
            continue
        if not scales_text:
            raise ValueError(f"machines: {entry!r} needs scales (NAME={kind}:SCALES)")
        specs.append(MachineSpec(name.strip(), kind, _resolve_scales(scales_text, entry)))
    if not specs:
        raise ValueError("machines: give at least one machine")
    names = [m.name for m in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"machines: names must be unique, got {names}")
    return specs


def parse_steps(text) -> list[int]:
    try:
        steps = [int(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"net_steps: expected comma-separated positive integers, got {text!r}") from None
    if not steps or min(steps) < 1:
        raise ValueError(f"net_steps: expected comma-separated positive integers, got {text!r}")
    return steps


def _load_part(path: Path, tag: dict):
    """A finished part: ``(samples, seconds)`` (seconds None for a part saved before they were recorded), or
    ``(None, None)`` if missing, computed from something else, or unreadable (truncated or corrupt: then it is
    reported and recomputed)."""
    if not path.is_file():
        return None, None
    try:
        with np.load(path) as f:
            if json.loads(str(f["tag"])) != tag:
                return None, None
            samples = np.asarray(f["samples"], np.float32)
            return samples, (float(f["seconds"]) if "seconds" in f.files else None)
    except Exception as err:  # noqa: BLE001 - any unreadable part is recomputed, whatever broke it
        detail = " ".join(str(err).split())[:200]
        print(f"elsjax: warning: {path} is unreadable (truncated or corrupt: {type(err).__name__}: {detail}); "
              "recomputing it", file=sys.stderr)  # fmt: skip
        return None, None


def _save_part(path: Path, samples, tag: dict, seconds: float) -> None:
    """Saves a part with the seconds it took, so that a resumed evaluation can count the work of earlier runs."""
    atomic.save_npz(path, samples=np.asarray(samples, np.float32), tag=json.dumps(tag, sort_keys=True),
                    seconds=np.float64(seconds))  # fmt: skip  # atomic: a part on disk is always complete


def _check(cfg) -> None:
    for key in ("n_seeds", "png_scale", "seeds_per_part"):
        if cfg[key] < 1:
            raise ValueError(f"{key}: expected a positive integer, got {cfg[key]}")
    for key in ("chunk_size", "batch_size", "limit", "seed"):
        if cfg[key] < 0:
            raise ValueError(f"{key}: expected a non-negative integer, got {cfg[key]}")


@runs.job
def run(cfg, *, log=print, cache=None) -> dict:
    """Runs (or resumes) one evaluation described by a :func:`elsjax.config.evaluate_config`.

    ``cache`` is the :class:`elsjax.dictcache.DictionaryCache` of the machines' dictionaries (default: a new one, on
    disk in ``$ELSJAX_DICTIONARY_CACHE_DIR`` if set); a sweep row passes its calibration's.

    Returns:
      The record written to ``record.json``.
    """
    clock = runs.Stopwatch()
    mesh = sharding.setup(cfg.mesh, cfg.coordinator, cfg.num_processes, cfg.process_id)  # before JAX starts
    primary = sharding.is_primary()  # process 0 reads and writes the run directory
    _check(cfg)
    specs = parse_machines(cfg.machines)
    steps = parse_steps(cfg.net_steps)
    out_dir = Path(cfg.out_dir)
    netdata.check_given(cfg.net, cfg.net_step)
    cache_dir = runs.dictionary_cache_dir()
    resuming = primary and runs.start_run(
        out_dir, cfg, resumable=True, resumable_fields=RESUMABLE_FIELDS, kind="evaluation",
        defaults=config_lib.evaluate_config(),
    ).resuming  # fmt: skip
    subject = netdata.load(cfg.net, step=cfg.net_step, limit=cfg.limit, weights=cfg.net_weights)
    dataset = subject.dataset
    noise = seeds.noise(cfg.seed, cfg.n_seeds, dataset.images.shape[1:])
    y = seeds.classes(cfg.n_seeds, dataset.num_classes) if subject.conditional else None
    train, labels = sharding.local_share(dataset.images, dataset.labels)  # all of them with one process
    parts = out_dir / "parts"
    base_tag = {"seed": cfg.seed, "n_seeds": cfg.n_seeds, "net": str(cfg.net), "net_step": int(subject.meta["step"]),
                "limit": cfg.limit, "convention": cfg.convention}  # fmt: skip
    if cfg.net_weights != "raw":  # (parts saved before the field existed are the raw weights')
        base_tag["net_weights"] = cfg.net_weights
    clock.lap("load")
    if resuming:
        log(f"resuming the evaluation in {out_dir}")

    computed = []
    # The seconds of the parts that earlier runs computed (this run reuses them): the work a resumed evaluation
    # did not redo, so that its record can give the whole evaluation's time; parts saved without seconds are counted.
    earlier, untimed = {"net": 0.0, "machine": 0.0}, 0

    def reused(part: str, seconds: float | None) -> None:
        nonlocal untimed
        untimed += seconds is None
        earlier[part] += seconds or 0.0

    net_out = {}
    for n in steps if primary else ():  # the net's samples are only needed by the metrics, on process 0
        path, tag = parts / f"net_{n}.npz", {**base_tag, "net_steps": n}
        samples, seconds = _load_part(path, tag)
        if samples is None:
            start_s = time.perf_counter()
            samples = evaluate_lib.net_samples(
                subject.eps_fn, subject.params, noise, y=y, num_steps=n, batch_size=cfg.batch_size or None
            )
            _save_part(path, samples, tag, time.perf_counter() - start_s)
            computed.append(path.name)
        else:
            reused("net", seconds)
        net_out[n] = samples
    clock.lap("net")

    # The IS has no k; it runs as many steps as the other machines (the length of their scales; 20 if none).
    ideal_steps = next((len(m.scales) for m in specs if m.scales is not None), 20)
    machine_out, machine_seconds = {}, {}
    timer = runs.PhaseTimer()
    block = cfg.seeds_per_part
    # Every machine and every block of seeds needs the same dictionaries (per class and k): each is built once.
    if cache is None:
        cache = dictcache.DictionaryCache(directory=cache_dir)
    for spec in specs:
        pieces = []
        for start in range(0, cfg.n_seeds, block):
            stop = min(start + block, cfg.n_seeds)
            path = parts / f"machine_{spec.name}_{start:05d}-{stop:05d}.npz"
            tag = {**base_tag, "kind": spec.kind, "scales": None if spec.scales is None else list(spec.scales),
                   "seeds": [start, stop]}  # fmt: skip
            samples, seconds = _load_part(path, tag) if primary else (None, None)
            if samples is not None:
                reused("machine", seconds)
            if not _on_primary(samples is not None):  # every process computes what process 0 lacks
                start_s = time.perf_counter()
                # Every class group of the block runs the machine's steps (19 on the paper's grid).
                groups = 1 if y is None else len(np.unique(y[start:stop]))
                n_scales = ideal_steps if spec.scales is None else len(spec.scales)
                bar = runs.StepBar(
                    groups * (n_scales - 1), enabled=cfg.progress and primary,
                    desc=f"{spec.name} seeds {start}-{stop - 1}",
                )  # fmt: skip
                try:
                    samples = evaluate_lib.machine_samples(
                        spec.kind, noise[start:stop], train=train,
                        scales=spec.scales if spec.scales is not None else [3] * ideal_steps,
                        labels=labels, y=None if y is None else y[start:stop], convention=cfg.convention,
                        chunk_size=cfg.chunk_size or None, progress=runs.PhaseTimer.chain(timer, bar), mesh=mesh,
                        cache=cache,
                    )  # fmt: skip
                finally:
                    bar.close()
                if primary:
                    _save_part(path, samples, tag, time.perf_counter() - start_s)
                computed.append(path.name)
            pieces.append(samples)
        machine_out[spec.name] = np.concatenate(pieces) if primary else None
        machine_seconds[spec.name] = round(clock.lap(f"machine_{spec.name}"), 3)
    if not primary:
        return {"command": "elsjax evaluate", "computed_parts": computed, "timings": clock.laps()}

    # The paper's "(E)LS > IS" column compares with the ideal score machine, whatever name it has here.
    ideal = next((m.name for m in specs if issubclass(denoisers.get(m.kind), denoisers.Ideal)), None)
    per_seed = evaluate_lib.agreement(machine_out, net_out)
    summary = evaluate_lib.summarize(per_seed, ideal=ideal)
    summary["machines_spec"] = {
        m.name: {"kind": m.kind, "scales": None if m.scales is None else list(m.scales)} for m in specs
    }
    runs.write_json(out_dir / "summary.json", summary)
    atomic.save_npz(
        out_dir / "samples.npz", seeds=noise, labels=np.full(cfg.n_seeds, -1, np.int32) if y is None else y,
        prng_seed=np.int64(cfg.seed), **{f"net_{n}": v for n, v in net_out.items()},
        **{f"machine_{name}": v for name, v in machine_out.items()},
    )  # fmt: skip
    columns = {"seed": noise, **{f"net {n} steps": v for n, v in net_out.items()}, **machine_out}
    figures.comparison_grid(columns, out_dir / "comparison.png")
    for n in steps:
        figures.agreement_violin(
            {name: summary_r(per_seed, name, n) for name in machine_out}, out_dir / f"r_violin_net{n}.png",
            title=f"r(machine, net) over {cfg.n_seeds} seeds; net sampled with {n} DDIM steps",
        )  # fmt: skip
    clock.lap("metrics")
    timings = {**clock.laps(), "machine_s": machine_seconds, "builds_s": round(timer.seconds.get("built", 0.0), 3),
               "machine_steps_s": round(timer.seconds.get("sample", 0.0), 3),
               "earlier_runs_s": {k: round(v, 3) for k, v in earlier.items()}, "earlier_runs_untimed_parts": untimed}  # fmt: skip
    record = {
        "command": "elsjax evaluate",
        "computed_parts": computed,
        "median_r": summary["median_r"],
        "frac_beats_ideal": summary["frac_beats_ideal"],
        "net": subject.describe(cfg.net),
        "data": dataset.describe(),
        "seeds": seeds.describe(cfg.seed, noise.shape),
        "mesh": sharding.describe(mesh),
    }
    return runs.write_record(out_dir, record, config=cfg, timings=timings)


def _on_primary(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (so that all of them compute the same parts)."""
    return bool(sharding.broadcast(np.array(int(flag), np.int32)))


def summary_r(per_seed, name: str, steps: int) -> np.ndarray:
    """The per-seed r of one machine at one net step count."""
    return np.asarray(per_seed[name][steps]["r"])
