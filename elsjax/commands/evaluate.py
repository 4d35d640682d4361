"""``elsjax evaluate``: see :mod:`elsjax.jobs.evaluate`."""

from __future__ import annotations

from elsjax import commands
from elsjax import config as config_lib

ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides
COMPILES = True  # the command line keeps compiled programs on disk (see elsjax.cli.enable_compilation_cache)


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


add_arguments, run = commands.job_command(config_lib.EVALUATE_FIELDS, "evaluate", summary)
