"""Runs one benchmark from two checkouts of elsjax, alternately, in one run, and prints their times side by side.

Each round runs the benchmark script once from each checkout (a fresh process with that checkout first on the path),
in alternating order, so that load on the machine falls on both alike; the table gives, per row the benchmark prints,
the best time of each checkout over the rounds and their ratio.

    git worktree add /tmp/elsjax-before <commit>
    python experiments/side_by_side.py --before /tmp/elsjax-before --after . --rounds 3 \\
        -- experiments/bench.py --n 1000 5000 --k 3 5 9 --batch 1 16 --sample-n

The benchmark must accept ``--out FILE`` (JSON with a list ``evals`` of rows that have ``seconds_per_eval``, as
``experiments/bench.py`` writes, or with ``off_s``/``on_s``, as ``experiments/bench_provenance.py`` writes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

KEYS = ("N", "n", "kind", "k", "batch", "chunk")  # what identifies a row
TIMES = ("seconds_per_eval", "off_s", "on_s", "build_s")  # what is compared, where present


def run_once(checkout: Path, script: list[str], out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, str(checkout / script[0]), *script[1:], "--out", str(out)]
    subprocess.run(cmd, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def rows_of(result: dict) -> dict:
    rows = result.get("evals") or result.get("rows") or []
    return {tuple((key, row[key]) for key in KEYS if key in row): row for row in rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier code")
    parser.add_argument("--after", type=Path, default=Path("."), help="checkout of the later code")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write both checkouts' best times here (JSON)")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT ARGS (relative to each checkout)")
    args = parser.parse_args(argv)
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    best: dict[str, dict] = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                checkout = (args.before if side == "before" else args.after).resolve()
                result = run_once(checkout, script, Path(tmp) / f"{side}{r}.json")
                for key, row in rows_of(result).items():
                    kept = best[side].setdefault(key, dict(row))
                    for t in TIMES:
                        if t in row:
                            kept[t] = min(kept[t], row[t])
    print(f"{'row':<40} {'time':<18} {'before s':>10} {'after s':>10} {'after/before':>12}")
    for key, before in best["before"].items():
        after = best["after"].get(key)
        if after is None:
            continue
        label = " ".join(f"{k}={v}" for k, v in key)
        for t in TIMES:
            if t in before and t in after:
                print(f"{label:<40} {t:<18} {before[t]:>10.4f} {after[t]:>10.4f} {after[t] / before[t]:>12.3f}")
    if args.out:
        rows = [
            {"row": dict(key), "before": best["before"][key], "after": best["after"].get(key)} for key in best["before"]
        ]
        args.out.write_text(json.dumps({"rounds": args.rounds, "script": script, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
