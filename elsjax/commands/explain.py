"""``elsjax explain``: patch provenance of machine samples (:mod:`elsjax.jobs.explain`).

Example (a tiny user-directory dataset; see ``tests/test_cli.py``)::

    elsjax explain --dataset mnist --data-dir DIR --limit 40 --scales 3,3,3,3 --n-seeds 2 --out-dir runs/why
"""

from __future__ import annotations

from elsjax import commands
from elsjax import config as config_lib

ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides
COMPILES = True  # the command line keeps compiled programs on disk (see elsjax.cli.enable_compilation_cache)


def summary(record: dict, cfg) -> str:
    last = record["steps"][-1]
    lines = [
        f"wrote {cfg.out_dir}/: {', '.join(record['figures'])}, provenance.npz, config.json, record.json",
        f"data: {record['data']['source']}, {record['data']['subset']} ({record['data']['num_images']} images)",
        f"last step (t = {last['t']:.2f}): mean entropy {', '.join(f'{v:.3f}' for v in last['mean_entropy'])} nats; "
        f"distinct source images {', '.join(map(str, last['distinct_sources']))}",
    ]
    if "stored_samples_max_abs_diff" in record:
        lines.append(f"recomputed samples vs {cfg.samples}: max |diff| {record['stored_samples_max_abs_diff']:.2g}")
    lines.append(f"time: {record['timings']['total_s']:.1f} s (sampling {record['timings']['sample_s']:.1f} s)")
    return "\n".join(lines)


add_arguments, run = commands.job_command(config_lib.EXPLAIN_FIELDS, "explain", summary)
