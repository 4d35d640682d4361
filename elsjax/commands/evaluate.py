"""``elsjax evaluate``: see :mod:`elsjax.jobs.evaluate`."""

from __future__ import annotations

import argparse

from elsjax import commands
from elsjax import config as config_lib

ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides
COMPILES = True  # the command line keeps compiled programs on disk (see elsjax.cli.enable_compilation_cache)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands.config_flags(parser, config_lib.evaluate_config(), help=config_lib.EVAL_HELP)


def run(args: argparse.Namespace) -> int:
    from elsjax.jobs import evaluate

    cfg = commands.resolved(config_lib.evaluate_config(), args)
    record = evaluate.run(cfg)
    if commands.is_primary():  # in a multi-process run, process 0 reports (and writes)
        print(summary(record, cfg))
    return 0


def summary(record: dict, cfg) -> str:
    lines = []
    for name, by_steps in record["median_r"].items():
        values = ", ".join(f"{r:.3f} (net {steps} steps)" if r is not None else f"undefined (net {steps} steps)"
                           for steps, r in by_steps.items())  # fmt: skip
        lines.append(f"median r {name}: {values}")
    for name, by_steps in record["frac_beats_ideal"].items():
        lines.append(f"{name} beats IS on: " + ", ".join(f"{f:.0%} (net {s} steps)" for s, f in by_steps.items()))
    lines.append(f"wrote {cfg.out_dir}/: summary.json, samples.npz, comparison.png, r_violin_net*.png, record.json")
    lines.append(f"time: {record['timings']['total_s']:.1f} s")
    return "\n".join(lines)
