"""The calibration job: the patch size k per step that makes a machine best match a trained net.

Outputs in ``out_dir``: ``calibration.json`` (:meth:`elsjax.calibrate.Calibration.to_dict`: the candidates, the t of
each entry, the per-seed choices, the lower median and the mode, the cosine table; plus the published scales it
is drawn beside), ``calibration.png`` (k per step: per-seed choices as points, the median as a line, the published
scales dashed), ``config.json``, ``record.json`` (the net, the data, timings split into net trajectory, builds and
evaluations).

With ``knob`` set (e.g. ``--kind pca_locality --knob tau --knob-values 0,0.01,0.02,0.05``) it calibrates one value
of that knob instead (:func:`elsjax.calibrate.calibrate_knob`, docs/maths.md §7.4) and writes ``knob_calibration.json``
(:meth:`elsjax.calibrate.KnobCalibration.to_dict`: the value chosen, each candidate's mean cosine, the per-step
choices, the cosine table), ``config.json`` and ``record.json``; an evaluation takes the value from that file
(``knobs={"tau": "RUN/knob_calibration.json"}``). A denoiser with a patch size is scored at the fixed k per step of
``knob_scales``.

Resumable (:mod:`elsjax.parts`): each unit of work (a candidate over a class group: its cosines at every seed and
step) is saved under ``parts/`` as soon as it is done, tagged with what it was computed from (the net, its step and
weights, the seeds, the training images, the candidate, its k and knobs, the steps). Running the same command again
after a kill (Ctrl-C and SIGTERM exit with ``interrupted``, the finished parts kept) computes only the missing units,
and skips the net when none is; the result is the one an uninterrupted run writes. A part computed from anything else
(another config written over the run with ``overwrite``) is recomputed, with a one-line note. ``record.json`` lists
``computed_parts`` and, in its timings, ``earlier_runs_s`` (the seconds of the parts earlier runs computed).

Example::

    elsjax calibrate --net experiments/checkpoints/mnist_resnet_zeros_cpu --kind bbels --ks 3,5,7,9,11,13,15,17 \
        --published MNIST_ResNet_zeros --out-dir runs/cal_mnist

Scale-out (docs/scale_out.md): ``mesh`` splits the machines' dictionaries and states over devices; with several
processes each builds the dictionaries of its share of the training set, and process 0 writes the outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from elsjax import calibrate as calibrate_lib
from elsjax import checks, denoisers, dictcache, figures, interrupts, parts, runs, sharding
from elsjax import config as config_lib
from elsjax import scales as scales_lib
from elsjax.jobs import evaluate as evaluate_job
from elsjax.jobs import netdata

__all__ = ["run", "OUTPUT_FILES", "KNOB_FILE"]

OUTPUT_FILES = ("calibration.json", "calibration.png", "config.json", "record.json")
KNOB_FILE = "knob_calibration.json"  # what a knob calibration writes instead of calibration.json and its figure


def _data_label(subject) -> str:
    n = len(subject.dataset.images)
    if subject.conditional:
        return f"{subject.dataset.name}, N={n}, class-conditional: about {n // subject.dataset.num_classes} per class"
    return f"{subject.dataset.name}, N={n}"


def _published_name(published) -> str:
    """The published scales as the config names them: a name, or the list of patch sizes."""
    return published if isinstance(published, str) else ",".join(str(k) for k in published)


@runs.job
def run(cfg, *, cache=None) -> dict:
    """Runs one calibration described by a :func:`elsjax.config.calibrate_config`: of k per step, or, with ``knob``
    set, of one value of that knob.

    Returns:
      The record written to ``record.json``.
    """
    clock = runs.Stopwatch()
    cfg = config_lib.merge(config_lib.calibrate_config(), cfg.to_dict())  # typed (lists given as text converted)
    mesh = sharding.setup(**config_lib.scale_out(cfg))  # before JAX starts
    primary = sharding.is_primary()  # process 0 writes the outputs
    out_dir = Path(cfg.out_dir)
    denoiser = denoisers.get(cfg.kind)
    knobs = config_lib.denoiser_knobs(cfg.kind, cfg.knobs)
    if cfg.knob:  # the candidates and the fixed k per step, checked before the net and the data
        calibrate_lib.knob_candidates(denoiser, cfg.knob, cfg.knob_values, name="knob_values")
        scales = (
            evaluate_job.resolve_scales(cfg.knob_scales, "scales", field="knob_scales") if cfg.knob_scales else None
        )
    else:
        checks.candidates("ks", list(cfg.ks), denoiser, (10**9, 10**9))  # odd, >= 3, distinct; the data comes later
    published = scales_lib.resolve(cfg.published) if cfg.published else None
    for key, minimum in (("n_seeds", 1), ("num_steps", 1), ("seed", 0)):
        checks.integer(key, cfg[key], minimum)
    netdata.check_given(cfg.net, cfg.net_step)
    cache_dir = runs.dictionary_cache_dir()
    if primary:  # before the net, the data and the calibration: writable, locked, config.json written
        runs.start_run(out_dir, config_lib.as_saved(cfg), overwrite=cfg.overwrite,
                       defaults=config_lib.as_saved(config_lib.calibrate_config()))  # fmt: skip
    subject = netdata.load(cfg.net, step=cfg.net_step, limit=cfg.limit, weights=cfg.net_weights)
    clock.lap("load")

    bar = runs.CountBar(f"calibrating {cfg.kind}" + (f" {cfg.knob}" if cfg.knob else ""),
                        enabled=cfg.progress and primary)  # fmt: skip
    timer = runs.PhaseTimer(then=bar)
    train, labels = sharding.local_share(subject.dataset.images, subject.dataset.labels)
    # The classes of the seeds come from the whole training set's labels, whatever this process's share holds.
    num_classes = int(subject.dataset.labels.max()) + 1 if subject.conditional else None
    guard = interrupts.SignalGuard()  # SIGTERM (sent by schedulers before a kill) acts as Ctrl-C
    store = parts.Store(out_dir / "parts", {"seed": cfg.seed, **subject.part_tag(cfg)}, primary=primary, guard=guard)
    common = dict(
        kind=denoiser, train=train, labels=labels, conditional=subject.conditional, num_classes=num_classes,
        n_seeds=cfg.n_seeds, seed=cfg.seed, num_steps=cfg.num_steps, chunk_size=cfg.chunk_size or None,
        batch_size=cfg.batch_size or None, progress=timer, mesh=mesh, knobs=knobs, parts=store,
    )  # fmt: skip
    guard.install()
    try:
        if cache is None:
            cache = dictcache.DictionaryCache(directory=cache_dir)
        if cfg.knob:
            result = calibrate_lib.calibrate_knob(subject.eps_fn, subject.params, knob=cfg.knob,
                                                  candidates=cfg.knob_values, k=scales, cache=cache, **common)  # fmt: skip
        else:
            result = calibrate_lib.calibrate(subject.eps_fn, subject.params, ks=list(cfg.ks), cache=cache, **common)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the guard
        if store.computed and primary:
            print(f"interrupted: {len(store.computed)} finished part(s) saved in {store.directory}; run the same "
                  "command to resume", file=sys.stderr)  # fmt: skip
        raise
    finally:
        bar.close()
        guard.restore()
    if store.reused and primary:
        print(f"elsjax: note: resumed the calibration in {out_dir}: {len(store.reused)} of "
              f"{len(store.reused) + len(store.computed)} parts from earlier runs", file=sys.stderr)  # fmt: skip
    clock.lap("calibrate")
    chosen = {"best": result.best} if cfg.knob else {"median": result.median, "mode": result.mode}
    if not primary:
        return {"command": "elsjax calibrate", **chosen}
    if cfg.knob:
        runs.write_json(out_dir / KNOB_FILE, result.to_dict())
    else:
        runs.write_json(out_dir / "calibration.json",
                        {**result.to_dict(), "published": published, "published_name": _published_name(cfg.published)})  # fmt: skip
        figures.calibration_plot(
            result, out_dir / "calibration.png", published=published,
            title=f"{cfg.kind} calibrated to {subject.meta['spec']['arch']} ({_data_label(subject)})",
        )  # fmt: skip
    record = {
        "command": "elsjax calibrate",
        **chosen,
        "computed_parts": store.computed,
        **({"knob": cfg.knob} if cfg.knob else {"published": published}),
        "net": subject.describe(cfg.net),
        "data": subject.dataset.describe(),
        "mesh": sharding.describe(mesh),
    }
    earlier = {"earlier_runs_s": round(store.reused_s, 3), "earlier_runs_untimed_parts": store.untimed}
    return runs.write_record(
        out_dir, record, config=cfg, timings={**clock.laps(), **timer.laps("calibrate_"), **earlier}
    )
