"""The field's denoisers against the same nets: every registered denoiser evaluated against the five CPU-scale nets of
``experiments/sweeps/cpu_scale.py``, from that sweep's evaluation seeds (seed 1, 50 seeds), in one table and figure.

Per net (a row of the sweep) and per denoiser, in ``OUT_DIR/ROW/``:

* ``calibrate_pca_locality_tau/``, ``calibrate_scfdm_smoothing/``: one value of PCA-locality's ``tau`` and of
  sCFDM's ``smoothing`` (16 samples, key 0) calibrated against the net (docs/maths.md §7.4), over
  :data:`TAU_VALUES` and :data:`SMOOTHING_VALUES`, from the sweep's calibration seeds (seed 0, 10 seeds, 20 steps);
* ``calibrate_pspc/``: PSPC's crop size k per step, its own k calibration over the row's LS candidates (odd sizes:
  the calibration's candidates are odd);
* ``evaluate_NAME/``: one evaluation (``elsjax.jobs.evaluate``, resumable by parts) of that denoiser alone. The
  (E)LS (bbELS; ELS for the circular net) and the LS use the sweep's own calibrations, named where they are
  (``experiments/results/cpu_scale/ROW/calibrate_*/calibration.json``); the IS, Wiener and nearest have no knob;
  GoldDiff runs with its defaults (subset 256, tail 64, pool 4, key 0): an approximation of the IS, not exact.

A stage whose directory holds a finished run of the same config is reused; an evaluation resumes from its parts. A
new evaluation directory starts with the parts of the sweep's evaluation of the same row copied in (the net's
samples, and the samples of a machine the sweep evaluated under the same name and scales); the evaluation checks
each part's tag and recomputes any that was computed from something else. Then ``table.md`` and ``table.json``
(denoiser x net: median r, R^2 as the studio reports it (:func:`elsjax.metrics.studio_r2`) and MSE, each with its
95% seed-bootstrap interval, :func:`elsjax.metrics.bootstrap_median`) and ``median_r.png`` (a heatmap of median r,
denoiser x net) are written in ``OUT_DIR``.

The full comparison (hours on 2 CPU cores)::

    python experiments/compare_denoisers.py

A quick check (one net, 2 seeds, 2 calibration seeds of 4 steps, the net at 20 steps only)::

    python experiments/compare_denoisers.py --rows mnist_resnet_zeros --n-seeds 2 --calibrate-seeds 2 \
        --calibrate-steps 4 --net-steps 20 --out-dir /tmp/denoisers_quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np

from elsjax import config as config_lib
from elsjax import metrics, runs
from elsjax.jobs import calibrate as calibrate_job
from elsjax.jobs import evaluate as evaluate_job

REPO = Path(__file__).resolve().parents[1]
SWEEP_FILE = REPO / "experiments/sweeps/cpu_scale.py"
SWEEP_DIR = Path("experiments/results/cpu_scale")  # relative: the sweep's stages name their nets that way
OUT_DIR = Path("experiments/results/denoisers")
# 0.02 as published; 0 is the IS. The values below 0.005 because 0.005 was the best of (0, 0.005, ..., 0.2).
TAU_VALUES = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
# sigma in the units of x_t (noise of std b_t); 0 is the IS. Up to 16 because 2 was the top and best of (0, ..., 2).
SMOOTHING_VALUES = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SCFDM_KNOBS = {"samples": 16, "key": 0}
KNOB_STAGES = {"tau": "calibrate_pca_locality_tau", "smoothing": "calibrate_scfdm_smoothing"}  # knob -> its stage
GOLDDIFF_KNOBS = {"key": 0}  # its default subset, tail and pool
DENOISERS = ("els_type", "ls", "ideal", "wiener", "nearest", "pca_locality", "scfdm", "pspc", "golddiff")
LABELS = {"els_type": "(bb)ELS", "ls": "LS", "ideal": "IS", "wiener": "Wiener", "nearest": "nearest",
          "pca_locality": "PCA-locality", "scfdm": "sCFDM", "pspc": "PSPC", "golddiff": "GoldDiff (approx.)"}  # fmt: skip
RESAMPLES = 20_000


def sweep_rows(names) -> list[dict]:
    """The sweep's rows (name, net, LS candidates), those named in ``names`` (empty: all)."""
    rows = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in config_lib.load_file(SWEEP_FILE).rows]
    known = [r["name"] for r in rows]
    missing = sorted(set(names) - set(known))
    if missing:
        raise SystemExit(f"rows: no row(s) {missing} in {SWEEP_FILE.name}; rows: {known}")
    return [r for r in rows if not names or r["name"] in names]


