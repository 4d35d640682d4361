"""A sweep to try `elsjax sweep` in minutes: one MNIST row on a committed net, few candidates, few seeds.

The committed MNIST ResNet trained on the first 2,000 digits (no training), its machines built on the first 500 of
them, bbELS and LS calibrated over k = 3, 7, 11, 15 from 2 seeds, then evaluated on 3 seeds against the net at 20
DDIM steps, beside the published MNIST_ResNet_zeros scales and the IS. The numbers mean little at this size (3
seeds); the point is the whole pipeline and its outputs (table.md, table.json, agreement.png, one run directory
per stage) in a few minutes (measured in the README, "`elsjax sweep`").

    elsjax sweep --config experiments/sweeps/tiny.py                 # writes runs/sweep_tiny/
"""

from elsjax.sweeps import sweep_config

KS = (3, 7, 11, 15)


def get_config():
    config = sweep_config()
    config.out_dir = "runs/sweep_tiny"
    config.rows = [
        dict(name="mnist_resnet_zeros_tiny", net="experiments/checkpoints/mnist_resnet_zeros_n2000_cpu",
             ks=KS, ls_ks=KS, published="MNIST_ResNet_zeros", calibrate_seeds=2, evaluate_seeds=3, net_steps=(20,),
             seeds_per_part=3, limit=500),
    ]  # fmt: skip
    return config
