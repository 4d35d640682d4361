"""CPU-scale Fashion-MNIST ResNet (zero padding, class-conditional): trains on 2 CPU cores in about 20 minutes.

Width 32 instead of the paper's 256, same depth, kernels and padding (receptive field 17x17); 1,800 steps of
batch 64 on the first 10,000 Fashion-MNIST training images with learning rate 1e-3 (x0.9997 per step). The sample
grid gives seed i the class i mod 10.

    elsjax train --config experiments/configs/train_fmnist_resnet_cpu.py
"""

from elsjax.config import train_config


def get_config():
    config = train_config()
    config.arch = "resnet"
    config.width = 32
    config.emb_dim = 32
    config.num_layers = 6
    config.padding = "zeros"
    config.conditional = True
    config.dataset = "fashion_mnist"
    config.limit = 10000
    config.batch_size = 64
    config.learning_rate = 1e-3
    config.lr_decay = 0.9997
    config.num_steps = 1800
    config.checkpoint_every_s = 120.0
    config.n_samples = 20
    config.out_dir = "runs/train_fmnist_resnet_cpu"
    return config