def _finished(run_dir: Path, cfg, defaults) -> bool:
    """Whether ``run_dir`` holds a finished run of ``cfg`` (up to where and how it ran)."""
    if not runs.is_complete(run_dir):
        return False
    saved = runs.read_json(run_dir / "config.json")
    return not runs.config_differences(saved, config_lib.as_saved(cfg), ignore=runs.LOCATION_FIELDS,
                                       defaults=config_lib.as_saved(defaults))  # fmt: skip


def calibrations(row: dict, row_dir: Path, args) -> dict:
    """Runs (or reuses) the row's knob and PSPC calibrations; returns each machine's knob or scales source."""
    common = dict(net=row["net"], n_seeds=args.calibrate_seeds, seed=0, num_steps=args.calibrate_steps,
                  progress=args.progress, overwrite=True)  # fmt: skip
    stages = {  # the stage of each denoiser that has one
        "pca_locality": (KNOB_STAGES["tau"], dict(kind="pca_locality", knob="tau", knob_values=TAU_VALUES)),
        "scfdm": (
            KNOB_STAGES["smoothing"],
            dict(kind="scfdm", knob="smoothing", knob_values=SMOOTHING_VALUES, knobs=SCFDM_KNOBS),
        ),  # fmt: skip
        "pspc": ("calibrate_pspc", dict(kind="pspc", ks=tuple(row["ls_ks"]))),
    }
    for name, fields in [stages[key] for key in args.denoisers if key in stages]:
        cfg = config_lib.merge(config_lib.calibrate_config(), {**common, **fields, "out_dir": str(row_dir / name)})
        if not _finished(row_dir / name, cfg, config_lib.calibrate_config()):
            print(f"[{row['name']}] {name}", flush=True)
            calibrate_job.run(cfg)
        if "knob" in fields and (note := edge_note(row_dir / name / calibrate_job.KNOB_FILE)):
            print(f"[{row['name']}] note: {note}", flush=True)
    return {
        **{knob: str(row_dir / stage / calibrate_job.KNOB_FILE) for knob, stage in KNOB_STAGES.items()},
        "pspc": str(row_dir / "calibrate_pspc" / "calibration.json"),
    }


def edge_note(knob_file: Path) -> str:
    """A note when a knob calibration chose the largest candidate, or the smallest other than 0 (the IS): the
    best value may lie beyond the candidates; else ''."""
    c = runs.read_json(knob_file)
    values = list(c["candidates"])
    inner = [v for v in values if v != 0]
    if c["best"] == values[-1] or (len(inner) > 1 and c["best"] == inner[0]):
        side = "largest" if c["best"] == values[-1] else "smallest non-zero"
        return f"{c['kind']} {c['knob']} = {c['best']:g} is the {side} of its candidates {values}"
    return ""


def machines(row: dict, sources: dict) -> dict:
    """Each denoiser's machine entry: {name, denoiser, scales, knobs}."""
    sweep = SWEEP_DIR / row["name"]
    els = "els" if (sweep / "calibrate_els").is_dir() else "bbels"  # the circular net's machine is ELS
    entry = lambda name, denoiser, scales="", knobs=None: dict(name=name, denoiser=denoiser, scales=scales,
                                                               knobs=knobs or {})  # fmt: skip
    return {
        "els_type": entry(els, els, str(sweep / f"calibrate_{els}" / "calibration.json")),
        "ls": entry("ls", "ls", str(sweep / "calibrate_ls" / "calibration.json")),
        "ideal": entry("ideal", "ideal"),
        "wiener": entry("wiener", "wiener"),
        "nearest": entry("nearest", "nearest"),
        "pca_locality": entry("pca_locality", "pca_locality", knobs={"tau": sources["tau"]}),
        "scfdm": entry("scfdm", "scfdm", knobs={**SCFDM_KNOBS, "smoothing": sources["smoothing"]}),
        "pspc": entry("pspc", "pspc", sources["pspc"]),
        "golddiff": entry("golddiff", "golddiff", knobs=GOLDDIFF_KNOBS),
    }


