"""CPU-scale MNIST ResNet (zero padding, unconditional): trains on 2 CPU cores in about 20 minutes.

Narrower than the paper's net (width 32 instead of 256) but with the same depth, kernels and padding, so the
receptive field is the paper's 17x17. To fit a CPU budget it takes 1,800 steps of batch 64 on the first 10,000
MNIST training images (about 11.5 epochs) with a 10x larger learning rate than the paper's (1e-3, x0.9997 per
step); everything else is docs/maths.md §9.4.

    elsjax train --config experiments/configs/train_mnist_resnet_cpu.py
"""

from elsjax.config import train_config


def get_config():
    config = train_config()
    config.arch = "resnet"
    config.width = 32
    config.emb_dim = 32
    config.num_layers = 6
    config.padding = "zeros"
    config.conditional = False
    config.dataset = "mnist"
    config.limit = 10000
    config.batch_size = 64
    config.learning_rate = 1e-3
    config.lr_decay = 0.9997
    config.num_steps = 1800
    config.checkpoint_every_s = 120.0
    config.n_samples = 20
    config.out_dir = "runs/train_mnist_resnet_cpu"
    return config
