"""The paper's unet on mnist (docs/maths.md §9.2-9.4): zero padding, unconditional, 300 epochs at batch 128 (140700 steps).

Hours on a GPU, not for a CPU.

    elsjax train --config experiments/configs/train_paper_unet_mnist.py
"""

from elsjax.config import paper_train_config


def get_config():
    return paper_train_config("unet", "mnist", conditional=False)
