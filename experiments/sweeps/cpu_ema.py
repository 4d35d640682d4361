"""An EMA of the weights (not the paper's procedure) against the raw weights, at CPU scale: does the moving average
steady the agreement across checkpoints that the raw weights of the MNIST ResNet show?

Rows ``mnist_resnet_zeros_emarun_{raw,debiased}_step{T}`` at checkpoints 2,400, 3,000 and 3,600, each with its own
bbELS and LS calibration (10 seeds) and 20 evaluation seeds, as ``experiments/sweeps/cpu_variance.py``'s rows (the
same calibration and evaluation seeds):

* ``raw``: the raw weights of ``experiments/configs/train_mnist_resnet_n2000_ema_cpu.py`` (the MNIST ResNet row's
  recipe, training seed 0). They are not those of the committed seed-0 net (that run was trained on another CPU and
  parted from this one by float32 rounding; see the train config), so they are another training run of the same
  configuration too;
* ``debiased``: the debiased EMA (decay 0.999, ``ema_debias``) of
  ``experiments/configs/train_mnist_resnet_n2000_ema_debias_cpu.py``, the same run with that average: its losses
  equal the EMA run's bit for bit, so its raw weights are the ``raw`` rows' and a pair differs only in the weights.

The plain EMA (started from the initial weights, no debiasing) has no rows: its samples are dark or nearly empty at
every checkpoint up to 3,600 (``experiments/results/cpu_ema/net_drift.txt``), where the debiased average's hold
the data's brightness (``net_drift_debias.txt``). Every EMA row is labelled EMA.

The IS and published-scale machines do not depend on the net: every row takes them from the cpu_variance rows'
evaluations (``parts_from``), which computed them on the same digits and seeds.

A sweep that finds a net unfinished trains it first (the same run)::

    elsjax sweep --config experiments/sweeps/cpu_ema.py
"""

from pathlib import Path

from elsjax.config import load_file

STEPS = (2400, 3000, 3600)  # as cpu_variance.py's
# Its nets trained on the same digits and evaluated on the same seeds: their IS and published-scale machines are these.
VARIANCE_EVALUATIONS = "experiments/results/cpu_variance/*/evaluate"
CHECKPOINTS = "experiments/checkpoints"
CONFIGS = "experiments/configs"
# weights -> (net, its training config, which of its weights)
RUNS = {
    "raw": ("mnist_resnet_zeros_n2000_ema_cpu", "train_mnist_resnet_n2000_ema_cpu.py", "raw"),
    "debiased": ("mnist_resnet_zeros_n2000_ema_debias_cpu", "train_mnist_resnet_n2000_ema_debias_cpu.py", "ema"),
}


def get_config():
    config = load_file(Path(__file__).with_name("cpu_scale.py"))
    (row,) = [r for r in config.rows if r["name"] == "mnist_resnet_zeros"]
    config.out_dir = "experiments/results/cpu_ema"
    config.rows = [
        {**row, "name": f"mnist_resnet_zeros_emarun_{label}_step{step}", "net": f"{CHECKPOINTS}/{net}",
         "net_step": step, "net_weights": weights, "train_config": f"{CONFIGS}/{train}", "evaluate_seeds": 20,
         "parts_from": (VARIANCE_EVALUATIONS,)}
        for step in STEPS
        for label, (net, train, weights) in RUNS.items()
    ]  # fmt: skip
    return config
