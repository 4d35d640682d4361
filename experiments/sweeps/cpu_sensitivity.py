"""Calibration sensitivity: how far the CPU-scale MNIST ResNet row's median r moves when only its calibration, or
the index convention of the scales, changes. Every row is ``cpu_scale.py``'s ``mnist_resnet_zeros`` (the same net,
machines and data) evaluated on the same 50 seeds (evaluation seed 1, as that row's), and differs in one thing:

* ``base``: that row itself (copy its finished stages from ``experiments/results/cpu_scale/mnist_resnet_zeros``);
* ``calibration_seed100``: both calibrations from other seeds (seed 100 instead of 0);
* ``calibration_20seeds``: both calibrations from 20 seeds instead of 10;
* ``ls_ks_to_31``: the LS candidates widened from 3..17 to 3..31 (60% of the base LS calibration's seeds chose 17,
  the ceiling, at the last step);
* ``corrected``: the base's own calibrated and published scales sampled with the corrected index convention
  (``scales[i-1]`` at ``t = i/n``, docs/maths.md §6.2) instead of the authors'.

A row's stages that equal the base's (``ls_ks_to_31``'s bbELS calibration, ``corrected``'s two) are copies of the
base's: copy them in and the sweep reuses them. Then::

    elsjax sweep --config experiments/sweeps/cpu_sensitivity.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("cpu_scale.py"))
    (row,) = [r for r in config.rows if r["name"] == "mnist_resnet_zeros"]
    same_evaluation = {**row, "evaluate_seed": 1}  # the base row's evaluation seeds (its seed 0 + 1)
    config.out_dir = "experiments/results/cpu_sensitivity"
    config.rows = [
        {**same_evaluation, "name": "base"},
        {**same_evaluation, "name": "calibration_seed100", "seed": 100},
        {**same_evaluation, "name": "calibration_20seeds", "calibrate_seeds": 20},
        {**same_evaluation, "name": "ls_ks_to_31", "ls_ks": tuple(range(3, 32, 2))},
        {**same_evaluation, "name": "corrected", "convention": "corrected"},
    ]
    return config
