"""Reuse of built dictionaries across the calls of one job (in memory) and, optionally, across jobs (on disk).

A dictionary depends only on the training images it is built from, the denoiser, k, the chunk size, the
deduplication and the shape rule (``shape_bits``, :func:`elsjax.patches.bucket`). Calibration builds one per
(class, k); an evaluation builds the same ones again for every machine and every block of seeds; a sweep row does
both. A :class:`DictionaryCache` passed as ``cache=`` (:func:`elsjax.denoisers.build`, :func:`elsjax.sample`, the
calibration and the evaluation) looks each dictionary up by that key (the images by a BLAKE2 digest of their
bytes) and builds it only when it is missing, so each is built once. Results are identical: a hit returns the very
arrays a build would make (on disk, their bytes).

Memory is bounded: the cache keeps the most recently used dictionaries up to ``max_bytes`` in all (default
:data:`MAX_BYTES`); a dictionary larger than that is never kept. On disk (``directory``, or the environment
variable ``ELSJAX_DICTIONARY_CACHE_DIR`` for the jobs), each dictionary is one ``.npz`` named by its key's digest.

Example:
    >>> import numpy as np
    >>> from elsjax import dictcache, denoisers
    >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    >>> cache = dictcache.DictionaryCache()
    >>> a = denoisers.build("els", train, 3, cache=cache)
    >>> b = denoisers.build("els", train, 3, cache=cache)     # not rebuilt
    >>> (cache.builds, cache.hits), a.tables[0].keys is b.tables[0].keys
    ((1, 1), True)
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from elsjax.patches import PatchDictionary, aligned_zeros

__all__ = ["DictionaryCache", "digest", "MAX_BYTES", "ENV_DIR"]

MAX_BYTES = 2 << 30  # as sampler.KEEP_BYTES: a few dictionaries of a large training set, every one of a small one
ENV_DIR = "ELSJAX_DICTIONARY_CACHE_DIR"


class DictionaryCache:
    """Built dictionaries by key: the most recently used up to ``max_bytes`` in memory, all of them on disk if a
    ``directory`` is given. ``builds``, ``hits`` and ``loads`` (from disk) count what happened."""

    def __init__(self, max_bytes: int = MAX_BYTES, directory: str | os.PathLike | None = None):
        self.max_bytes = int(max_bytes)
        self.directory = None if directory is None else Path(directory)
        self.builds = self.hits = self.loads = 0
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_build(self, key: tuple, build, *, to_device=None):
        """The dictionary of ``key``: from memory, from disk, or ``build()`` (a tuple of PatchDictionary)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
        tables = self._load(key, to_device)
        if tables is None:
            tables = build()
            self.builds += 1
            self._save(key, tables)
        else:
            self.loads += 1
        self._keep(key, tables)
        return tables

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the dictionaries held in memory."""
        return self._bytes

    def _keep(self, key, tables) -> None:
        size = sum(int(a.nbytes) for table in tables for a in table)
        if size > self.max_bytes:
            return
        with self._lock:
            self._items[key] = (tables, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def _path(self, key) -> Path:
        return self.directory / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:32]}.npz"

    def _load(self, key, to_device):
        if self.directory is None or not self._path(key).is_file():
            return None
        with np.load(self._path(key)) as f:
            if str(f["key"]) != repr(key):
                return None
            tables = []
            for t in range(int(f["tables"])):
                arrays = []
                for name in PatchDictionary._fields:
                    a = f[f"{t}_{name}"]
                    aligned = aligned_zeros(a.shape, a.dtype)  # 64-byte aligned: shared with the device on CPU
                    aligned[...] = a
                    arrays.append(aligned)
                tables.append(PatchDictionary(*arrays))
        return tuple(to_device(t) for t in tables) if to_device else tuple(tables)

    def _save(self, key, tables) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        arrays = {f"{t}_{name}": np.asarray(a) for t, table in enumerate(tables) for name, a in table._asdict().items()}
        tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, key=repr(key), tables=len(tables), **arrays)
        tmp.replace(path)  # atomic: a file on disk is always complete


def digest(images) -> str:
    """A digest of an array's shape, dtype and bytes (BLAKE2b, 128 bits)."""
    images = np.ascontiguousarray(images)
    h = hashlib.blake2b(f"{images.shape}{images.dtype}".encode(), digest_size=16)
    h.update(memoryview(images).cast("B"))
    return h.hexdigest()
