"""CPU-scale MNIST UNet on the first 2,000 digits: the net of the MNIST UNet CPU-scale evaluation row.

``train_mnist_unet_cpu.py`` (widths 16/32/64, embedding 64, 3,600 steps of batch 64 at 2e-3 x0.9995 per step)
on a 2,000-image training set, the one its score machines are built on.

    elsjax train --config experiments/configs/train_mnist_unet_n2000_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_unet_cpu.py"))
    config.limit = 2000
    config.out_dir = "runs/train_mnist_unet_n2000_cpu"
    return config
