"""The CPU-scale Fashion-MNIST UNet+SA of ``train_fmnist_unet_sa_cpu.py`` trained on to 7,200 steps of batch 32:
230,400 images, the budget of the plain UNet row's net (3,600 steps of batch 64), so that the two differ in the
architecture rather than in how long they trained. The recipe is unchanged (the learning rate decays per step, so
the first 800 steps are that run's, and a copy of its directory resumes from its step 800).

At about 3.8 s of CPU time per step (the UNet+SA preset's measurement) the 6,400 further steps take about 7 hours of
one core; the run checkpoints every 5 minutes and resumes.

    cp -r experiments/checkpoints/fmnist_unet_sa_conditional_cpu experiments/checkpoints/fmnist_unet_sa_conditional_long_cpu
    elsjax train --config experiments/configs/train_fmnist_unet_sa_long_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_fmnist_unet_sa_cpu.py"))
    config.num_steps = 7200
    config.checkpoint_every_s = 300.0
    config.checkpoint_every_steps = 1200
    config.keep_checkpoints = 3
    config.out_dir = "experiments/checkpoints/fmnist_unet_sa_conditional_long_cpu"
    return config
