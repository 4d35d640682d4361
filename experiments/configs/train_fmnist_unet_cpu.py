"""CPU-scale Fashion-MNIST UNet (class-conditional): trains on 2 CPU cores in about 30 minutes.

The MNIST UNet preset (``train_mnist_unet_cpu.py``: widths 16/32/64, embedding 64, 3,600 steps of batch 64 on the
first 10,000 training images, learning rate 2e-3 x0.9995 per step) on Fashion-MNIST, with the class embedding. The
sample grid gives seed i the class i mod 10.

    elsjax train --config experiments/configs/train_fmnist_unet_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_unet_cpu.py"))
    config.conditional = True
    config.dataset = "fashion_mnist"
    config.out_dir = "runs/train_fmnist_unet_cpu"
    return config
