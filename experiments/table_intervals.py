"""Seed-bootstrap intervals for a sweep's table: every row's median r per machine, and what calibration adds.

For each finished row of a sweep folder (``ROW/evaluate/summary.json``) and each net step count, it prints and
writes (``intervals.md``, ``intervals.json`` in the folder):

* every machine's median Pearson r with its 95% seed-bootstrap interval (:func:`elsjax.metrics.bootstrap_median`,
  20,000 resamples of the evaluation seeds);
* the gain of the row's own calibration over the published scales, ``median(M) - median(M_published)`` for each
  machine M evaluated both ways, with a paired bootstrap (the same resampled seeds for both, as both machines
  sampled from the same seeds).

These intervals are the evaluation seeds' noise only: another training run of the same net moves a row by more
(``experiments/variance_report.py``). With ``--runs VARIANCE_JSON`` (that script's ``variance.json``) it also writes
each row's gap to the paper's number with two error bars: the seed-bootstrap SD of the row's median, and the SD of
the median over independent training runs measured by the variance study (at its last checkpoint: the study's one
configuration, the MNIST ResNet, so for the other rows it is borrowed, and says so).

    python experiments/table_intervals.py experiments/results/cpu_scale \
        --runs experiments/results/cpu_variance/variance.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from elsjax import metrics, paper

RESAMPLES = 20_000
PAPER_COLUMNS = {"bbels": "els", "els": "els", "ls": "ls", "ideal": "ideal"}  # machine -> the paper's column
STUDY_MACHINE = {"els": "bbels"}  # the variance study's machine standing in for one it did not run


def intervals(folder: Path) -> dict:
    out = {}
    for summary_path in sorted(folder.glob("*/evaluate/summary.json")):
        per_seed = json.loads(summary_path.read_text())["per_seed"]["r"]
        row = {}
        for machine, by_steps in per_seed.items():
            for steps, values in by_steps.items():
                row.setdefault(steps, {})[machine] = metrics.bootstrap_median(values, seed=0)._asdict()
                published = per_seed.get(f"{machine}_published", {}).get(steps)
                if published is not None:
                    row[steps][f"{machine} calibrated - published"] = metrics.paired_median_difference(
                        values, published, seed=0, n_resamples=RESAMPLES
                    )._asdict()
        out[summary_path.parent.parent.name] = row
    return out


def gaps(folder: Path, result: dict, variance: dict) -> dict:
    """Per row, net step count and machine: the gap to the paper with the seeds' SD and the training runs' SD."""
    spread = variance["spread"]
    out = {}
    for name, row in result.items():
        key = json.loads((folder / name / "row.json").read_text())["key"]
        for steps, machines in row.items():
            published = paper.table_row(*key, int(steps))
            for machine, column in PAPER_COLUMNS.items():
                if machine not in machines or published is None:
                    continue
                study = spread.get(STUDY_MACHINE.get(machine, machine), {}).get(steps)
                last = None if not study else study[max((k for k in study if k != "all"), key=int)]
                ci = machines[machine]
                out.setdefault(name, {}).setdefault(steps, {})[machine] = {
                    "median": ci["value"], "paper": published[column], "gap": ci["value"] - published[column],
                    "sd_seeds": ci["sd"], "sd_runs": None if last is None else last["sd_runs"],
                    "runs": None if last is None else last["runs"],
                    "borrowed": name != variance.get("configuration") or machine in STUDY_MACHINE,
                }  # fmt: skip
    return out


def gaps_markdown(result: dict) -> str:
    lines = ["", "# Gap to the paper, with two error bars", "",
             "Measured median r minus the paper's (Tables 1 and 2); *SD seeds*: the seed-bootstrap SD of the "
             "row's median; *SD runs*: the SD of the median over independent training runs, from "
             "`experiments/results/cpu_variance` (three runs of the MNIST ResNet, zeros, 2,000 digits, at its last "
             "checkpoint; marked * where borrowed from that configuration or machine). A gap within about two of "
             "the larger SD is not resolved by these runs.", "",
             "| row | net steps | machine | median r | paper | gap | SD seeds | SD runs |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, by_steps in result.items():
        for steps, machines in sorted(by_steps.items(), key=lambda kv: -int(kv[0])):
            for machine, g in machines.items():
                runs = "-" if g["sd_runs"] is None else f"{g['sd_runs']:.3f}{'*' if g['borrowed'] else ''}"
                lines.append(f"| {name} | {steps} | {machine} | {g['median']:.3f} | {g['paper']:.2f} | "
                             f"{g['gap']:+.3f} | {g['sd_seeds']:.3f} | {runs} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def markdown(result: dict) -> str:
    lines = [
        "# Seed-bootstrap intervals",
        "",
        "Median r over the evaluation seeds with its 95% seed-bootstrap interval (20,000 resamples); *calibrated - "
        "published*: the row's own calibration's gain over the published scales, paired bootstrap. Written by "
        "`python experiments/table_intervals.py`. Seed noise only: training runs add more "
        "(`experiments/variance_report.py`).",
    ]
    for name, row in result.items():
        for steps, machines in sorted(row.items(), key=lambda kv: -int(kv[0])):
            lines += ["", f"## {name}, net sampled with {steps} steps", "", "| machine | median r | 95% interval |",
                      "|---|---|---|"]  # fmt: skip
            for machine, ci in machines.items():
                sign = "+" if "published" in machine and "-" in machine else ""
                lines.append(
                    f"| {machine} | {ci['value']:{sign}.3f} | [{ci['low']:{sign}.3f}, {ci['high']:{sign}.3f}] |"
                )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a sweep folder (rows with evaluate/summary.json)")
    parser.add_argument("--runs", default="", help="a variance study's variance.json: add the gap to the paper")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    result = intervals(folder)
    if not result:
        raise SystemExit(f"table_intervals: no finished row (ROW/evaluate/summary.json) in {folder}")
    text = markdown(result)
    if args.runs:
        result = {"rows": result, "gap_to_paper": gaps(folder, result, json.loads(Path(args.runs).read_text()))}
        text += gaps_markdown(result["gap_to_paper"])
    (folder / "intervals.json").write_text(json.dumps(result, indent=1))
    (folder / "intervals.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
