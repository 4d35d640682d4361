"""Draws the ``comparison.png`` of finished evaluations again from their ``samples.npz``, as the evaluate job draws
it today (:func:`elsjax.jobs.evaluate.redraw_comparison`): for results written before a change to the figure, such
as the marks on a net's out-of-range pixels. Every evaluation folder (one that holds ``samples.npz`` and
``summary.json``) under the given folders is redrawn; nothing else is touched.

    python experiments/redraw_comparisons.py experiments/results/cpu_scale experiments/results/cpu_unet_sa
"""

from __future__ import annotations

import argparse
from pathlib import Path

from elsjax.jobs import evaluate as evaluate_job


def evaluations(folders) -> list[Path]:
    """The evaluation folders under ``folders``, sorted."""
    found = {p.parent for f in folders for p in Path(f).rglob("samples.npz") if (p.parent / "summary.json").exists()}
    return sorted(found)


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    missing = [f for f in args.folders if not Path(f).is_dir()]
    if missing:
        raise SystemExit(f"redraw_comparisons: no such folder {missing[0]!r}")
    drawn = [evaluate_job.redraw_comparison(folder) for folder in evaluations(args.folders)]
    for path in drawn:
        print(f"redrew {path}")
    return drawn


if __name__ == "__main__":
    main()
