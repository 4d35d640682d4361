"""Atomic file writes: a file is either absent, or complete. Never half written.

Every output file of a job (JSON, ``.npz``, PNG, CSV, Markdown) is written to a temporary file beside its final name
and renamed over it once complete and flushed to disk (``os.replace``, atomic on one file system). A crash, a kill or
a full disk during the write leaves the previous file (or none) and, at most, a temporary file named
``.NAME.PID.tmp``, which nothing reads as a result (:func:`is_temporary`). A failed write raises
:class:`WriteError`, an ``OSError`` whose message names the file and what went wrong (e.g. "No space left on
device"); the command line prints it as one line.

Example:
    >>> import tempfile, pathlib
    >>> from elsjax import atomic
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> with atomic.writing(path) as f:
    ...     _ = f.write(b"{}")
    >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
    ('{}', ['a.json'])
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "WriteError",
    "writing",
    "write_bytes",
    "write_text",
    "save_npz",
    "temporary_name",
    "is_temporary",
    "check_writable",
]

_SUFFIX = ".tmp"


class WriteError(OSError):
    """A file could not be written; nothing half-written was left under its name. ``errno`` is the cause's."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message, without OSError's "[Errno N]"


def temporary_name(path: Path) -> Path:
    """The temporary file a write of ``path`` goes through: ``.NAME.PID.tmp`` in the same directory."""
    return path.with_name(f".{path.name}.{os.getpid()}{_SUFFIX}")


def is_temporary(path) -> bool:
    """Whether ``path`` is a temporary file of an unfinished write (left by a crash; never a result)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(_SUFFIX)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    return f"{type(err).__name__}: {err}"


@contextlib.contextmanager
def writing(path) -> Iterator[BinaryIO]:
    """A binary file object whose contents become ``path`` when the block ends without an exception.

    Raises:
      WriteError: creating, writing or renaming failed (e.g. a full disk); the temporary file is removed and
        ``path`` keeps what it held before.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, WriteError):
            raise
        raise WriteError(err.errno or errno.EIO, f"{path}: could not be written ({_reason(err)})") from err
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes(path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically."""
    with writing(path) as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def save_npz(path, *, compressed: bool = False, **arrays) -> Path:
    """``numpy.savez`` (or ``savez_compressed``) to ``path`` atomically; the name is kept as given."""
    import numpy as np

    with writing(path) as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return Path(path)


def check_writable(directory, what: str) -> Path:
    """Creates ``directory`` if needed and proves that a file can be written in it.

    Raises:
      ValueError: naming ``what`` and the directory, and why (e.g. "Read-only file system", "Not a directory").
    """
    directory = Path(directory)
    probe = directory / f".elsjax-write-test.{os.getpid()}{_SUFFIX}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise ValueError(f"{what}: {directory} is not writable ({_reason(err)})") from None
    return directory
