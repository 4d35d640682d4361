"""CPU-scale Fashion-MNIST ResNet (zero padding, class-conditional): trains on 2 CPU cores in about 20 minutes.

The MNIST CPU preset (``train_mnist_resnet_cpu.py``: width 32, the paper's depth, kernels and padding, 1,800 steps
of batch 64 on the first 10,000 training images, learning rate 1e-3 x0.9997 per step) on Fashion-MNIST, with the
class embedding. The sample grid gives seed i the class i mod 10.

    elsjax train --config experiments/configs/train_fmnist_resnet_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_resnet_cpu.py"))
    config.conditional = True
    config.dataset = "fashion_mnist"
    config.out_dir = "runs/train_fmnist_resnet_cpu"
    return config
