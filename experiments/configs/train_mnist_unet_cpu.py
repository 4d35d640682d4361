"""CPU-scale MNIST UNet (unconditional): trains on 2 CPU cores in about 30 minutes into digit-like samples.

The paper's UNet (docs/maths.md §9.3: three levels, max-pool down, transposed-conv up, concatenated skips, receptive field
the whole image) at a quarter of its width (16/32/64 channels instead of 64/128/256, embedding 64 instead of 256;
127,346 parameters). 3,600 steps of batch 64 on the first 10,000 MNIST training images (about 23 epochs) with a
20x larger learning rate than the paper's (2e-3, x0.9995 per step); everything else is docs/maths.md §9.4.

The ResNet presets (``train_mnist_resnet_cpu.py``) keep the paper's local 17x17 receptive field and, at this
budget, give local strokes rather than digits; the UNet sees the whole image and is the preset to use where
recognisable samples matter (its samples: connected digit strokes, several of them readable digits). On XLA:CPU
one training step at width 32 costs about 5x one at width 16 (slow kernel gradients), so the narrower net trains
more steps in the same time.

    elsjax train --config experiments/configs/train_mnist_unet_cpu.py
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    # The MNIST ResNet preset's data, batch and checkpointing; the net, its step count and learning rate differ.
    config = load_file(Path(__file__).with_name("train_mnist_resnet_cpu.py"))
    config.arch = "unet"
    config.width = 16
    config.num_layers = 3
    config.emb_dim = 64
    config.padding = "zeros"
    config.learning_rate = 2e-3
    config.lr_decay = 0.9995
    config.num_steps = 3600
    config.out_dir = "runs/train_mnist_unet_cpu"
    return config
