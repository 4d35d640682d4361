"""Sweeps: rows of the paper's Tables 1 and 2, each trained, calibrated and evaluated, resumably, then tabulated.

A sweep file is a config file whose ``get_config()`` returns :func:`sweep_config` with ``rows`` filled in, one
mapping per row (:data:`ROW_DEFAULTS` lists the fields). A row runs, each stage in its own run directory under
``OUT_DIR/ROW/``:

1. ``train/``: the net, with the row's train config file and overrides (skipped when the row names an existing
   ``net``; an interrupted training resumes from its newest checkpoint);
2. ``calibrate_KIND/`` and ``calibrate_ls/``: the (E)LS machine (bbELS for zero-padded nets, ELS for circular ones)
   and the LS calibrated to the net (docs/maths.md §7);
3. ``evaluate/``: the net's samples at each step count and, from the same seeds, the calibrated (E)LS and LS, the
   same machines with the row's published scales, and the IS; the medians and per-seed values (docs/maths.md §8).
   A machine part that another row of the sweep (or a row's ``parts_from``) already computed on the same training
   set and seeds is taken from there (:mod:`elsjax.jobs.evaluate`): rows that differ only in the net or in one
   calibration compute only what differs.

A stage whose run directory holds a finished run (``record.json``) of the same config is skipped (a changed
calibration config reruns the calibration); the calibrations and the evaluation save their work in parts and resume
from them (a calibration keeps only the parts computed from its current config). So
killing a sweep and running it again completes only the missing work, and gives the same table. After every row
the tables are rewritten: ``table.md`` (the layout of the paper's tables, the paper's number beside each measured
one, the machine, the net's training budget and the wall time per row), ``table.json`` and ``agreement.png`` (each
machine's median r per row beside the paper's; a curve against the net's training steps when the rows are one
configuration at several checkpoints).

Example::

    elsjax sweep --config experiments/sweeps/cpu_scale.py                   # every row
    elsjax sweep --config experiments/sweeps/cpu_scale.py --only fmnist_resnet_zeros_conditional
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Callable
from pathlib import Path

import ml_collections

from elsjax import atomic, dictcache, fieldtypes, paper, runs
from elsjax import config as config_lib
from elsjax import scales as scales_lib
from elsjax.config import Field

__all__ = ["sweep_config", "SWEEP_FIELDS", "ROW_DEFAULTS", "run", "run_row", "stage_configs", "validate_row", "table",
           "check_training_set", "STAGES"]  # fmt: skip

STAGES = ("train", "calibrate", "evaluate")

# Every field a row may set; a row is this mapping updated with the row's own values.
ROW_DEFAULTS = {
    "name": "",
    "train_config": "",  # a train config file (experiments/configs/...), used when `net` is empty
    "train_overrides": {},  # fields of that config to change (e.g. num_steps)
    "net": "",  # an existing net (checkpoint or run directory): no training
    "net_step": 0,  # which of its checkpoints (0: the newest), e.g. for agreement against training budget
    "net_weights": "raw",  # the net's raw weights (the paper's) or "ema", their moving average (ema_decay > 0)
    "kind": "",  # the (E)LS machine: "" = bbels for zero padding, els for circular
    "knobs": {},  # the (E)LS machine's own knobs (its denoiser's keyword arguments), calibrated and evaluated with them
    "ks": tuple(range(3, 18, 2)),  # (E)LS calibration candidates
    "ls_ks": tuple(range(3, 18, 2)),  # LS calibration candidates
    "published": "",  # the published scales of the matching paper net (a name or a list), evaluated beside
    "calibrate_seeds": 10,
    "calibrate_steps": 20,
    "evaluate_seeds": 50,
    "net_steps": (20, 150),
    "seed": 0,  # of the calibration's seeds; the evaluation uses seed + 1 (other noise than the calibration's)
    "evaluate_seed": -1,  # the evaluation's seed when other than seed + 1 (rows that share evaluation seeds)
    "convention": "reference",  # how the evaluation indexes scales: reference (the authors') or corrected
    "seeds_per_part": 10,
    # Other evaluations whose machine parts the row's evaluation may take (run directories or shell patterns), besides
    # the sweep's own rows: the same machine and seeds on the same training set is the same computation.
    "parts_from": (),
    "limit": 0,  # the machines' training set: 0 = the net's own
    "calibrate_limit": 0,  # the calibration's training set, if other than `limit` (the paper's: the first 5,000)
    # The number of images the net must be trained on (0: any). A row whose training set (its net's, or what its train
    # config would load) holds another number is refused before any work, e.g. at the paper's scale a row that would
    # train on the 10,000 offline MNIST digits instead of the paper's 60,000 (experiments/sweeps/paper_scale.py).
    "train_images": 0,
}


# A row's typed fields: how their values (text in older sweep files, e.g. ks="3,5,7") become tuples and dicts.
_ROW_TYPES = {"ks": fieldtypes.as_ints, "ls_ks": fieldtypes.as_ints, "net_steps": fieldtypes.as_ints,
              "published": fieldtypes.as_scales, "knobs": fieldtypes.as_knobs,
              "parts_from": fieldtypes.as_paths}  # fmt: skip

SWEEP_FIELDS = {
    "out_dir": Field("runs/sweep", "where the rows' run directories and table.md go"),
    "only": Field("", "run only these rows (comma-separated names)"),
    "progress": Field(True, "show progress bars"),
    "rows": Field([], "the rows: mappings of ROW_DEFAULTS' fields (given by the sweep file)"),
}


def sweep_config() -> ml_collections.ConfigDict:
    """The schema of a sweep file: where it writes, which rows to run, and the rows."""
    return config_lib.schema(SWEEP_FIELDS)


def _rows(cfg) -> list[dict]:
    rows = []
    for raw in cfg.rows:
        raw = dict(raw.to_dict() if hasattr(raw, "to_dict") else raw)
        unknown = set(raw) - set(ROW_DEFAULTS)
        if unknown:
            raise ValueError(
                f"rows: unknown field(s) {sorted(unknown)} in row {raw.get('name', '?')!r}; known: {sorted(ROW_DEFAULTS)}"
            )
        row = {**ROW_DEFAULTS, **raw}
        row.update({key: typed(f"rows: row {row['name']!r}: {key}", row[key]) for key, typed in _ROW_TYPES.items()})
        if not row["name"]:
            raise ValueError("rows: every row needs a name")
        if not row["net"] and not row["train_config"]:
            raise ValueError(f"rows: row {row['name']!r} needs a net or a train_config")
        if row["net_weights"] not in ("raw", "ema"):
            raise ValueError(f"rows: row {row['name']!r}: net_weights must be raw or ema, got {row['net_weights']!r}")
        rows.append(row)
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"rows: names must be unique, got {names}")
    if cfg.only:
        wanted = [n.strip() for n in cfg.only.split(",") if n.strip()]
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise ValueError(f"only: no row(s) {missing}; rows: {names}")
        rows = [r for r in rows if r["name"] in wanted]
    return rows


def _train_cfg(row: dict):
    cfg = config_lib.merge(config_lib.train_config(), config_lib.load_file(row["train_config"]).to_dict())
    overrides = row["train_overrides"]
    overrides = overrides.to_dict() if hasattr(overrides, "to_dict") else overrides
    if not isinstance(overrides, dict):
        raise ValueError(f"train_overrides: expected a mapping of train config fields, got {overrides!r}")
    return config_lib.merge(cfg, overrides)


def _net_dir(row: dict, out_dir: Path) -> str:
    """The row's net: the one it names, or ``OUT_DIR/ROW/train`` (trained by the sweep)."""
    return row["net"] or str(Path(out_dir) / row["name"] / "train")


