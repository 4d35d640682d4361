"""How far a row's median r moves when one thing of its calibration or convention changes, on the same seeds.

Reads a sweep folder with a ``base`` row and rows that each differ from it in one thing
(``experiments/sweeps/cpu_sensitivity.py``: another calibration seed, 20 calibration seeds, the LS candidates widened
to 31, the corrected index convention), all evaluated on the same seeds, and writes into the folder. A folder may hold
several bases: a row named ``PREFIX_...`` is compared with ``PREFIX_base`` where that row exists (e.g.
``fmnist_ls_ks_to_31`` with ``fmnist_base``), else with ``base``. Outputs:

* ``sensitivity.md`` / ``sensitivity.json``: per row, machine and net step count, the median r, its move from the
  base, ``median(row) - median(base)``, with a paired seed-bootstrap 95% interval
  (:func:`elsjax.metrics.paired_median_difference`, 20,000 resamples; paired because both sampled from the same
  seeds), and the calibrated scales beside the base's;
* ``sensitivity.png``: the moves with their intervals, one panel per net step count.

Only finished rows (``ROW/evaluate/summary.json``) are read, so it can run while the sweep goes on.

    python experiments/sensitivity_report.py experiments/results/cpu_sensitivity
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from elsjax import metrics

RESAMPLES = 20_000
BASE = "base"


def read(folder: Path) -> dict[str, dict]:
    """``{row: {"r": per-seed r per machine and net steps, "calibrated": its scales}}`` of every finished row."""
    rows = {}
    for summary in sorted(folder.glob("*/evaluate/summary.json")):
        row = summary.parent.parent
        record = json.loads((row / "row.json").read_text()) if (row / "row.json").exists() else {}
        rows[row.name] = {"r": json.loads(summary.read_text())["per_seed"]["r"],
                          "calibrated": record.get("calibrated", {})}  # fmt: skip
    return rows


def base_of(name: str, names) -> str | None:
    """The base row a row is compared with: the longest ``PREFIX_base`` whose prefix starts its name, else ``base``.

    Example:
      >>> base_of("fmnist_ls_ks_to_31", ["base", "fmnist_base", "fmnist_ls_ks_to_31"]), base_of("corrected", ["base"])
      ('fmnist_base', 'base')
    """
    bases = [b for b in names if b.endswith(BASE) and name.startswith(b.removesuffix(BASE)) and b != name]
    return max(bases, key=len, default=None)


def moves(rows: dict[str, dict]) -> dict:
    """Per row (but the bases), machine and net steps: its median, its base's, and the paired move."""
    if BASE not in rows:
        raise SystemExit(f"sensitivity_report: no finished {BASE!r} row to compare with")
    out = {}
    for name, row in rows.items():
        base_name = base_of(name, rows)
        if name.endswith(BASE) or base_name is None:
            continue
        base = rows[base_name]["r"]
        out.setdefault(name, {})
        for machine, by_steps in row["r"].items():
            for steps, values in by_steps.items():
                reference = base.get(machine, {}).get(steps)
                if reference is None:
                    continue
                if len(values) != len(reference):
                    raise SystemExit(
                        f"sensitivity_report: {name!r} and {base_name!r} were evaluated on different seeds"
                    )
                move = metrics.paired_median_difference(values, reference, seed=0, n_resamples=RESAMPLES)
                out[name].setdefault(machine, {})[steps] = {
                    "median": float(np.nanmedian(values)), "base": float(np.nanmedian(reference)),
                    "move": move._asdict(), "n_seeds": len(values), "base_row": base_name,
                }  # fmt: skip
    return {name: by_machine for name, by_machine in out.items() if by_machine}


def markdown(result: dict, command: str) -> str:
    lines = ["# Calibration sensitivity", "",
             "Each row differs from its base row in one thing and is evaluated on the same seeds. *Move*: median r "
             "of the row minus the base's, with a paired seed-bootstrap 95% interval (20,000 resamples). A move "
             "whose interval holds 0 is not resolved by these seeds.", "",
             "| row | base row | machine | net steps | base | row | move [95%] |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, by_machine in result["moves"].items():
        for machine, by_steps in by_machine.items():
            for steps, c in sorted(by_steps.items(), key=lambda kv: -int(kv[0])):
                m = c["move"]
                lines.append(f"| {name} | {c['base_row']} | {machine} | {steps} | {c['base']:.3f} | {c['median']:.3f} | "
                             f"{m['value']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}] |")  # fmt: skip
    lines += [
        "",
        "Calibrated scales (the median k per step over the calibration seeds, from t = 1/n, the least noise, to t = 1):",
        "",
    ]
    for name, scales in result["calibrated"].items():
        for machine, ks in scales.items():
            lines.append(f"- {name}, {machine}: {', '.join(str(k) for k in ks)}")
    return "\n".join(lines + ["", f"Written by `{command}`."]) + "\n"


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["moves"])
    steps = sorted({s for by_m in result["moves"].values() for by_s in by_m.values() for s in by_s}, key=int)[::-1]
    machines = sorted({m for by_m in result["moves"].values() for m in by_m})
    fig, axes = plt.subplots(1, len(steps), figsize=(5 * len(steps), 0.6 * len(names) * len(machines) / 2 + 1.5),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, n in zip(axes[0], steps):
        y = 0
        ticks = []
        for name in names:
            for machine in machines:
                c = result["moves"][name].get(machine, {}).get(n)
                if c is not None:
                    m = c["move"]
                    ax.errorbar(m["value"], y, xerr=[[m["value"] - m["low"]], [m["high"] - m["value"]]], fmt="o",
                                capsize=3, color="C0" if m["low"] <= 0 <= m["high"] else "C3")  # fmt: skip
                    ticks.append((y, f"{name}: {machine}"))
                    y += 1
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks([t for t, _ in ticks], [label for _, label in ticks], fontsize=7)
        ax.set_xlabel("median r, row minus its base row (paired 95% interval)")
        ax.set_title(f"net sampled with {n} DDIM steps")
        ax.grid(alpha=0.3)
    fig.suptitle("Calibration sensitivity: the move of the median r (red: the interval excludes 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the sweep folder (a base row and its variants)")
    args = parser.parse_args(argv)
    rows = read(args.folder)
    result = {"moves": moves(rows), "calibrated": {name: row["calibrated"] for name, row in rows.items()},
              "bootstrap": {"resamples": RESAMPLES, "level": 0.95, "seed": 0}}  # fmt: skip
    command = f"python experiments/sensitivity_report.py {args.folder}"
    (args.folder / "sensitivity.json").write_text(json.dumps({**result, "command": command}, indent=1) + "\n")
    (args.folder / "sensitivity.md").write_text(markdown(result, command))
    if result["moves"]:
        figure(result, args.folder / "sensitivity.png")
    print((args.folder / "sensitivity.md").read_text())
    return result


if __name__ == "__main__":
    main()
