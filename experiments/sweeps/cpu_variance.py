"""Training-run variance: the CPU-scale MNIST ResNet (zeros, first 2,000 digits) trained three times, with training
seeds 0, 1 and 2, each run evaluated at its checkpoints 2,400, 3,000 and 3,600, each checkpoint with its own bbELS
and LS calibration (10 seeds), 20 evaluation seeds as in ``cpu_budget.py`` (the calibration and evaluation seeds are
the same for every run, so the rows differ only in the net).

Seed 0 is the committed net of the ``cpu_scale.py`` row (``experiments/checkpoints/mnist_resnet_zeros_n2000_cpu``);
seeds 1 and 2 are the same config trained with ``--seed S`` (checkpoints every 600 steps, all six kept)::

    elsjax train --config experiments/configs/train_mnist_resnet_n2000_cpu.py --seed S \\
        --out-dir experiments/checkpoints/mnist_resnet_zeros_n2000_seedS_cpu

Every row carries its training seed in ``train_overrides``, so a sweep that finds no checkpoint in a row's ``net``
trains that net there first (the same run). The steps are explicit (a directory still training holds only earlier
checkpoints), except seed 0's last one: there the row is the ``cpu_scale`` row's own net (``net_step`` 0, the newest),
so its calibrations are the same runs. Seed 0's rows at steps 2,400 and 3,600 are ``cpu_budget.py``'s rows of the same
name up to the seed suffix (the same net, step, calibrations and 20 evaluation seeds): copy those row directories
from ``experiments/results/cpu_budget`` (or, for step 3,600, the calibrations from
``experiments/results/cpu_scale/mnist_resnet_zeros``) and the sweep reuses them rather than recomputing::

    elsjax sweep --config experiments/sweeps/cpu_variance.py --out-dir experiments/results/cpu_variance
"""

from pathlib import Path

from elsjax.config import load_file

SEEDS = (0, 1, 2)  # training seeds (train_config's `seed`: initialisation, data order and noise)
STEPS = (2400, 3000, 3600)  # of 3,600 (train_mnist_resnet_n2000_cpu.py keeps a checkpoint every 600 steps)
CHECKPOINTS = "experiments/checkpoints"


def net(seed: int) -> str:
    """Where training run ``seed`` lives: seed 0 is the committed cpu_scale net."""
    return f"{CHECKPOINTS}/mnist_resnet_zeros_n2000_cpu" if seed == 0 else (
        f"{CHECKPOINTS}/mnist_resnet_zeros_n2000_seed{seed}_cpu")  # fmt: skip


def _net_step(seed: int, step: int) -> int:
    # Seed 0's last checkpoint is the cpu_scale row's net as that row names it (net_step 0), so that its calibrations
    # (and cpu_budget's step-3600 row) are the same runs and are reused.
    return 0 if (seed, step) == (0, STEPS[-1]) else step


def get_config():
    config = load_file(Path(__file__).with_name("cpu_scale.py"))
    (row,) = [r for r in config.rows if r["name"] == "mnist_resnet_zeros"]
    config.out_dir = "experiments/results/cpu_variance"
    config.rows = [
        {**row, "name": f"mnist_resnet_zeros_seed{seed}_step{step}", "net": net(seed),
         "train_overrides": {"seed": seed}, "net_step": _net_step(seed, step), "evaluate_seeds": 20}
        for seed in SEEDS
        for step in STEPS
    ]  # fmt: skip
    return config
