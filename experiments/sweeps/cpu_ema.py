"""An EMA of the weights (not the paper's procedure) against the raw weights, at CPU scale: does the moving average
steady the agreement across checkpoints that the raw weights of the MNIST ResNet show?

Rows ``mnist_resnet_zeros_ema_step{T}``: the net of ``experiments/configs/train_mnist_resnet_n2000_ema_cpu.py``
(training seed 0: the raw weights are those of the committed ``mnist_resnet_zeros_n2000_cpu`` net, and every
checkpoint adds their moving average with decay 0.999), read with ``net_weights="ema"`` at checkpoints 2,400, 3,000
and 3,600, each with its own bbELS and LS calibration (10 seeds) and 20 evaluation seeds. The raw weights of the
same checkpoints are the rows ``mnist_resnet_zeros_seed0_step{T}`` of ``experiments/sweeps/cpu_variance.py``: the
same calibration and evaluation seeds, so the two differ only in the weights. Every row here is labelled EMA.

A sweep that finds the net unfinished trains it first (the same run)::

    elsjax sweep --config experiments/sweeps/cpu_ema.py
"""

from pathlib import Path

from elsjax.config import load_file

STEPS = (2400, 3000, 3600)  # as cpu_variance.py's
NET = "experiments/checkpoints/mnist_resnet_zeros_n2000_ema_cpu"


def get_config():
    config = load_file(Path(__file__).with_name("cpu_scale.py"))
    (row,) = [r for r in config.rows if r["name"] == "mnist_resnet_zeros"]
    config.out_dir = "experiments/results/cpu_ema"
    config.rows = [
        {**row, "name": f"mnist_resnet_zeros_ema_step{step}", "net": NET, "net_step": step, "net_weights": "ema",
         "train_config": "experiments/configs/train_mnist_resnet_n2000_ema_cpu.py", "evaluate_seeds": 20}
        for step in STEPS
    ]  # fmt: skip
    return config
