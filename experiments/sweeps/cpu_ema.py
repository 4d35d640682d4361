"""An EMA of the weights (not the paper's procedure) against the raw weights, at CPU scale: does the moving average
steady the agreement across checkpoints that the raw weights of the MNIST ResNet show?

Rows ``mnist_resnet_zeros_emarun_{raw,ema}_step{T}``: the net of
``experiments/configs/train_mnist_resnet_n2000_ema_cpu.py`` (the MNIST ResNet row's recipe, training seed 0, with
an EMA of decay 0.999), read at checkpoints 2,400, 3,000 and 3,600 once with its raw weights and once with their
moving average (``net_weights``), each with its own bbELS and LS calibration (10 seeds) and 20 evaluation seeds, as
``experiments/sweeps/cpu_variance.py``'s rows (the same calibration and evaluation seeds). So each EMA row has a raw
row of the same run and checkpoint beside it, differing only in the weights. The raw weights are not those of the
committed seed-0 net (that run was trained on another CPU and parted from this one by float32 rounding; see the
train config), so they are another training run of the same configuration too. Every EMA row is labelled EMA.

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
        {**row, "name": f"mnist_resnet_zeros_emarun_{weights}_step{step}", "net": NET, "net_step": step,
         "net_weights": weights, "train_config": "experiments/configs/train_mnist_resnet_n2000_ema_cpu.py",
         "evaluate_seeds": 20}
        for step in STEPS
        for weights in ("ema", "raw")
    ]  # fmt: skip
    return config
