"""The paper's UNet with self-attention at CPU scale, beside the plain UNet: does attention lower the agreement, as
the paper found on CIFAR-10 (its UNet+SA: median r 0.77 against 0.90 for its plain UNet, Table 1)?

Row ``fmnist_unet_sa_conditional``: the class-conditional Fashion-MNIST UNet+SA of
``experiments/configs/train_fmnist_unet_sa_cpu.py`` (the paper's layout at width 8, trained on the plain UNet row's
data: the first 10,000 Fashion-MNIST images), calibrated and evaluated exactly as ``cpu_scale.py``'s
``fmnist_unet_conditional`` row (UNet candidates k = 3..27, 50 evaluation seeds, the published scales of the paper's
Fashion-MNIST UNet beside; none are published for a Fashion-MNIST UNet+SA, and the paper's CIFAR-10 UNet+SA rows
reused its CIFAR-10 ResNet's). Its ``row.json`` names the architecture (``key``: fashion_mnist, unet_sa, zeros,
conditional). The plain UNet row is ``cpu_scale.py``'s own, so that the table holds both: copy its finished stages
from ``experiments/results/cpu_scale/fmnist_unet_conditional`` and the sweep reuses them rather than recomputing.

The UNet+SA trained for 800 steps of batch 32 where the plain UNet row's net trained 3,600 of batch 64, so a third
row, ``fmnist_unet_conditional_800x32``, is the plain UNet on the UNet+SA's budget
(``experiments/configs/train_fmnist_unet_800x32_cpu.py``): beside it, the UNet+SA row differs in the attention alone.

A sweep that finds no checkpoint in a row's ``net`` trains it there first (the UNet+SA about 30-40 minutes on 2
cores, the budget-matched UNet about 5)::

    elsjax sweep --config experiments/sweeps/cpu_unet_sa.py --out-dir experiments/results/cpu_unet_sa
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("cpu_scale.py"))
    (unet,) = [r for r in config.rows if r["name"] == "fmnist_unet_conditional"]
    config.out_dir = "experiments/results/cpu_unet_sa"
    config.rows = [
        unet,
        {**unet, "name": "fmnist_unet_sa_conditional", "net": "experiments/checkpoints/fmnist_unet_sa_conditional_cpu",
         "train_config": "experiments/configs/train_fmnist_unet_sa_cpu.py"},
        {**unet, "name": "fmnist_unet_conditional_800x32",
         "net": "experiments/checkpoints/fmnist_unet_conditional_800x32_cpu",
         "train_config": "experiments/configs/train_fmnist_unet_800x32_cpu.py"},
    ]  # fmt: skip
    return config
