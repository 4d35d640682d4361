"""CPU-scale CIFAR-10 UNet (class-conditional): the MNIST UNet preset on CIFAR-10's 32x32 colour images.

The same net, optimiser and budget as ``train_mnist_unet_cpu.py`` (widths 16/32/64, 3,600 steps of batch 64 on the
first 10,000 training images, learning rate 2e-3 x0.9995 per step), class-conditional as the paper's CIFAR-10
nets. CIFAR-10 has no offline copy here: fetch it once with ``--download`` (tensorflow-datasets) or point
``--data-dir`` at a prepared one. Not run on the project machine (no network there), so its time and loss are
not measured; expect colour blobs rather than objects at this budget.

    elsjax train --config experiments/configs/train_cifar10_unet_cpu.py --download
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_unet_cpu.py"))
    config.conditional = True
    config.dataset = "cifar10"
    config.out_dir = "runs/train_cifar10_unet_cpu"
    return config
