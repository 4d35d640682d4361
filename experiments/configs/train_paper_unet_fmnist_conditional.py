"""The paper's unet on fashion_mnist (SPEC 4.2-4.5): zero padding, class-conditional, 300 epochs at batch 128 (140700 steps).

Hours on a GPU, not for a CPU.

    elsjax train --config experiments/configs/train_paper_unet_fmnist_conditional.py
"""

from elsjax.config import train_config


def get_config():
    config = train_config()  # the paper's optimiser: AdamW 1e-4, x0.999965 per step, batch 128, no EMA
    config.arch = "unet"
    config.width = 64
    config.num_layers = 3
    config.emb_dim = 256
    config.padding = "zeros"
    config.conditional = True
    config.dataset = "fashion_mnist"
    config.limit = 0
    config.num_steps = 140700
    config.out_dir = "runs/paper_unet_fmnist_conditional"
    return config
