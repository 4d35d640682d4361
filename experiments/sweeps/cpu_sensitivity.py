"""Calibration sensitivity: how far the CPU-scale MNIST ResNet row's median r moves when only its calibration, or
the index convention of the scales, changes. Every row is ``cpu_scale.py``'s ``mnist_resnet_zeros`` (the same net,
machines and data) evaluated on the same 50 seeds (evaluation seed 1, as that row's), and differs in one thing:

* ``base``: that row itself (copy its finished stages from ``experiments/results/cpu_scale/mnist_resnet_zeros``);
* ``calibration_seed100``: both calibrations from other seeds (seed 100 instead of 0);
* ``calibration_20seeds``: both calibrations from 20 seeds instead of 10;
* ``ls_ks_to_31``: the LS candidates widened from 3..17 to 3..31;
* ``corrected``: the base's own calibrated and published scales sampled with the corrected index convention
  (``scales[i-1]`` at ``t = i/n``, docs/maths.md §6.2) instead of the authors'.

The LS ceiling binds little on that row (1 of its 200 calibrated choices is 17). It binds most on the Fashion-MNIST
ResNet (``fmnist_resnet_zeros_conditional``: 60% of its seeds chose 17 at t = 0.95), so the wider list is tried there
too, against that row itself:

* ``fmnist_base``: ``cpu_scale.py``'s Fashion-MNIST ResNet row (copy its finished stages);
* ``fmnist_ls_ks_to_31``: its LS candidates widened to 3..31.

A row's stages that equal its base's (``ls_ks_to_31``'s bbELS calibration, ``corrected``'s two, and
``fmnist_ls_ks_to_31``'s bbELS calibration) are copies of the base's: copy them in and the sweep reuses them. The
evaluations take every machine part that another row computed (``parts_from``), so a row computes only the machines
its change touches. Then::

    elsjax sweep --config experiments/sweeps/cpu_sensitivity.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("cpu_scale.py"))
    rows = {r["name"]: r for r in config.rows}
    same_evaluation = {**rows["mnist_resnet_zeros"], "evaluate_seed": 1}  # the base row's evaluation seeds (seed 0 + 1)
    fmnist = {**rows["fmnist_resnet_zeros_conditional"], "evaluate_seed": 1}
    config.out_dir = "experiments/results/cpu_sensitivity"
    config.rows = [
        {**same_evaluation, "name": "base"},
        {**same_evaluation, "name": "calibration_seed100", "seed": 100},
        {**same_evaluation, "name": "calibration_20seeds", "calibrate_seeds": 20},
        {**same_evaluation, "name": "ls_ks_to_31", "ls_ks": tuple(range(3, 32, 2))},
        {**same_evaluation, "name": "corrected", "convention": "corrected"},
        {**fmnist, "name": "fmnist_base"},
        {**fmnist, "name": "fmnist_ls_ks_to_31", "ls_ks": tuple(range(3, 32, 2))},
    ]
    return config
