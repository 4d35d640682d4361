"""Two nets from the same noise: where each departs from its patch mosaic, and whether one agrees less.

Reads two finished rows of a sweep folder whose evaluations used the same seeds (the same initial noise and, for
class-conditional rows, the same labels), for example the plain UNet and the UNet with self-attention of
``experiments/sweeps/cpu_unet_sa.py``, and writes into the sweep folder:

* ``pair_A_vs_B.md`` / ``.json``: per machine and net step count, each row's median r with its seed-bootstrap 95%
  interval (:func:`elsjax.metrics.bootstrap_median`, 20,000 resamples) and the paired difference B - A over the
  seeds (median, interval, the fraction of seeds where B agrees less). The interval is over evaluation seeds only:
  each row is one training run of its net, so it says nothing of another run;
* ``pair_A_vs_B.png``: for a few seeds (the three where B agrees least with its machine, and three near B's median),
  each net's sample, its calibrated machine's sample from the same noise, and where they differ (|net - machine|).
  The display clips to [-1, 1]: the net's pixels beyond +-1.1 are outlined in red, and their share is printed on its
  sample.

    python experiments/pair_compare.py experiments/results/cpu_unet_sa fmnist_unet_conditional \\
        fmnist_unet_sa_conditional --labels UNet UNet+SA
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from elsjax import figures, metrics

RESAMPLES = 20_000
SHOWN = 3  # seeds shown per group (worst, and near the median, of row B)
# A sample whose mean |difference| between horizontal neighbours (display-clipped) exceeds this is pixel noise, not
# an image: the plain Fashion-MNIST UNet's samples and the machines' sit at 0.13-0.14, uniform noise in [-1, 1] at 2/3.
NOISE_ROUGHNESS = 0.5


def load_row(folder: Path, name: str) -> dict:
    """A finished row's evaluation: its summary and its samples (``evaluate/summary.json``, ``samples.npz``)."""
    evaluation = folder / name / "evaluate"
    summary = evaluation / "summary.json"
    if not summary.exists():
        raise SystemExit(f"pair_compare: {summary} not found: the row {name!r} has no finished evaluation")
    with np.load(evaluation / "samples.npz") as samples:
        return {"summary": json.loads(summary.read_text()), "samples": {k: samples[k] for k in samples.files}}


def check_same_seeds(a: dict, b: dict, names: tuple[str, str]) -> None:
    """Both rows started from the same noise (and labels): otherwise a per-seed pairing means nothing."""
    for key in ("seeds", "labels"):
        if key in a["samples"] and not np.array_equal(a["samples"][key], b["samples"].get(key)):
            raise SystemExit(f"pair_compare: rows {names[0]!r} and {names[1]!r} were evaluated from different {key}")


def machine_of(row: dict) -> str:
    """The row's calibrated (E)LS machine: the evaluation's first machine (bbels or els)."""
    return row["summary"]["machines"][0]


def compare(a: dict, b: dict) -> dict:
    """Medians with intervals per row, and the paired differences B - A, per machine kind and net step count."""
    out = {}
    kinds = {"(E)LS": (machine_of(a), machine_of(b)), "LS": ("ls", "ls"), "IS": ("ideal", "ideal")}
    for kind, (ma, mb) in kinds.items():
        for steps in a["summary"]["per_seed"]["r"][ma]:
            ra = np.asarray(a["summary"]["per_seed"]["r"][ma][steps], np.float64)
            rb = np.asarray(b["summary"]["per_seed"]["r"][mb][steps], np.float64)
            both = np.isfinite(ra) & np.isfinite(rb)
            interval = lambda v: metrics.bootstrap_median(v, seed=0, n_resamples=RESAMPLES)._asdict()
            out.setdefault(kind, {})[steps] = {
                "A": interval(ra), "B": interval(rb), "B_minus_A": interval(rb[both] - ra[both]),
                "frac_B_lower": float(np.mean(rb[both] < ra[both])), "n_seeds": int(both.sum()),
            }  # fmt: skip
    return out


def roughness(x: np.ndarray) -> np.ndarray:
    """Per sample, the mean |difference| between horizontal neighbours of the display-clipped image."""
    return np.abs(np.diff(np.clip(np.asarray(x, np.float64), -1, 1), axis=2)).mean(axis=(1, 2, 3))


def net_samples(row: dict) -> dict:
    """What the net's own samples look like, per net step count: the median share of pixels beyond
    ``+-figures.VISIBLE_OVERSHOOT``, the median :func:`roughness` and the seeds that are pixel noise (above
    :data:`NOISE_ROUGHNESS`) in ``by_steps``; and the median roughness of its (E)LS machine's samples, for scale."""
    by_steps = {}
    for key in sorted(k for k in row["samples"] if k.startswith("net_")):
        x = row["samples"][key]
        rough = roughness(x)
        by_steps[key.removeprefix("net_")] = {
            "median_frac_out": float(np.median(figures.beyond_range(x).mean(axis=(1, 2)))),
            "median_roughness": float(np.median(rough)), "noise_seeds": int((rough > NOISE_ROUGHNESS).sum()),
            "n_seeds": len(x),
        }  # fmt: skip
    machine = float(np.median(roughness(row["samples"][f"machine_{machine_of(row)}"])))
    return {"by_steps": by_steps, "machine_median_roughness": machine}


