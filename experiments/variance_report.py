r"""Seeds against training runs: how much of a row's median r is evaluation-seed noise, and how much is the net.

Reads a sweep folder whose rows are named ``..._seed{S}_step{T}`` (``experiments/sweeps/cpu_variance.py``: one
configuration trained with several training seeds S, each evaluated at checkpoints T) and writes, beside the sweep's
own ``table.md``:

* ``variance.md`` / ``variance.json``: per run and checkpoint, every machine's median r over the evaluation seeds
  with its seed-bootstrap 95% interval (:func:`elsjax.metrics.bootstrap_median`, 20,000 resamples), for the net
  sampled with 150 and 20 DDIM steps; per checkpoint, the spread over training runs (mean, SD, range of the run
  medians); the two error bars side by side: the typical seed-bootstrap SD of one median against the SD over
  training runs; and per run, the spread over its checkpoints (SD and range);
* ``variance.png``: median r against the checkpoint, one line per training run, with the seed intervals as bars.

Only finished rows (an ``evaluate/summary.json``) are read, so it can run while the sweep is still going.

    python experiments/variance_report.py experiments/results/cpu_variance

``--runs`` names the rows otherwise: a regular expression with the groups ``run`` and ``step``, matched at the end of
a row's name. The EMA study's rows ``..._emarun_{raw,debiased}_step{T}`` are two weights of one run, so there a
"run" is the weights, and the report's name and title say so::

    python experiments/variance_report.py experiments/results/cpu_ema --runs '_emarun_(?P<run>[a-z]+)_step(?P<step>\d+)$' \
        --name ema_checkpoints --title "One run's raw and debiased EMA weights across checkpoints" \
        --runs-are "the weights of one training run: raw or debiased EMA"
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from elsjax import metrics

SEED_RUNS = r"_seed(?P<run>\d+)_step(?P<step>\d+)$"
TITLE = "Training-run variance: one configuration, several training seeds"
RUNS_ARE = "a training run, by its training seed"
MACHINES = ("bbels", "els", "ls", "ideal")  # the sweep's calibrated machines and the IS, where present


def _run_order(run: str):
    """Training seeds in numeric order, named runs after them in the order of their names."""
    return (0, int(run), "") if run.isdigit() else (1, 0, run)


def read_rows(folder: Path, runs: str | re.Pattern = SEED_RUNS) -> dict[tuple[str, int], dict]:
    """``{(run, step): {"per_seed": {machine: {net_steps: [r, ...]}}}}`` of every finished row whose name matches
    ``runs`` (groups ``run`` and ``step``; by default the training seed of ``..._seed{S}_step{T}``)."""
    pattern = re.compile(runs)
    rows = {}
    for summary in sorted(folder.glob("*/evaluate/summary.json")):
        match = pattern.search(summary.parent.parent.name)
        if match is None:
            continue
        data = json.loads(summary.read_text())
        configuration = pattern.sub("", summary.parent.parent.name)  # the name the runs share
        rows[match["run"], int(match["step"])] = {
            "per_seed": data["per_seed"]["r"],
            "configuration": configuration,
        }
    return rows


def report(rows: dict[tuple[str, int], dict], *, bootstrap_seed: int = 0) -> dict:
    """Medians with seed intervals per (run, checkpoint), the spread over runs per checkpoint, and the spread over
    checkpoints per run."""
    cells, spread, over_checkpoints = {}, {}, {}
    machines = [m for m in MACHINES if all(m in r["per_seed"] for r in rows.values())]
    for (seed, step), row in sorted(rows.items(), key=lambda kv: (_run_order(kv[0][0]), kv[0][1])):
        for machine in machines:
            for net_steps, values in row["per_seed"][machine].items():
                ci = metrics.bootstrap_median(values, seed=bootstrap_seed)
                cells.setdefault(machine, {}).setdefault(net_steps, {}).setdefault(str(step), {})[str(seed)] = {
                    **ci._asdict(), "n_seeds": len(values)}  # fmt: skip
    for machine, by_net in cells.items():
        for net_steps, by_step in by_net.items():
            for step, runs in by_step.items():
                medians = np.array([c["value"] for c in runs.values()])
                spread.setdefault(machine, {}).setdefault(net_steps, {})[step] = {
                    "runs": len(medians), "mean": float(medians.mean()),
                    "sd_runs": float(medians.std(ddof=1)) if len(medians) > 1 else float("nan"),
                    "min": float(medians.min()), "max": float(medians.max()),
                    "sd_seeds": float(np.mean([c["sd"] for c in runs.values()])),
                }  # fmt: skip
            # Every (run, checkpoint) cell of the window: the net's variation over both training runs and checkpoints.
            every = [c for runs in by_step.values() for c in runs.values()]
            medians = np.array([c["value"] for c in every])
            spread[machine][net_steps]["all"] = {
                "runs": len(medians), "mean": float(medians.mean()),
                "sd_runs": float(medians.std(ddof=1)) if len(medians) > 1 else float("nan"),
                "min": float(medians.min()), "max": float(medians.max()),
                "sd_seeds": float(np.mean([c["sd"] for c in every])),
            }  # fmt: skip
            for run in sorted({s for runs in by_step.values() for s in runs}, key=_run_order):
                medians = np.array([runs[run]["value"] for runs in by_step.values() if run in runs])
                over_checkpoints.setdefault(machine, {}).setdefault(net_steps, {})[run] = {
                    "checkpoints": len(medians),
                    "sd": float(medians.std(ddof=1)) if len(medians) > 1 else float("nan"),
                    "min": float(medians.min()), "max": float(medians.max()),
                }  # fmt: skip
    bootstrap = {"resamples": 20_000, "level": 0.95, "seed": bootstrap_seed}
    return {"cells": cells, "spread": spread, "over_checkpoints": over_checkpoints, "bootstrap": bootstrap}


def _run_label(run: str) -> str:
    return f"run {run}" if run.isdigit() else run


def markdown(result: dict, title: str = TITLE, runs_are: str = RUNS_ARE) -> str:
    lines = [
        f"# {title}",
        "",
        "Median Pearson r between each machine's sample and the net's sample from the same seed, per run "
        f"({runs_are}) and checkpoint, with the seed-bootstrap 95% interval (20,000 resamples of the evaluation "
        "seeds). *SD seeds*: the bootstrap SD of one median, averaged over runs; *SD runs*: the SD of the run "
        "medians at that checkpoint (ddof 1); the *every cell* line takes the SD over all (run, checkpoint) medians; the "
        "*over checkpoints* lines give each run's SD (ddof 1) and range over its checkpoints. Written by "
        "`python experiments/variance_report.py`.",
    ]
    for machine, by_net in result["cells"].items():
        for net_steps, by_step in sorted(by_net.items(), key=lambda kv: -int(kv[0])):
            seeds = sorted({s for runs in by_step.values() for s in runs}, key=_run_order)
            lines += ["", f"## {machine}, net sampled with {net_steps} steps", ""]
            lines.append(
                "| checkpoint | " + " | ".join(_run_label(s) for s in seeds) + " | mean | SD runs | SD seeds |"
            )
            lines.append("|---" * (len(seeds) + 4) + "|")
            for step, runs in sorted(by_step.items(), key=lambda kv: int(kv[0])):
                cell = [
                    f"{runs[s]['value']:.3f} [{runs[s]['low']:.3f}, {runs[s]['high']:.3f}]" if s in runs else "-"
                    for s in seeds
                ]
                sp = result["spread"][machine][net_steps][step]
                lines.append(
                    f"| {step} | "
                    + " | ".join(cell)
                    + f" | {sp['mean']:.3f} | {sp['sd_runs']:.3f} | {sp['sd_seeds']:.3f} |"
                )
            sp = result["spread"][machine][net_steps]["all"]
            lines.append(
                f"| every cell ({sp['runs']}) | " + " | ".join("" for _ in seeds)
                + f" | {sp['mean']:.3f} | {sp['sd_runs']:.3f} | {sp['sd_seeds']:.3f} |"
            )  # fmt: skip
            over = result["over_checkpoints"][machine][net_steps]
            lines.append("| over checkpoints, SD | " + " | ".join(f"{over[s]['sd']:.3f}" for s in seeds) + " | | | |")
            lines.append(
                "| over checkpoints, range | "
                + " | ".join(f"{over[s]['min']:.3f}-{over[s]['max']:.3f}" for s in seeds)
                + " | | | |"
            )
    return "\n".join(lines) + "\n"


def figure(result: dict, path: Path, title: str = TITLE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    machines = list(result["cells"])
    net_steps = sorted({n for by_net in result["cells"].values() for n in by_net}, key=int, reverse=True)
    fig, axes = plt.subplots(1, len(net_steps), figsize=(5.5 * len(net_steps), 4), squeeze=False, sharey=True)
    colours = dict(zip(machines, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, n in zip(axes[0], net_steps):
        for machine in machines:
            by_step = result["cells"][machine].get(n, {})
            seeds = sorted({s for runs in by_step.values() for s in runs}, key=_run_order)
            for i, seed in enumerate(seeds):
                steps = sorted((int(t) for t, runs in by_step.items() if seed in runs))
                cells = [by_step[str(t)][seed] for t in steps]
                offset = (i - (len(seeds) - 1) / 2) * 40  # spread the runs' bars apart along x
                ax.errorbar(
                    np.array(steps) + offset, [c["value"] for c in cells],
                    yerr=[[c["value"] - c["low"] for c in cells], [c["high"] - c["value"] for c in cells]],
                    color=colours[machine], marker="os^dv"[i % 5], capsize=2, lw=1,
                    label=f"{machine}, {_run_label(seed)}",
                )  # fmt: skip
        ax.set_title(f"net sampled with {n} DDIM steps")
        ax.set_xlabel("training checkpoint (steps)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("median r (machine vs net), 95% seed interval")
    axes[0][-1].legend(fontsize=7, ncol=len(machines))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the sweep folder (rows named ..._seed{S}_step{T})")
    parser.add_argument("--runs", default=SEED_RUNS, help="row names: a regular expression with groups run and step")
    parser.add_argument("--name", default="variance", help="the outputs' name: NAME.md, NAME.json, NAME.png")
    parser.add_argument("--title", default=TITLE, help="the report's and the figure's title")
    parser.add_argument("--runs-are", default=RUNS_ARE, help="what a run is, for the report's text")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    try:
        pattern = re.compile(args.runs)
    except re.error as e:
        raise SystemExit(f"variance_report: --runs {args.runs!r} is not a regular expression: {e}") from None
    if not {"run", "step"} <= set(pattern.groupindex):
        raise SystemExit(f"variance_report: --runs {args.runs!r} needs the named groups run and step")
    rows = read_rows(folder, pattern)
    if not rows:
        raise SystemExit(f"variance_report: no finished row matching {args.runs!r} in {folder}")
    result = report(rows)
    # The configuration the runs share, for tables that borrow its spread.
    names = sorted({row["configuration"] for row in rows.values()})
    result["configuration"] = names[0] if len(names) == 1 else names
    name = args.name
    (folder / f"{name}.json").write_text(json.dumps(result, indent=1))
    text = markdown(result, args.title, args.runs_are)
    (folder / f"{name}.md").write_text(text)
    figure(result, folder / f"{name}.png", args.title)
    print(text)
    print(f"wrote {folder}/{name}.md, {name}.json, {name}.png ({len(rows)} finished rows)")
    return result


if __name__ == "__main__":
    main()
