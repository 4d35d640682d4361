"""``elsjax train``: trains a convolutional diffusion network (MinimalResNet or MinimalUNet) in a run directory
(:mod:`elsjax.jobs.train`). Running the same command again resumes from the newest checkpoint.

Example (the CPU-scale MNIST preset)::

    elsjax train --config experiments/configs/train_mnist_resnet_cpu.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from elsjax import commands
from elsjax import config as config_lib

HELP = "train a convolutional diffusion network"
ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands.config_flags(parser, config_lib.TRAIN_FIELDS)


def run(args: argparse.Namespace) -> int:
    from elsjax.jobs import train

    cfg = commands.resolved(config_lib.train_config(), args)
    record = train.run(cfg)
    out = Path(cfg.out_dir)
    timings = record["timings"]
    print(f"trained {record['spec']['arch']} ({record['param_count']:,} parameters) to step {record['steps']}: "
          f"final loss {record['final_loss']:.4f} (mean of the last {record['final_loss_window']} steps)")  # fmt: skip
    print(f"time: {timings['total_s']:.1f} s ({timings['steps_run']} steps in {timings['train_s']:.1f} s)")
    print(f"wrote {out}/: config.json, checkpoints/, loss.csv, loss.png, samples.png, samples.npz, record.json")
    return 0