def _start_from_sweep(run_dir: Path, cfg, sweep_eval: Path, machine: str) -> None:
    """A new evaluation directory with its config and the sweep's parts it may reuse (their tags are checked)."""
    if run_dir.exists() or not (sweep_eval / "parts").is_dir():
        return
    (run_dir / "parts").mkdir(parents=True)
    runs.write_config(run_dir, config_lib.as_saved(cfg))
    for part in [*(sweep_eval / "parts").glob("net_*.npz"), *(sweep_eval / "parts").glob(f"machine_{machine}_*.npz")]:
        shutil.copy2(part, run_dir / "parts" / part.name)


def evaluations(row: dict, row_dir: Path, entries: dict, args) -> None:
    """Runs (or resumes) one evaluation per denoiser, from the sweep's evaluation seeds."""
    sweep_eval = SWEEP_DIR / row["name"] / "evaluate"
    seed = runs.read_json(sweep_eval / "config.json")["seed"] if (sweep_eval / "config.json").is_file() else 1
    for key in args.denoisers:
        run_dir = row_dir / f"evaluate_{key}"
        cfg = config_lib.merge(config_lib.evaluate_config(), dict(
            net=row["net"], machines=[entries[key]], net_steps=args.net_steps, n_seeds=args.n_seeds, seed=seed,
            seeds_per_part=10, out_dir=str(run_dir), progress=args.progress))  # fmt: skip
        if _finished(run_dir, cfg, config_lib.evaluate_config()) and _same_machines(run_dir, cfg):
            continue
        _start_from_sweep(run_dir, cfg, sweep_eval, entries[key]["name"])
        print(f"[{row['name']}] evaluating {LABELS[key]} on {args.n_seeds} seeds", flush=True)
        evaluate_job.run(cfg, log=lambda *a: None)


def _same_machines(run_dir: Path, cfg) -> bool:
    """Whether a finished evaluation's machines are the ones its config gives now: its knobs and scales are named by
    calibration files, which a recalibration (another candidate list) rewrites in place. If not, the evaluation
    runs again; it resumes, and recomputes the parts tagged with other knobs or scales."""
    recorded = runs.read_json(run_dir / "summary.json")["machines_spec"]
    return recorded == evaluate_job.describe_specs(evaluate_job.machine_specs(cfg.machines))


def cell(run_dir: Path, name: str, steps: int) -> dict:
    """One denoiser against one net at one net step count: each metric's median with its seed-bootstrap interval."""
    with np.load(run_dir / "samples.npz") as f:
        pred, target = f[f"machine_{name}"], f[f"net_{steps}"]
    out = {}
    for metric, fn in (("r", metrics.pearson_r), ("R2_studio", metrics.studio_r2), ("mse", metrics.mse)):
        out[metric] = metrics.bootstrap_median(fn(pred, target), seed=0, n_resamples=RESAMPLES)._asdict()
    return out