def validate_row(row: dict, out_dir) -> None:
    """Checks every value of a row before any row runs: names and numbers, the candidates, the published scales,
    the net (a checkpoint there, or a train config that can make one) and its data (on this machine).

    Raises:
      ValueError: ``rows: row 'NAME': FIELD: what is wrong``.
    """
    from elsjax import checkpoint, checks, data, denoisers
    from elsjax.jobs import evaluate as evaluate_job
    from elsjax.jobs import train as train_job

    def check():
        if row["kind"]:
            config_lib.denoiser_knobs(row["kind"], row["knobs"])
        for key in ("ks", "ls_ks"):
            checks.candidates(key, row[key], denoisers.get("bbels"), (10**9, 10**9))
        if row["published"]:
            try:
                scales_lib.resolve(row["published"])
            except ValueError as err:
                raise ValueError(f"published: {err}") from None
        evaluate_job.check_steps(row["net_steps"])
        for key, minimum in (("calibrate_seeds", 1), ("calibrate_steps", 1), ("evaluate_seeds", 1),
                             ("seeds_per_part", 1), ("net_step", 0), ("seed", 0), ("limit", 0),
                             ("calibrate_limit", 0)):  # fmt: skip
            checks.integer(key, row[key], minimum)
        net = _net_dir(row, out_dir)
        if Path(net).exists() and checkpoint.latest_step(net) is not None:
            if row["net_step"] and row["net_step"] not in checkpoint.steps(net):
                raise ValueError(f"net_step: {net} has no step {row['net_step']} (steps: {checkpoint.steps(net)})")
            net_cfg = checkpoint.read_meta(net, row["net_step"] or None).get("config")
            if not net_cfg or "dataset" not in net_cfg:
                raise ValueError(f"net: the checkpoint in {net} records no training config (its data is unknown)")
            net_cfg = config_lib.merge(config_lib.train_config(), net_cfg)
        elif not row["train_config"]:
            raise ValueError(f"net: no checkpoint in {net} and no train_config to train one")
        else:
            net_cfg = _train_cfg(row)
            train_job.check(net_cfg)
        try:
            data.locate(net_cfg.dataset, **config_lib.data_options(net_cfg))
        except data.SourceUnavailable as err:
            raise ValueError(f"data: {err}") from None

    try:
        check()
    except ValueError as err:
        raise ValueError(f"rows: row {row['name']!r}: {err}") from None


