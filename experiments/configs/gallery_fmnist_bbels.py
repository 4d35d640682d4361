"""The gallery run (experiments/gallery.py): class-conditional bbELS on Fashion-MNIST, one seed per class.

The first 1,000 training images, the published FashionMNIST_ResNet_zeros_conditional schedule, seed 1.
"""

from elsjax.config import sample_config


def get_config():
    config = sample_config()
    config.kind = "bbels"
    config.dataset = "fashion_mnist"
    config.scales = "FashionMNIST_ResNet_zeros_conditional"
    config.conditional = True
    config.limit = 1000
    config.n_seeds = 10
    config.seed = 1
    config.out_dir = "runs/gallery"
    config.overwrite = True
    return config
