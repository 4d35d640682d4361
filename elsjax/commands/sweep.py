"""``elsjax sweep``: rows of the paper's tables, trained, calibrated, evaluated and tabulated (:mod:`elsjax.sweeps`).

Example::

    elsjax sweep --config experiments/sweeps/cpu_scale.py --only fmnist_resnet_zeros_conditional
"""

from __future__ import annotations

import argparse

from elsjax import config as config_lib

ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides
COMPILES = True  # the command line keeps compiled programs on disk (see elsjax.cli.enable_compilation_cache)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from elsjax import sweeps

    config_lib.add_flags(parser, {k: f for k, f in sweeps.SWEEP_FIELDS.items() if k != "rows"})  # rows: the file's


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from elsjax import sweeps

    if not getattr(args, "config", None):
        raise ValueError("config: give a sweep file (e.g. --config experiments/sweeps/cpu_scale.py)")
    cfg = config_lib.resolve(sweeps.sweep_config(), args, args.extra)
    records = sweeps.run(cfg)
    print(f"{len(records)} row(s) done; wrote {Path(cfg.out_dir) / 'table.md'}")
    return 0