def check_training_set(row: dict, out_dir) -> None:
    """Refuses a row whose net's training set does not hold ``row["train_images"]`` images (0: no requirement).

    The training set is the one recorded in the row's net (its ``net``, or the net the sweep trained in
    ``OUT_DIR/ROW/train``) when it has a checkpoint, else the one its train config would load (read now, before any
    training).

    Raises:
      ValueError: one line naming the row, the images it would use, where they come from, and the expected number.
    """
    from elsjax import checkpoint, data

    expected = int(row["train_images"])
    if not expected:
        return
    net = Path(row["net"] or Path(out_dir) / row["name"] / "train")
    if net.exists() and checkpoint.latest_step(net) is not None:
        meta = checkpoint.read_meta(net, row["net_step"] or None)
        record, cfg = meta.get("data") or {}, meta.get("config") or {}
        what, n = f"its net {net} was trained on", record.get("num_images")
        dataset, source, note = cfg.get("dataset", "?"), record.get("source", "?"), record.get("note", "")
    else:
        cfg = _train_cfg(row)
        found = data.load(cfg.dataset, **config_lib.data_options(cfg))
        what, n, dataset, source, note = "it would train on", len(found.images), found.name, found.source, found.note
    if n != expected:
        count = "an unknown number of" if n is None else f"{n:,}"
        held = f": {note}" if note else ""
        raise ValueError(
            f"rows: row {row['name']!r}: {what} {count} {dataset} images ({source}{held}), not the {expected:,} the "
            "row requires (train_images); give the complete training set (a prepared tfds copy, or data_dir in "
            "train_overrides) before running it"
        )


def _key(row: dict, net_cfg: dict, spec: dict):
    """(dataset, arch, padding, conditional): the row of the paper's tables."""
    from elsjax import data

    dataset = data.canonical_name(net_cfg["dataset"])
    return dataset, spec["arch"], spec.get("padding", "zeros"), int(spec.get("num_classes", 0)) > 0


