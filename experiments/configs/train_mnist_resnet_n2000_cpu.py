"""CPU-scale MNIST ResNet (zeros) on the first 2,000 digits: the net of the CPU-scale evaluation row.

The MNIST ResNet preset (``train_mnist_resnet_cpu.py``: width 32, the paper's depth, kernels and zero padding,
receptive field 17, batch 64, learning rate 1e-3 x0.9997 per step) on a 2,000-image training set, so that the
score machines built on exactly the net's training set are affordable on 2 CPU cores (a bbELS sample costs
about linearly in N). 3,600 steps (115 epochs), with a checkpoint kept every 600 steps for the study of
agreement against training budget.

    elsjax train --config experiments/configs/train_mnist_resnet_n2000_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_resnet_cpu.py"))
    config.limit = 2000
    config.num_steps = 3600
    config.checkpoint_every_steps = 600
    config.keep_checkpoints = 6
    config.out_dir = "runs/train_mnist_resnet_n2000_cpu"
    return config
