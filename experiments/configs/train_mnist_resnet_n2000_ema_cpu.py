"""The CPU-scale MNIST ResNet of ``train_mnist_resnet_n2000_cpu.py`` with an EMA of its weights (decay 0.999).

Not the paper's procedure (the paper keeps no EMA): this run asks whether a moving average of the weights steadies
the brightness swings and the agreement across checkpoints that the raw weights show. Training seed 0, the same
recipe, data order and noise as the committed ``mnist_resnet_zeros_n2000_cpu`` net: the EMA is updated after each
optimiser step and leaves the raw trajectory unchanged, so this run's raw weights are that net's, its ``loss.csv``
equals that net's, and each checkpoint adds only the averaged weights (``net_weights="ema"`` in a sweep row or
``--net-weights ema`` on the command line). The average's half-life is about 690 steps.

    elsjax train --config experiments/configs/train_mnist_resnet_n2000_ema_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_resnet_n2000_cpu.py"))
    config.ema_decay = 0.999
    config.out_dir = "experiments/checkpoints/mnist_resnet_zeros_n2000_ema_cpu"
    return config
