"""The gallery run (experiments/gallery.py): the quick-start run (``sample_fmnist_bbels.py``: class-conditional
bbELS on the first 1,000 Fashion-MNIST images, published FashionMNIST_ResNet_zeros_conditional scales, one seed per
class) with seed 1.
"""

from pathlib import Path

from elsjax.config import load_file


def get_config():
    config = load_file(Path(__file__).with_name("sample_fmnist_bbels.py"))
    config.seed = 1
    config.out_dir = "runs/gallery"
    config.overwrite = True
    return config
