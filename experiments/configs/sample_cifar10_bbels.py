"""Class-conditional bbELS on CIFAR-10 with the published zero-padded ResNet scales.

Needs the CIFAR-10 training set: prepared in tfds, or a directory with the python pickles
(``--data-dir DIR``, DIR holding data_batch_1..5 or cifar-10-batches-py/). No offline package ships it.

    elsjax sample --config experiments/configs/sample_cifar10_bbels.py --data-dir ~/data/cifar10
"""

from elsjax.config import sample_config


def get_config():
    config = sample_config()
    config.kind = "bbels"
    config.dataset = "cifar10"
    config.scales = "CIFAR10_ResNet_zeros_conditional"
    config.conditional = True
    config.limit = 5000
    config.n_seeds = 10
    config.out_dir = "runs/sample_cifar10_bbels"
    return config