def shown_seeds(r: np.ndarray) -> list[int]:
    """The seeds where ``r`` is lowest, then those nearest its median."""
    order = np.argsort(r)
    middle = len(r) // 2
    picked = list(order[:SHOWN]) + [int(i) for i in order[middle - SHOWN // 2 : middle - SHOWN // 2 + SHOWN]]
    return [int(i) for i in picked]


def write_figure(path: Path, a: dict, b: dict, labels: tuple[str, str], steps: str) -> list[int]:
    """The image grid (see the module docstring); returns the seeds shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rb = np.asarray(b["summary"]["per_seed"]["r"][machine_of(b)][steps])
    seeds = shown_seeds(rb)
    columns = []
    for row, label in zip((a, b), labels):
        net, machine = row["samples"][f"net_{steps}"], row["samples"][f"machine_{machine_of(row)}"]
        r = np.asarray(row["summary"]["per_seed"]["r"][machine_of(row)][steps])
        columns += [(f"{label} net", net, None, r), (f"{label} {machine_of(row)}", machine, None, None),
                    (f"|{label} net - {machine_of(row)}|", np.abs(net - machine), "diff", None)]  # fmt: skip
    fig, axes = plt.subplots(len(seeds), len(columns), figsize=(1.55 * len(columns), 1.6 * len(seeds) + 0.4),
                             squeeze=False)  # fmt: skip
    for j, (title, images, mode, r) in enumerate(columns):
        for i, seed in enumerate(seeds):
            ax, img = axes[i, j], np.asarray(images[seed], np.float32).mean(-1)
            if mode == "diff":
                ax.imshow(img, cmap="magma", vmin=0.0, vmax=2.0, interpolation="nearest")
            else:
                ax.imshow(np.clip(img, -1, 1), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
                if r is not None:  # the net's own out-of-range pixels, outlined where they overshoot visibly
                    out = figures.mark_out_of_range(ax, images[seed])
                    ax.text(0.02, 0.02, f"r={r[seed]:.2f}, {out:.0%} >{figures.VISIBLE_OVERSHOOT:g}", fontsize=5.5,
                            color="yellow", transform=ax.transAxes, bbox={"facecolor": "black", "alpha": 0.6, "pad": 0.5, "linewidth": 0})  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
            if j == 0:
                ax.set_ylabel(f"seed {seed}", fontsize=7)
    bound = figures.VISIBLE_OVERSHOOT
    fig.suptitle(f"Same noise, {steps} net steps: each net beside its calibrated machine (display clipped to "
                 f"[-1, 1]; red: net pixels beyond \u00b1{bound:g}; |diff| from 0 to 2)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return seeds


def markdown(result: dict, names: tuple[str, str], labels: tuple[str, str], command: str) -> str:
    fmt = lambda c: f"{c['value']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"
    lines = [f"# {labels[1]} against {labels[0]}, from the same noise", "",
             f"A = `{names[0]}` ({labels[0]}), B = `{names[1]}` ({labels[1]}). Median Pearson r between each net's "
             "sample and its own calibrated machine's, with the 95% seed-bootstrap interval; B - A is the median of "
             "the per-seed differences (same seeds, same noise). Each row is one training run of its net: the "
             "intervals cover evaluation seeds only.", "",
             "| machine | net steps | A | B | B - A | seeds where B < A | seeds |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for kind, by_steps in result["compare"].items():
        for steps, c in by_steps.items():
            lines.append(f"| {kind} | {steps} | {fmt(c['A'])} | {fmt(c['B'])} | {fmt(c['B_minus_A'])} | "
                         f"{c['frac_B_lower']:.2f} | {c['n_seeds']} |")  # fmt: skip
    lines += ["", f"The nets' own samples: the median share of pixels beyond +-{figures.VISIBLE_OVERSHOOT:g}, the median roughness "
              f"(mean |difference| between horizontal neighbours, display-clipped) and the seeds whose roughness "
              f"exceeds {NOISE_ROUGHNESS:g} (pixel noise, not an image), beside the (E)LS machine's median roughness.",
              "", "| net | net steps | pixels out | roughness | noise seeds | machine's roughness |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for label, quality in zip(labels, result["net_samples"]):
        for steps, q in quality["by_steps"].items():
            lines.append(f"| {label} | {steps} | {q['median_frac_out']:.0%} | {q['median_roughness']:.3f} | "
                         f"{q['noise_seeds']}/{q['n_seeds']} | {quality['machine_median_roughness']:.3f} |")  # fmt: skip
    lines += ["", f"Figure: `{result['figure']}` (seeds {result['seeds_shown']}).", "", f"Written by `{command}`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder holding both rows")
    parser.add_argument("row_a")
    parser.add_argument("row_b")
    parser.add_argument("--labels", nargs=2, default=None, help="short names for the two rows (figure, table)")
    parser.add_argument("--net-steps", default="150", help="the net's step count shown in the figure")
    args = parser.parse_args(argv)
    names = (args.row_a, args.row_b)
    labels = tuple(args.labels or names)
    a, b = load_row(args.folder, args.row_a), load_row(args.folder, args.row_b)
    check_same_seeds(a, b, names)
    stem = f"pair_{args.row_a}_vs_{args.row_b}"
    seeds = write_figure(args.folder / f"{stem}.png", a, b, labels, args.net_steps)
    result = {"rows": names, "labels": labels, "compare": compare(a, b), "net_samples": [net_samples(a), net_samples(b)],
              "figure": f"{stem}.png", "seeds_shown": seeds}  # fmt: skip
    command = "python experiments/pair_compare.py " + " ".join(
        [str(args.folder), *names, *(["--labels", *labels] if args.labels else []), "--net-steps", args.net_steps])  # fmt: skip
    (args.folder / f"{stem}.json").write_text(json.dumps({**result, "command": command}, indent=1) + "\n")
    (args.folder / f"{stem}.md").write_text(markdown(result, names, labels, command))
    print((args.folder / f"{stem}.md").read_text())
    return result


if __name__ == "__main__":
    main()
