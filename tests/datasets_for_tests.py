"""Tiny on-disk datasets in the formats :mod:`elsjax.datasources` reads, written into a test's tmp_path.

The images are structured (a bright square whose place depends on the class) rather than pure noise, so a
machine built on them has something to reproduce; they are deterministic for a given seed.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


def class_images(n: int, size: int = 28, channels: int = 1, num_classes: int = 10, seed: int = 0):
    """``(uint8 [n, size, size, channels], int32 labels [n])`` with labels cycling through the classes."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % num_classes).astype(np.int32)
    images = rng.integers(0, 40, (n, size, size, channels)).astype(np.uint8)
    for i, label in enumerate(labels):
        top = 2 + (label * 2) % (size - 12)
        images[i, top : top + 10, 4 : size - 4] = 200 + (label * 5) % 55
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Writes a uint8 array as an IDX file (gzipped if the name ends in .gz)."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def mnist_dir(root: Path, n_train: int = 40, n_test: int = 10, gz: bool = True) -> Path:
    """An MNIST-style directory of IDX files for both splits; returns the directory."""
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = class_images(n, seed=seed)
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images[..., 0])
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return root


def cifar_dir(root: Path, per_batch: int = 4) -> Path:
    """A ``cifar-10-batches-py`` directory of python pickles (rows are CHW-flattened, as in the real files)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        images, labels = class_images(per_batch, size=32, channels=3, seed=10 + b)
        rows = images.transpose(0, 3, 1, 2).reshape(per_batch, -1)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": labels.tolist()}, f)
    return root


def image_folder(root: Path, shape=(218, 178, 3), per_class=(3,), seed: int = 0) -> Path:
    """An ``ImageFolder`` tree ``root/class_i/img_j.png`` of random images of ``shape``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, count in enumerate(per_class):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(count):
            arr = rng.integers(0, 256, shape).astype(np.uint8)
            Image.fromarray(arr[..., 0] if shape[-1] == 1 else arr).save(folder / f"img_{j:03d}.png")
    return root