def stage_configs(row: dict, out_dir, kind: str, *, progress: bool = True) -> dict:
    """The configs of a row's calibrations and evaluation, by stage (``calibrate_KIND``, ``calibrate_ls``,
    ``evaluate``), for its (E)LS machine ``kind``: what :func:`run_row` runs, and what a finished stage directory
    must hold to be reused."""
    net, row_dir = _net_dir(row, out_dir), Path(out_dir) / row["name"]
    out, machines = {}, []
    for machine, ks, knobs in ((kind, row["ks"], row["knobs"]), ("ls", row["ls_ks"], {})):
        cal_dir = row_dir / f"calibrate_{machine}"
        out[cal_dir.name] = config_lib.merge(config_lib.calibrate_config(), dict(
            net=net, net_step=row["net_step"], net_weights=row["net_weights"], kind=machine, knobs=knobs, ks=ks,
            limit=row["calibrate_limit"] or row["limit"], n_seeds=row["calibrate_seeds"], seed=row["seed"],
            num_steps=row["calibrate_steps"], published=row["published"], out_dir=str(cal_dir), overwrite=True,
            progress=progress))  # fmt: skip
        machines.append(dict(name=machine, denoiser=machine, scales=str(cal_dir / "calibration.json"), knobs=knobs))
    if row["published"]:  # the same machines with the paper's scales
        published = tuple(scales_lib.resolve(row["published"]))
        machines += [{**m, "name": f"{m['name']}_published", "scales": published} for m in machines]
    machines.append(dict(name="ideal", denoiser="ideal", scales="", knobs={}))
    eval_dir = row_dir / "evaluate"
    out[eval_dir.name] = config_lib.merge(config_lib.evaluate_config(), dict(
        net=net, net_step=row["net_step"], net_weights=row["net_weights"], machines=machines,
        net_steps=row["net_steps"], limit=row["limit"], n_seeds=row["evaluate_seeds"],
        seed=row["seed"] + 1 if row["evaluate_seed"] < 0 else row["evaluate_seed"], convention=row["convention"],
        seeds_per_part=row["seeds_per_part"], out_dir=str(eval_dir), progress=progress,
        parts_from=(str(Path(out_dir) / "*" / "evaluate"), *row["parts_from"])))  # fmt: skip
    return out


