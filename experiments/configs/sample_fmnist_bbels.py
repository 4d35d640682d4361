"""Class-conditional bbELS on Fashion-MNIST with the published ResNet schedule: the quick-start run.

One seed per class from the first 1,000 training images (about 100 per class; docs/maths.md §1.3 rule: first M images,
then the class filter). A few minutes on 2 CPU cores.

    elsjax sample --config experiments/configs/sample_fmnist_bbels.py --config.n_seeds=20
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
    config.seed = 0
    config.out_dir = "runs/sample_fmnist_bbels"
    return config
