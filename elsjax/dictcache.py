"""Reuse of built dictionaries across the calls of one job (in memory) and, optionally, across jobs (on disk).

A dictionary depends only on the training images it is built from, the machine's regions, k, the chunk size, the
deduplication and the shape rule (:func:`elsjax.patches.shared_shapes`). Calibration builds one per (class, k);
an evaluation builds the same ones again for every machine and every block of seeds; a sweep row does both. Inside
:func:`reuse`, :func:`elsjax.patches.region_dictionaries` and :func:`elsjax.patches.ideal_dictionary` look each
dictionary up by that key (the images by a BLAKE2 digest of their bytes) and build it only when it is missing, so
each is built once. Results are identical: a hit returns the very arrays a build would make (on disk, their bytes).

Memory is bounded: the cache keeps the most recently used dictionaries up to ``max_bytes`` in all (default
:data:`MAX_BYTES`); a dictionary larger than that is never kept. On disk (``directory``, or the environment
variable ``ELSJAX_DICTIONARY_CACHE_DIR`` for the jobs), each dictionary is one ``.npz`` named by its key's digest.

Example:
    >>> import numpy as np
    >>> from elsjax import dictcache, machines
    >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    >>> with dictcache.reuse() as cache:
    ...     a = machines.build("els", train, 3)
    ...     b = machines.build("els", train, 3)             # not rebuilt
    >>> (cache.builds, cache.hits), a.tables[0].keys is b.tables[0].keys
    ((1, 1), True)
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import hashlib
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["DictionaryCache", "reuse", "active", "digest", "MAX_BYTES", "ENV_DIR"]

MAX_BYTES = 2 << 30  # as sampler.KEEP_BYTES: a few dictionaries of a large training set, every one of a small one
ENV_DIR = "ELSJAX_DICTIONARY_CACHE_DIR"

_ACTIVE: contextvars.ContextVar[DictionaryCache | None] = contextvars.ContextVar("elsjax_dictcache", default=None)


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
        from elsjax.patches import PatchDictionary, _aligned_zeros

        with np.load(self._path(key)) as f:
            if str(f["key"]) != repr(key):
                return None
            tables = []
            for t in range(int(f["tables"])):
                arrays = []
                for name in PatchDictionary._fields:
                    a = f[f"{t}_{name}"]
                    aligned = _aligned_zeros(a.shape, a.dtype)  # 64-byte aligned: shared with the device on CPU
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


def active() -> DictionaryCache | None:
    """The cache of the enclosing :func:`reuse`, or None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def reuse(cache: DictionaryCache | None = None, *, max_bytes: int = MAX_BYTES, directory=None):
    """Within this context, dictionaries are built once per key and reused (see the module's docstring).

    Args:
      cache: a :class:`DictionaryCache` to use (and keep using after the context); default: a new one.
      max_bytes: for a new cache, the bytes of dictionaries kept in memory.
      directory: for a new cache, a directory that keeps every dictionary on disk (default: none).

    Yields:
      The cache.
    """
    cache = cache if cache is not None else DictionaryCache(max_bytes, directory)
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def digest(images) -> str:
    """A digest of an array's shape, dtype and bytes (BLAKE2b, 128 bits)."""
    images = np.ascontiguousarray(images)
    h = hashlib.blake2b(f"{images.shape}{images.dtype}".encode(), digest_size=16)
    h.update(memoryview(images).cast("B"))
    return h.hexdigest()