def run_row(row: dict, out_dir: Path, *, progress: bool = True, log=print, cache=None) -> dict:
    """Runs (or resumes) one row; returns its record (what the table needs). A row whose training set is not the one
    it requires (``train_images``) is refused first (:func:`check_training_set`)."""
    from elsjax import checkpoint
    from elsjax.jobs import calibrate as calibrate_job
    from elsjax.jobs import evaluate as evaluate_job
    from elsjax.jobs import train as train_job

    check_training_set(row, out_dir)
    row_dir = out_dir / row["name"]
    walls = {}

    # 1. The net: the row's own, or trained from its train config (into `net` when that holds no checkpoint yet).
    net = _net_dir(row, out_dir)
    # A training run there that stopped before its end (no record.json) is resumed when the row can make the net:
    # its checkpoints are of an unfinished net, not the row's.
    unfinished = row["train_config"] and (Path(net) / "config.json").is_file() and not runs.is_complete(net)
    trained = Path(net).exists() and checkpoint.latest_step(net) is not None and not unfinished
    trains_here = not row["net"] or not trained  # this sweep trains the net (its time counts in the row's)
    if not trained or not row["net"]:
        if not row["train_config"]:
            raise ValueError(f"rows: row {row['name']!r}: no checkpoint in {net} and no train_config to make one")
        cfg = _train_cfg(row)
        cfg.out_dir, cfg.progress = net, progress
        # A changed config is resumed or refused by the training job.
        if not _done_with(Path(net), cfg, config_lib.train_config()):
            log(f"[{row['name']}] training ({cfg.num_steps} steps)")
            train_job.run(cfg, log=log)
    walls["train"] = _total(Path(net)) if trains_here else None  # a net made elsewhere: not this sweep's time
    if not trains_here:
        walls["net_training_elsewhere"] = _total(Path(net))
    meta = checkpoint.read_meta(net, row["net_step"] or None)
    spec, net_cfg = meta["spec"], meta.get("config") or {}
    kind = row["kind"] or ("els" if spec.get("padding") == "circular" else "bbels")

    configs = stage_configs(row, out_dir, kind, progress=progress)

    # 2. Calibrations: the (E)LS machine and the LS.
    calibrations = {}
    for machine in (kind, "ls"):
        cal_dir, cfg = row_dir / f"calibrate_{machine}", configs[f"calibrate_{machine}"]
        if not _done_with(cal_dir, cfg, config_lib.calibrate_config()):
            log(f"[{row['name']}] calibrating {machine} over k in {','.join(map(str, cfg.ks))}")
            calibrate_job.run(cfg, cache=cache)
        calibrations[machine] = cal_dir / "calibration.json"
        walls[f"calibrate_{machine}"] = _total(cal_dir)

    # 3. The evaluation: calibrated and published scales, and the IS, against the net at each step count.
    eval_dir, cfg = row_dir / "evaluate", configs["evaluate"]
    if not _done_with(eval_dir, cfg, config_lib.evaluate_config()):
        log(f"[{row['name']}] evaluating {row['evaluate_seeds']} seeds")
        evaluate_job.run(cfg, log=log, cache=cache)
    walls["evaluate"] = _total(eval_dir)
    summary = runs.read_json(eval_dir / "summary.json")
    record = {
        "name": row["name"],
        "key": list(_key(row, net_cfg, spec)),
        "kind": kind,
        "net": net,
        "net_step": int(meta["step"]),
        "net_weights": row["net_weights"],
        "net_ema_decay": net_cfg.get("ema_decay", 0.0),
        "net_ema_debias": bool(net_cfg.get("ema_debias", False)),
        "net_batch_size": net_cfg.get("batch_size"),
        "net_params": _param_count(net),
        "train_images": runs.read_json(eval_dir / "record.json")["data"]["num_images"],
        "calibrated": {m: runs.read_json(p)["median"] for m, p in calibrations.items()},
        "published": scales_lib.resolve(row["published"]) if row["published"] else None,
        "summary": {
            k: summary[k] for k in ("n_seeds", "median_r", "median_r2", "median_R2", "median_mse", "frac_beats_ideal")
        },
        "wall_s": walls,
        "split_s": {stage: _split(row_dir / stage) for stage in (f"calibrate_{kind}", "calibrate_ls", "evaluate")},
    }
    runs.write_json(row_dir / "row.json", record)
    return record


def _done_with(run_dir: Path, cfg, defaults) -> bool:
    """Whether ``run_dir`` holds a finished run of ``cfg`` (up to where and how it ran): then the stage is skipped.

    The saved config is read as today's typed config (:func:`elsjax.config.merge`: older runs saved lists as text,
    e.g. ``ks: "3,5,7"`` and ``machines: "e=bbels:3+3+5,ideal=ideal"``). A field that it lacks (one added to the job
    since that run) matches when ``cfg`` holds its default (``defaults``, the job's default config): the run computed
    what that default computes.
    """
    if not runs.is_complete(run_dir):
        return False
    saved = runs.read_json(Path(run_dir) / "config.json", hint="delete the stage's directory to run it again")
    return not _differences(saved, cfg, defaults)


def _differences(saved: dict, cfg, defaults) -> list[str]:
    """The fields in which a saved stage config and ``cfg`` differ (outside :data:`_LOCATION_FIELDS`)."""
    unknown = sorted(set(saved) - set(defaults))
    if unknown:  # a field the job no longer has: another computation
        return unknown
    try:
        saved = config_lib.merge(defaults, saved)
    except ValueError as err:  # a value today's config cannot hold
        return [str(err)]
    return runs.config_differences(
        _by_content(config_lib.as_saved(saved)), _by_content(config_lib.as_saved(cfg)), ignore=_LOCATION_FIELDS
    )


