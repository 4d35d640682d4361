"""The paper's settings, written once: its trained nets, their training recipe, its data and its results.

Everything elsjax calls "the paper's" derives from here: :func:`elsjax.nets.spec` fills missing architecture
settings from :data:`NETS`, :func:`elsjax.config.train_config` and :func:`elsjax.config.paper_train_config` take the
optimiser, batch size and epochs from :data:`TRAINING`, :func:`elsjax.config.calibrate_config` its seeds and steps
from :data:`CALIBRATION` (its subset and candidates default to the net's own training set and k = 3..17, the
ResNets' receptive field; a sweep row sets them), and the sweeps print :data:`TABLE1` and :data:`TABLE2` beside
measured numbers. Sources: Kamb & Ganguli (ICML 2025) §5, §C.1-C.2 and the authors' code
(docs/maths.md §7-§9).

Example:
    >>> from elsjax import paper
    >>> paper.NETS["resnet"]["width"], paper.TRAINING["learning_rate"], paper.epoch_steps("cifar10")
    (256, 0.0001, 391)
    >>> paper.TABLE1[("mnist", "resnet", "zeros", False)]["els"]
    0.94
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["NETS", "TRAINING", "TRAIN_SIZES", "CALIBRATION", "TABLE1", "TABLE2", "epoch_steps", "table_row"]

# Architectures (docs/maths.md §9): MinimalResNet has 6 residual 3x3 blocks of width 256 (receptive field 17);
# MinimalUNet has three levels of widths 64/128/256. Both embed t (and the class) in 256 features. The UNet with
# self-attention (UNet+SA, §9.5) has four levels of widths 64/128/128/128 with 3 residual blocks each, attention at
# 32, 16 and 8 px and in the middle, an embedding of 256 features.
NETS = MappingProxyType(
    {
        "resnet": MappingProxyType(
            {"width": 256, "num_layers": 6, "emb_dim": 256, "kernel_size": 3, "last_kernel_size": 3, "padding": "zeros"}
        ),
        "unet": MappingProxyType(
            {"width": 64, "num_layers": 3, "emb_dim": 256, "kernel_size": 3, "last_kernel_size": 3, "padding": "zeros"}
        ),
        "unet_sa": MappingProxyType(
            {"width": 64, "num_layers": 4, "emb_dim": 256, "kernel_size": 3, "last_kernel_size": 3, "padding": "zeros"}
        ),
    }
)

# Training (docs/maths.md §9): AdamW (= Adam, weight decay 0), learning rate 1e-4 multiplied by 0.999965 after
# every step, batch 128 with the last partial batch kept, 300 epochs, no EMA.
TRAINING = MappingProxyType(
    {"learning_rate": 1e-4, "lr_decay": 0.999965, "weight_decay": 0.0, "batch_size": 128, "epochs": 300}
)

# Training-set sizes of the datasets the paper trains on.
TRAIN_SIZES = MappingProxyType({"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000})

# Calibration (docs/maths.md §7): the first 5,000 training images, 10 seeds, 20 steps, odd k candidates.
CALIBRATION = MappingProxyType({"limit": 5000, "n_seeds": 10, "num_steps": 20, "ks": tuple(range(3, 32, 2))})


def epoch_steps(dataset: str, batch_size: int = TRAINING["batch_size"]) -> int:
    """Optimiser steps per epoch of the paper's training set (the last partial batch counts)."""
    return -(-TRAIN_SIZES[dataset] // batch_size)


def _rows(text: str) -> MappingProxyType:
    rows = {}
    for line in text.strip().splitlines():
        dataset, arch, padding, cond, els, ls, ideal, frac = line.split()
        key = (dataset, arch, padding, cond == "yes")
        rows[key] = MappingProxyType(
            {"els": float(els), "ls": float(ls), "ideal": float(ideal), "frac_beats_ideal": float(frac)}
        )
    return MappingProxyType(rows)


# Median Pearson r over 100 seeds between each machine's sample (19 steps) and the net's DDIM sample, keyed by
# (dataset, arch, padding, conditional); "els" is bbELS for zero-padded nets and ELS for circular ones;
# "frac_beats_ideal" is the fraction of seeds where (E)LS beats IS. Table 1: the net sampled with 150 steps.
TABLE1 = _rows("""
mnist unet zeros no 0.89 0.88 0.70 0.93
cifar10 unet zeros yes 0.90 0.87 0.41 0.92
fashion_mnist unet zeros yes 0.93 0.93 0.80 1.00
celeb_a unet zeros no 0.85 0.90 0.55 1.00
mnist resnet zeros no 0.94 0.82 0.61 1.00
mnist resnet circular no 0.77 0.36 0.15 0.92
cifar10 resnet zeros yes 0.95 0.90 0.42 1.00
cifar10 resnet circular yes 0.94 0.83 0.35 1.00
fashion_mnist resnet zeros yes 0.94 0.88 0.68 1.00
celeb_a resnet zeros no 0.96 0.90 0.47 1.00
cifar10 unet_sa zeros yes 0.77 0.77 0.48 0.95
""")

# Table 2: the same with the net sampled with 20 DDIM steps.
TABLE2 = _rows("""
mnist unet zeros no 0.84 0.83 0.69 0.92
cifar10 unet zeros yes 0.82 0.80 0.39 0.99
fashion_mnist unet zeros yes 0.91 0.91 0.80 0.90
celeb_a unet zeros no 0.75 0.81 0.51 1.00
mnist resnet zeros no 0.94 0.84 0.62 0.97
mnist resnet circular no 0.73 0.33 0.14 0.99
cifar10 resnet zeros yes 0.90 0.86 0.43 1.00
cifar10 resnet circular yes 0.90 0.80 0.36 1.00
fashion_mnist resnet zeros yes 0.90 0.88 0.74 0.97
celeb_a resnet zeros no 0.92 0.88 0.48 1.00
cifar10 unet_sa zeros yes 0.75 0.74 0.47 0.92
""")


def table_row(dataset: str, arch: str, padding: str, conditional: bool, net_steps: int):
    """The paper's numbers for one configuration at 150 (Table 1) or 20 (Table 2) net steps, or None."""
    table = {150: TABLE1, 20: TABLE2}.get(int(net_steps))
    return None if table is None else table.get((dataset, arch, padding, bool(conditional)))
