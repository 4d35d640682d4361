"""The paper's UNet+SA layout on cifar10 (docs/maths.md §9.5): width 64 (14.4M parameters), zero padding,
class-conditional, trained with elsjax's paper recipe (§9.4: 300 epochs at batch 128, 117300 steps).

The paper's UNet+SA row used a public pretrained model trained with another recipe (§9.5); this config trains the same
layout with the recipe of the paper's other nets. Hours on a GPU, not for a CPU.

    elsjax train --config experiments/configs/train_paper_unet_sa_cifar10_conditional.py
"""

from elsjax.config import paper_train_config


def get_config():
    return paper_train_config("unet_sa", "cifar10", conditional=True)