def _by_content(saved: dict) -> dict:
    """An evaluate config with each machine's ``calibration.json`` replaced by the schedule it holds, so that an
    evaluation copied from another sweep (naming that sweep's calibration files, with the same contents) is reused.
    A file that is gone leaves the path, which then differs."""
    if not saved.get("machines"):
        return saved
    from elsjax.jobs import evaluate as evaluate_job

    try:
        specs = evaluate_job.machine_specs(saved["machines"])
    except ValueError:
        return saved
    machines = [[m.name, m.denoiser, list(m.scales) if m.scales else None, m.knobs] for m in specs]
    return {**saved, "machines": machines}


# Fields that say how or where a stage ran, not what it computed: a finished stage is reused across them, so a sweep
# whose nets live outside it (as in experiments/sweeps/cpu_scale.py) can be moved, e.g. committed under
# experiments/results, and continued there. (A net trained inside the sweep is named by its path, which moves too.)
# An evaluation's parts_from says only where it may find parts that other runs computed.
_LOCATION_FIELDS = frozenset({"progress", "out_dir", "overwrite", "parts_from"})


def _timings(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "record.json"
    return runs.read_json(path)["timings"] if path.is_file() else None


def _earlier(timings: dict) -> dict:
    """The seconds that earlier runs of a resumed stage spent on the parts it read back, by part of :func:`_split`:
    an evaluation records them per part (``net``, ``machine``); a calibration as one number, whose split is not
    recorded (so it counts as ``other``). Parts an evaluation took from other rows (``taken``) are their work, not
    this stage's."""
    earlier = timings.get("earlier_runs_s") or {}
    if not isinstance(earlier, dict):
        return {"other": float(earlier)}
    return {part: seconds for part, seconds in earlier.items() if part != "taken"}


def _wall(timings: dict) -> float:
    """A stage's wall time: its finishing run's, plus what earlier runs of a resumed stage computed."""
    return timings["total_s"] + sum(_earlier(timings).values())


def _total(run_dir: Path):
    timings = _timings(run_dir)
    return None if timings is None else _wall(timings)


# Where a stage's time went, from its record's timings: machine evaluations, dictionary builds, compilation, the net.
_SPLIT = {"machine": ("calibrate_evaluate_s", "machine_steps_s"), "builds": ("calibrate_build_s", "builds_s"),
          "compile": ("calibrate_compile_s",), "net": ("calibrate_net_s", "net_s")}  # fmt: skip


def _split(run_dir: Path) -> dict:
    """A stage's wall time and its parts in seconds (``machine``, ``builds``, ``compile``, ``net``, ``other``)."""
    timings = _timings(run_dir)
    earlier = _earlier(timings)  # a resumed stage: the parts earlier runs computed
    out = {"total": _wall(timings)}
    for part, names in _SPLIT.items():
        out[part] = sum(timings.get(n) or 0.0 for n in names) + earlier.get(part, 0.0)
    out["other"] = max(0.0, out["total"] - sum(out[p] for p in _SPLIT))
    return out


def _param_count(net) -> int | None:
    path = Path(net) / "record.json"
    if path.is_file():
        return runs.read_json(path).get("param_count")
    path = Path(net).parent / "record.json"
    return runs.read_json(path).get("param_count") if path.is_file() else None


def _median_of(medians: dict, steps: str, name: str):
    return (medians.get(name) or {}).get(steps)


def _net_step_counts(records: list[dict]) -> list[int]:
    """The net step counts the rows were evaluated at, most first (150: Table 1, 20: Table 2)."""
    return sorted({int(s) for r in records for by in r["summary"]["median_r"].values() for s in by}, reverse=True)


# The stages whose time a row's wall time sums: training only when the sweep trained the net (``wall_s["train"]`` is
# None for a net made elsewhere, e.g. a committed checkpoint).
_WALL_STAGES = ("train", "calibrate_bbels", "calibrate_els", "calibrate_ls", "evaluate")


def _fmt(value, paper_value=None) -> str:
    text = "-" if value is None else f"{value:.2f}"
    return text if paper_value is None else f"{text} ({paper_value:.2f})"


def _fmt_split(part: dict) -> str:
    total = part["total"] or 1.0
    shares = "/".join(f"{100 * part[p] / total:.0f}%" for p in ("machine", "builds", "compile", "net"))
    return f"{part['total'] / 60:.1f} ({shares})"


def table(records: list[dict], *, machine: str | None = None) -> str:
    """The markdown tables of a sweep: one per net step count, measured values with the paper's in brackets."""
    machine = machine or f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform(terse=True)}"
    steps = _net_step_counts(records)
    out = [f"Machine: {machine}. Medians over the seeds of the Pearson r between each machine's sample and the "
           "net's sample from the same seed; the paper's number in brackets (its Table 1 for 150 net steps, Table 2 "
           "for 20). (E)LS is bbELS for zero-padded nets and ELS for circular ones; *published* uses the paper's "
           "published scales for the matching net instead of this net's calibration. Wall time: the row's stages; "
           "the net's training counts only when the sweep trained it (not for a net made elsewhere).", ""]  # fmt: skip
    for n in steps:
        label = {150: "Table 1 layout", 20: "Table 2 layout"}.get(n, "no paper table")
        out += [f"### Net sampled with {n} DDIM steps ({label})", "",
                "| row | dataset | arch | padding | cond. | (E)LS | LS | IS | (E)LS>IS | (E)LS published | LS published "
                "| seeds | train images | net budget | wall time |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in records:
            dataset, arch, padding, cond = r["key"]
            ref = paper.table_row(dataset, arch, padding, cond, n)
            med, frac = r["summary"]["median_r"], r["summary"]["frac_beats_ideal"]
            kind, s = r["kind"], str(n)
            get = functools.partial(_median_of, med, s)
            budget = f"{r['net_step']} steps x {r['net_batch_size']}" + (
                f", {r['net_params']:,} params" if r["net_params"] else ""
            )
            if r.get("net_weights", "raw") == "ema":  # not the paper's procedure: labelled
                debiased = ", debiased" if r.get("net_ema_debias") else ""
                budget += f", EMA weights (decay {r.get('net_ema_decay')}{debiased})"
            wall = sum(v for k, v in r["wall_s"].items() if v and k in _WALL_STAGES) / 60
            out.append(
                f"| {r['name']} | {dataset} | {arch} | {padding} | {'yes' if cond else 'no'} "
                f"| {_fmt(get(kind), ref and ref['els'])} | {_fmt(get('ls'), ref and ref['ls'])} "
                f"| {_fmt(get('ideal'), ref and ref['ideal'])} "
                f"| {_fmt((frac.get(kind) or {}).get(s), ref and ref['frac_beats_ideal'])} "
                f"| {_fmt(get(kind + '_published'))} | {_fmt(get('ls_published'))} "
                f"| {r['summary']['n_seeds']} | {r['train_images']} | {budget} | {wall:.0f} min |"
            )
        out.append("")
    split_rows = [r for r in records if r.get("split_s")]
    if split_rows:
        out += ["### Where each row's time went", "",
                "Minutes per stage; in brackets the shares of machine evaluations / dictionary builds / compilation / "
                "the net's own sampling (the evaluation's compilation is counted with its machine steps); training: the "
                "net's last training run (a resumed training counts only its last part).", "",
                "| row | training | (E)LS calibration | LS calibration | evaluation |", "|---|---|---|---|---|"]  # fmt: skip
        for r in split_rows:
            cells = [_fmt_split(part) for part in r["split_s"].values()]
            train = r["wall_s"].get("train")
            out.append(f"| {r['name']} | {'-' if train is None else f'{train / 60:.0f}'} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["### Calibrated scales (entry j: t = (j+1)/20) beside the published ones", "",
            "| row | machine | scales |", "|---|---|---|"]  # fmt: skip
    for r in records:
        for m, ks in r["calibrated"].items():
            out.append(f"| {r['name']} | {m} calibrated | {','.join(map(str, ks))} |")
        if r["published"]:
            out.append(f"| {r['name']} | published | {','.join(map(str, r['published']))} |")
    return "\n".join(out) + "\n"


# The figure's series: label, the machine's name in a summary ({kind}: the row's (E)LS), the paper's table column.
_SERIES = (("(E)LS", "{kind}", "els"), ("LS", "ls", "ls"), ("IS", "ideal", "ideal"),
           ("(E)LS published", "{kind}_published", None), ("LS published", "ls_published", None))  # fmt: skip


def figure(records: list[dict], path) -> Path:
    """``agreement.png``: each machine's median r per row, the paper's beside it; a curve against the net's training
    steps when the rows are one configuration at several checkpoints (e.g. ``experiments/sweeps/cpu_budget.py``)."""
    from elsjax import figures

    steps = _net_step_counts(records)
    budget = len(records) > 1 and len({tuple(r["key"]) for r in records}) == 1
    budget = budget and len({r["net_step"] for r in records}) == len(records)
    if budget:
        records = sorted(records, key=lambda r: r["net_step"])
    panels, reference = {}, {}
    for n in steps:
        title = f"net sampled with {n} DDIM steps"
        refs = [paper.table_row(*r["key"], n) for r in records]
        panels[title], reference[title] = {}, {}
        for label, name, column in _SERIES:
            med = [_median_of(r["summary"]["median_r"], str(n), name.format(kind=r["kind"])) for r in records]
            panels[title][label] = med
            reference[title][label] = [ref[column] if ref and column else None for ref in refs]
    rows = [r["net_step"] for r in records] if budget else [r["name"] for r in records]
    xlabel = f"net training steps (batch {records[0]['net_batch_size']})" if budget else ""
    return figures.agreement_by_row(panels, rows, path, reference=reference, xlabel=xlabel)


@runs.job
def run(cfg, *, log=print, machine: str | None = None, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Runs (or resumes) every row of a sweep config; rewrites ``table.md``, ``table.json`` and ``agreement.png``
    after each row.

    Every row's values are checked (:func:`validate_row`) before any row runs; then the sweep's directory is
    locked and its ``config.json`` written.

    Raises:
      ValueError: no rows, or a row with a bad value (named, with its row).
    """
    out_dir = Path(cfg.out_dir)
    rows = _rows(cfg)
    if not rows:
        raise ValueError("rows: the sweep has no rows: nothing to run, and no table written")
    for row in rows:
        validate_row(row, out_dir)
    cache_dir = runs.dictionary_cache_dir()
    runs.start_run(out_dir, cfg, rules=False)
    every = [r["name"] for r in _rows(ml_collections.ConfigDict({**cfg.to_dict(), "only": ""}))]
    for row in rows:  # every row's training set, before any row starts work
        check_training_set(row, out_dir)
    records = []
    for row in rows:
        cache = dictcache.DictionaryCache(directory=cache_dir)  # the row's jobs share it
        records.append(run_row(row, out_dir, progress=cfg.progress, log=log, cache=cache))
        # The table holds every finished row of the sweep file, in its order, also those of earlier `--only` runs.
        finished = [_finished_row(out_dir, name, records) for name in every]
        finished = [r for r in finished if r is not None]
        runs.write_json(out_dir / "table.json", finished)
        atomic.write_text(out_dir / "table.md", table(finished, machine=machine))
        figure(finished, out_dir / "agreement.png")
        if on_row is not None:
            on_row(records[-1])
    return records


def _finished_row(out_dir: Path, name: str, records: list[dict]) -> dict | None:
    """The record of row ``name``: from this run, else its ``row.json`` from an earlier run, else None."""
    for record in records:
        if record["name"] == name:
            return record
    path = out_dir / name / "row.json"
    return runs.read_json(path, hint="delete it to run the row again") if path.is_file() else None
