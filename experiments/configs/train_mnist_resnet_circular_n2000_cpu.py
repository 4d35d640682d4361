"""CPU-scale circular MNIST ResNet on the first 2,000 digits: the net of the circular CPU-scale evaluation row.

``train_mnist_resnet_n2000_cpu.py`` with circular padding in every convolution (the paper's circular ResNet,
whose matching machine is the ELS), 1,800 steps.

    elsjax train --config experiments/configs/train_mnist_resnet_circular_n2000_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_resnet_n2000_cpu.py"))
    config.padding = "circular"
    config.num_steps = 1800
    config.checkpoint_every_steps = 0
    config.keep_checkpoints = 2
    config.out_dir = "runs/train_mnist_resnet_circular_n2000_cpu"
    return config
