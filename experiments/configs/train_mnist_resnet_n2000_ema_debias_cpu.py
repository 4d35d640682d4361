"""The EMA run of ``train_mnist_resnet_n2000_ema_cpu.py`` with the debiased average (``ema_debias``).

An EMA of decay 0.999 started from the initial weights keeps a share 0.999^t of them (55% at step 600, 3% at 3,600),
and that run's averaged nets draw dark or nearly empty samples at every checkpoint. The debiased average weighs only
the weights the run visited (step t's decay is d (1 - d^(t-1)) / (1 - d^t)). Everything else is that run's recipe
(training seed 0, its data order and noise); the EMA does not enter the raw update, so on the same machine the raw
weights are that run's. Not the paper's procedure (the paper keeps no EMA).

    elsjax train --config experiments/configs/train_mnist_resnet_n2000_ema_debias_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_mnist_resnet_n2000_ema_cpu.py"))
    config.ema_debias = True
    config.out_dir = "experiments/checkpoints/mnist_resnet_zeros_n2000_ema_debias_cpu"
    return config