def table(out_dir: Path, rows: list[dict], keys) -> dict:
    """``table.json``, ``table.md`` and ``median_r.png`` from every finished evaluation."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for row in rows:
        for key in keys:
            run_dir = out_dir / row["name"] / f"evaluate_{key}"
            if not runs.is_complete(run_dir):
                continue
            summary = runs.read_json(run_dir / "summary.json")
            (name, spec), = summary["machines_spec"].items()  # fmt: skip
            for steps in summary["net_steps"]:
                result.setdefault(str(steps), {}).setdefault(key, {})[row["name"]] = {
                    **cell(run_dir, name, int(steps)),
                    "n_seeds": summary["n_seeds"],
                    "spec": spec,
                }
    (out_dir / "table.json").write_text(json.dumps(result, indent=1))
    knob_files = [out_dir / r["name"] / stage / calibrate_job.KNOB_FILE for r in rows for stage in KNOB_STAGES.values()]
    edges = [f"{f.parent.parent.name}: {note}" for f in knob_files if f.is_file() and (note := edge_note(f))]
    (out_dir / "table.md").write_text(markdown(result, [r["name"] for r in rows], edges))
    if result:
        heatmap(result, [r["name"] for r in rows], out_dir / "median_r.png")
    return result


def markdown(result: dict, nets: list[str], edges: list[str] = ()) -> str:
    lines = ["# The field's denoisers against the same nets", "",
             "Median over the evaluation seeds with its 95% seed-bootstrap interval (20,000 resamples); R^2 as the "
             "studio reports it (`elsjax.metrics.studio_r2`). Written by `python experiments/compare_denoisers.py`."]  # fmt: skip
    for steps, by_key in sorted(result.items(), key=lambda kv: -int(kv[0])):
        for metric, title in (("r", "median r"), ("R2_studio", "median R^2 (studio)"), ("mse", "median MSE")):
            lines += ["", f"## {title}, net sampled with {steps} steps", "",
                      "| denoiser | " + " | ".join(nets) + " |", "|---" * (len(nets) + 1) + "|"]  # fmt: skip
            for key, by_net in by_key.items():
                cells = []
                for net in nets:
                    c = by_net.get(net, {}).get(metric)
                    cells.append("" if c is None else f"{c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}]")
                lines.append(f"| {LABELS[key]} | " + " | ".join(cells) + " |")
    knobs = {(k, n): c["spec"].get("knobs") for by_key in result.values() for k, by in by_key.items()
             for n, c in by.items() if k in ("pca_locality", "scfdm")}  # fmt: skip
    if knobs:
        lines += [
            "",
            "Calibrated knobs: " + "; ".join(f"{LABELS[k]} on {n}: {v}" for (k, n), v in sorted(knobs.items())),
        ]
    if edges:
        lines += ["", "At an end of the candidates (the best value may lie beyond): " + "; ".join(edges) + "."]
    return "\n".join(lines) + "\n"


def heatmap(result: dict, nets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = max(result, key=int)
    keys = list(result[steps])
    values = np.array([[result[steps][k].get(n, {}).get("r", {}).get("value", np.nan) for n in nets] for k in keys])
    fig, ax = plt.subplots(figsize=(max(1.6 * len(nets) + 2, 6), 0.5 * len(keys) + 1.5))
    image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(nets)), nets, rotation=30, ha="right")
    ax.set_yticks(range(len(keys)), [LABELS[k] for k in keys])
    ax.set_title(f"median r(denoiser, net), net sampled with {steps} steps")
    fig.colorbar(image, ax=ax, label="median Pearson r over the seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--rows", default="", help="comma-separated rows of the sweep (default: all five)")
    parser.add_argument("--denoisers", default=",".join(DENOISERS), help=f"any of {','.join(DENOISERS)}")
    parser.add_argument("--n-seeds", type=int, default=50, help="evaluation seeds (the sweep's: 50)")
    parser.add_argument("--calibrate-seeds", type=int, default=10)
    parser.add_argument("--calibrate-steps", type=int, default=20)
    parser.add_argument("--net-steps", default="20,150")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table from finished evaluations")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    args.out_dir = args.out_dir.resolve()
    if args.out_dir.is_relative_to(REPO):  # the stages name each other relative to the repository, as the sweep's
        args.out_dir = args.out_dir.relative_to(REPO)
    os.chdir(REPO)  # the sweep names its nets and calibrations relative to the repository
    args.denoisers = [d.strip() for d in args.denoisers.split(",") if d.strip()]
    unknown = sorted(set(args.denoisers) - set(DENOISERS))
    if unknown:
        raise SystemExit(f"denoisers: unknown {unknown}; known: {list(DENOISERS)}")
    rows = sweep_rows([r.strip() for r in args.rows.split(",") if r.strip()])
    for row in rows if not args.table_only else []:
        row_dir = args.out_dir / row["name"]
        entries = machines(row, calibrations(row, row_dir, args))
        evaluations(row, row_dir, entries, args)
        table(args.out_dir, rows, args.denoisers)  # after every row
    result = table(args.out_dir, rows, args.denoisers)
    print((args.out_dir / "table.md").read_text())
    return result


if __name__ == "__main__":
    main()
