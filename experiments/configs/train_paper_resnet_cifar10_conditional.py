"""The paper's resnet on cifar10 (docs/maths.md §9.2-9.4): zero padding, class-conditional, 300 epochs at batch 128 (117300 steps).

Hours on a GPU, not for a CPU.

    elsjax train --config experiments/configs/train_paper_resnet_cifar10_conditional.py
"""

from elsjax.config import paper_train_config


def get_config():
    return paper_train_config("resnet", "cifar10", conditional=True)
