"""The CPU-scale MNIST ResNet of ``train_mnist_resnet_n2000_cpu.py`` with an EMA of its weights (decay 0.999).

Not the paper's procedure (the paper keeps no EMA): this run asks whether a moving average of the weights steadies
the brightness swings and the agreement across checkpoints that the raw weights show. Training seed 0, the same
recipe, data order and noise as the committed ``mnist_resnet_zeros_n2000_cpu`` net. The EMA is updated after each
optimiser step and does not enter the raw update, so each checkpoint holds the run's raw weights and their moving
average, and the two are compared within this run (``net_weights="raw"`` or ``"ema"`` in a sweep row,
``--net-weights`` on the command line). The raw weights are not the committed seed-0 net's: that net was trained
on an earlier machine of this project (another CPU), whose float32 rounding first differs at step 7 (loss 0.809915
against 0.809916 here, with or without the EMA), after which the two trajectories part (loss at step 999: 0.0469
against 0.0442). The average's half-life is about 690 steps.

    elsjax train --config experiments/configs/train_mnist_resnet_n2000_ema_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_resnet_n2000_cpu.py"))
    config.ema_decay = 0.999
    config.out_dir = "experiments/checkpoints/mnist_resnet_zeros_n2000_ema_cpu"
    return config
