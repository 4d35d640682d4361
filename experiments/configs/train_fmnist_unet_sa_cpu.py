"""CPU-scale Fashion-MNIST UNet with self-attention (class-conditional): the paper's UNet+SA layout at 1/8 of its
width, on the data of the plain UNet preset.

The UNet+SA (``unet_sa``, docs/maths.md §9.5: four levels of width x (1, 2, 2, 2) channels, three residual blocks per
level, GroupNorm and scale-shift conditioning, attention at 32, 16 and 8 px and in the middle block) at width 8
(8/16/16/16 channels, heads of 8 channels, embedding 32; 231,481 parameters with the class embedding, against the
paper's 14.4M at width 64 and the plain CPU UNet's 127,346), trained as ``train_fmnist_unet_cpu.py`` (the first
10,000 Fashion-MNIST training images, class-conditional, learning rate 2e-3 x0.9995 per step, docs/maths.md §9.4)
but for 800 steps of batch 32.

Its cost is the attention at 32 px: 1,024 positions, so a 1,024 x 1,024 softmax per image in each of seven layers,
whatever the width. Measured on the project machine (2 cores, shared: load average about 8) with the blocked CPU
attention of ``elsjax.nets.unet_sa.attention`` (4x slower before it): one training step of batch 32 took 3.8 s of CPU
time at width 8 (7.3 s wall, 0.14 steps/s, under that load) and 6.0 s at width 16; batch 64 took 8.8 s and 12.7 s.
The plain UNet preset takes about 0.5 s per step of batch 64. So 800 steps of batch 32 should take about 30-40
minutes on 2 quiet cores (about 95 minutes at that load), and the net sees 25,600 images (2.6 epochs) where the
plain UNet row's saw 230,400: an undertrained net, to be read as such beside that row.

    elsjax train --config experiments/configs/train_fmnist_unet_sa_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("train_fmnist_unet_cpu.py"))
    config.arch = "unet_sa"
    config.width = 8
    config.num_layers = 4
    config.emb_dim = 0  # the layout's 4 x width
    config.batch_size = 32
    config.num_steps = 800
    config.checkpoint_every_steps = 200
    config.keep_checkpoints = 4
    config.out_dir = "runs/train_fmnist_unet_sa_cpu"
    return config
