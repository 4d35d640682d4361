"""The plain CPU-scale Fashion-MNIST UNet on the UNet+SA's training budget: the control of the attention row.

``train_fmnist_unet_cpu.py`` (the plain UNet row's net: same layout, data, class conditioning, learning rate and
seed) trained as ``train_fmnist_unet_sa_cpu.py`` is: 800 steps of batch 32 (25,600 images, 2.6 epochs) instead of
3,600 of batch 64. Beside the UNet+SA it separates what attention changes from what the shorter training does.

    elsjax train --config experiments/configs/train_fmnist_unet_800x32_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_fmnist_unet_cpu.py"))
    config.batch_size = 32
    config.num_steps = 800
    config.checkpoint_every_steps = 200
    config.keep_checkpoints = 4
    config.out_dir = "experiments/checkpoints/fmnist_unet_conditional_800x32_cpu"
    return config
