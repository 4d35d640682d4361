"""``elsjax sample``: samples of a score machine on real data (:mod:`elsjax.jobs.sample`).

Example (a tiny user-directory dataset; see ``tests/test_cli.py``)::

    elsjax sample --dataset mnist --data-dir DIR --limit 40 --scales 3,3,3,3 --n-seeds 2 --out-dir runs/tiny
"""

from __future__ import annotations

import argparse
from pathlib import Path

from elsjax import commands
from elsjax import config as config_lib

ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides
COMPILES = True  # the command line keeps compiled programs on disk (see elsjax.cli.enable_compilation_cache)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands.config_flags(parser, config_lib.SAMPLE_FIELDS)


def run(args: argparse.Namespace) -> int:
    from elsjax.jobs import sample

    cfg = commands.resolved(config_lib.sample_config(), args)
    record = sample.run(cfg)
    if not commands.is_primary():  # in a multi-process run, process 0 reports (and writes)
        return 0
    out = Path(cfg.out_dir)
    print(f"wrote {', '.join(str(out / name) for name in sample.OUTPUT_FILES)}")
    print(f"data: {record['data']['source']}, {record['data']['subset']} ({record['data']['num_images']} images)")
    print(f"time: {record['timings']['total_s']:.1f} s (sampling {record['timings']['sample_s']:.1f} s)")
    return 0
