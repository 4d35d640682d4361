"""The CPU-scale rows of the paper's Tables 1 and 2: nets trained by elsjax on 2 CPU cores, their own calibrated
scales, 50 evaluation seeds, the machines built on exactly the nets' training sets.

Scale (what differs from the paper): nets of 64k (ResNet, width 32) and 128k (UNet, widths 16/32/64) parameters
instead of 4M and 2M, trained for 1,800-3,600 steps of batch 64 instead of 300 epochs of batch 128; the
Fashion-MNIST nets on its first 10,000 training images (about 1,000 per class, so each class-conditional machine
holds about 1,000 images), the MNIST nets on its first 2,000 digits (so the unconditional machines, whose cost grows
with N, fit this machine); 10 calibration seeds and 50 evaluation seeds instead of 100.

    elsjax sweep --config experiments/sweeps/cpu_scale.py --out-dir experiments/results/cpu_scale
    elsjax sweep --config experiments/sweeps/cpu_scale.py --out-dir experiments/results/cpu_scale --only fmnist_resnet_zeros_conditional
"""

from elsjax.sweeps import sweep_config

RESNET_KS = tuple(range(3, 18, 2))  # 3, 5, ..., 17: the ResNet's receptive field is 17
UNET_KS = tuple(range(3, 28, 2))  # 3, 5, ..., 27: the published UNet scales reach 25-27
CHECKPOINTS = "experiments/checkpoints"


def get_config():
    config = sweep_config()
    config.out_dir = "experiments/results/cpu_scale"  # committed: a run continues from the finished stages
    config.rows = [
        dict(name="fmnist_resnet_zeros_conditional", net=f"{CHECKPOINTS}/fmnist_resnet_zeros_conditional_cpu",
             train_config="experiments/configs/train_fmnist_resnet_cpu.py", ks=RESNET_KS, ls_ks=RESNET_KS,
             published="FashionMNIST_ResNet_zeros_conditional"),
        dict(name="fmnist_unet_conditional", net=f"{CHECKPOINTS}/fmnist_unet_conditional_cpu",
             train_config="experiments/configs/train_fmnist_unet_cpu.py", ks=UNET_KS, ls_ks=UNET_KS,
             published="FashionMNIST_UNet_zeros_conditional"),
        dict(name="mnist_resnet_zeros", net=f"{CHECKPOINTS}/mnist_resnet_zeros_n2000_cpu",
             train_config="experiments/configs/train_mnist_resnet_n2000_cpu.py", ks=RESNET_KS, ls_ks=RESNET_KS,
             published="MNIST_ResNet_zeros"),
        dict(name="mnist_unet", net=f"{CHECKPOINTS}/mnist_unet_n2000_cpu",
             train_config="experiments/configs/train_mnist_unet_n2000_cpu.py", ks=UNET_KS, ls_ks=UNET_KS,
             published="MNIST_UNet_zeros"),
        dict(name="mnist_resnet_circular", net=f"{CHECKPOINTS}/mnist_resnet_circular_n2000_cpu",
             train_config="experiments/configs/train_mnist_resnet_circular_n2000_cpu.py", ks=RESNET_KS,
             ls_ks=RESNET_KS, published="MNIST_ResNet_circular"),
    ]  # fmt: skip
    return config
