"""Agreement against the net's training budget: the CPU-scale MNIST ResNet (zeros, first 2,000 digits) at several
checkpoints of one training run, each with its own calibration, evaluated like the rows of ``cpu_scale.py`` but with
20 seeds (the point is the trend, not the level); and the same run continued to twice its length.

    elsjax sweep --config experiments/sweeps/cpu_budget.py --out-dir experiments/results/cpu_budget
"""

from pathlib import Path

from elsjax.config import load_file

STEPS = (1200, 2400, 3600)  # of 3,600 (train_mnist_resnet_n2000_cpu.py); 600 and 3000 are kept too
# The same run continued from step 3,600 to 7,200 (its learning rate decaying on: 1e-3 x 0.9997 per step):
#   elsjax train --config experiments/configs/train_mnist_resnet_n2000_cpu.py \
#     --out-dir experiments/checkpoints/mnist_resnet_zeros_n2000_long_cpu --num-steps 7200
# after copying the step-3600 checkpoint and config.json of mnist_resnet_zeros_n2000_cpu into that directory.
LONG_NET, LONG_STEPS = "experiments/checkpoints/mnist_resnet_zeros_n2000_long_cpu", 7200


def _net_step(step: int) -> int:
    # The last checkpoint is the cpu_scale row's own net (net_step 0: the newest), so its calibrations, copied from
    # experiments/results/cpu_scale/mnist_resnet_zeros, are the same runs and are reused rather than recomputed.
    return 0 if step == STEPS[-1] else step


def get_config():
    config = load_file(Path(__file__).with_name("cpu_scale.py"))
    (row,) = [r for r in config.rows if r["name"] == "mnist_resnet_zeros"]
    config.out_dir = "experiments/results/cpu_budget"
    config.rows = [
        {**row, "name": f"mnist_resnet_zeros_step{step}", "net_step": _net_step(step), "evaluate_seeds": 20}
        for step in STEPS
    ] + [
        # Its step is explicit: a directory still training holds earlier checkpoints. A sweep that finds no
        # checkpoint there trains the whole 7,200 steps, which equals the resumed run (a resumed training is exact).
        {**row, "name": f"mnist_resnet_zeros_step{LONG_STEPS}", "net": LONG_NET, "net_step": LONG_STEPS,
         "train_overrides": {"num_steps": LONG_STEPS}, "evaluate_seeds": 20}
    ]  # fmt: skip
    return config
