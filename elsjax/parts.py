"""Parts: the finished pieces of a resumable job, each saved under its run directory's ``parts/`` as soon as it is
done, tagged with what it was computed from, so that a job killed part-way (Ctrl-C, SIGTERM, a session ending) loses
only the piece it was computing.

A part is one ``.npz`` file: its values, its ``tag`` (JSON: the config and inputs it was computed from) and the
``seconds`` it took. A run reads a part back only if its tag equals the tag the run would give it (:func:`load`); any
other part is recomputed and replaced, and an unreadable one (truncated or corrupt) is reported and recomputed. Parts
are written atomically (:mod:`elsjax.atomic`): one on disk is always complete.

:class:`Store` is the part store of one run directory as :mod:`elsjax.scoring` takes it (its ``parts`` argument,
:class:`elsjax.scoring.Parts`): the calibration job gives it its run directory, the tag of its net and data, and the
guard that holds signals back while a part is written.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> store = Store(Path(tempfile.mkdtemp()) / "parts", {"seed": 0}, log=print)
    >>> store.load("a", {"k": 3}, (2,)) is None
    True
    >>> store.save("a", {"k": 3}, np.array([0.5, 1.0]), seconds=2.0)
    >>> store.load("a", {"k": 3}, (2,)).tolist(), store.computed, store.reused_s
    ([0.5, 1.0], ['a.npz'], 2.0)
    >>> Store(store.directory, {"seed": 1}, log=print).load("a", {"k": 3}, (2,)) is None  # another config's part
    elsjax: note: ... holds parts computed from another config (other seed): recomputing them
    True
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from elsjax import atomic, sharding

__all__ = ["load", "save", "source", "read_tag", "same_tag", "Store"]


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _plain(tag: dict) -> dict:
    """``tag`` as it reads back from JSON (tuples as lists, keys as text)."""
    return json.loads(json.dumps(tag, sort_keys=True, default=repr))


def load(path: Path, tag: dict, *, key: str, on_stale: Callable[[dict], None] | None = None):
    """A finished part: ``(values, seconds)`` (seconds None for a part saved before they were recorded), or
    ``(None, None)`` if missing, computed from something else (``on_stale(its tag)`` is called), or unreadable
    (truncated or corrupt: then it is reported and recomputed)."""
    if not path.is_file():
        return None, None
    try:
        with np.load(path) as f:
            saved = json.loads(str(f["tag"]))
            if saved != _plain(tag):
                if on_stale is not None:
                    on_stale(saved)
                return None, None
            values = np.asarray(f[key])
            return values, (float(f["seconds"]) if "seconds" in f.files else None)
    except Exception as err:  # noqa: BLE001 - any unreadable part is recomputed, whatever broke it
        detail = " ".join(str(err).split())[:200]
        print(f"elsjax: warning: {path} is unreadable (truncated or corrupt: {type(err).__name__}: {detail}); "
              "recomputing it", file=sys.stderr)  # fmt: skip
        return None, None


def save(path: Path, values, tag: dict, seconds: float | None, *, key: str, source: str | None = None) -> None:
    """Saves a part with the seconds it took (None: unknown), so that a resumed job can count the work of earlier
    runs, and the ``source`` it was copied from when another run computed it."""
    extra = {} if seconds is None else {"seconds": np.float64(seconds)}
    if source is not None:
        extra["source"] = np.array(source)
    atomic.save_npz(path, **{key: np.asarray(values)}, tag=json.dumps(_plain(tag), sort_keys=True),
                    **extra)  # fmt: skip  # atomic: a part on disk is always complete


def _text_field(path: Path, name: str) -> str | None:
    """A part's text field ``name``, or None if the part or the field is missing or unreadable."""
    try:
        with np.load(path) as f:
            return str(f[name]) if name in f.files else None
    except Exception:  # noqa: BLE001 - missing, truncated or corrupt: nothing to read
        return None


def source(path: Path) -> str | None:
    """Where a part was copied from (:func:`save`'s ``source``), or None for one its own run computed."""
    return _text_field(path, "source")


def read_tag(path: Path) -> dict | None:
    """The tag a part was saved with, or None if there is no readable part at ``path``."""
    text = _text_field(path, "tag")
    return None if text is None else json.loads(text)


def same_tag(saved: dict, tag: dict, *, ignore=()) -> bool:
    """Whether a saved part's tag is ``tag`` (as it reads back from JSON), up to the keys in ``ignore``.

    Example:
        >>> same_tag({"seed": 0, "net": "a"}, {"seed": 0, "net": "b"}, ignore=("net",))
        True
    """
    drop = lambda t: {k: v for k, v in _plain(t).items() if k not in ignore}  # noqa: E731
    return drop(saved) == drop(tag)


class Store:
    """The parts of one run in ``directory`` (:class:`elsjax.scoring.Parts`): each part's tag is ``base_tag`` (what
    every part of the run was computed from: the net, the data) joined with the part's own.

    Process 0 (``primary``) reads and writes the files and tells the other processes what it found, so that every
    process computes the same parts. Writes happen inside ``guard.deferred()`` when a guard
    (:class:`elsjax.interrupts.SignalGuard`) is given. ``computed`` lists the parts this run computed, ``reused_s``
    the seconds that earlier runs spent on the parts it read back (``untimed``: those saved without their seconds).
    """

    KEY = "values"

    def __init__(self, directory, base_tag: dict, *, primary: bool = True, guard=None, log=_note):
        self.directory, self.base_tag, self.primary = Path(directory), dict(base_tag), primary
        self.guard, self.log = guard, log
        self.computed: list[str] = []
        self.reused: list[str] = []
        self.reused_s, self.untimed = 0.0, 0
        self._noted = False

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.npz"

    def _stale(self, tag: dict, saved: dict) -> None:
        if not self._noted:  # one line per run, naming what differs
            differ = ", ".join(sorted(k for k in set(tag) | set(saved) if tag.get(k) != saved.get(k)))
            self.log(f"elsjax: note: {self.directory} holds parts computed from another config (other {differ}): "
                     "recomputing them")  # fmt: skip
            self._noted = True

    def load(self, name: str, tag: dict, shape) -> np.ndarray | None:
        """The values of part ``name`` if it was computed from ``tag`` (and has ``shape``), else None."""
        tag, values, seconds = _plain({**self.base_tag, **tag}), None, None
        if self.primary:
            values, seconds = load(self._path(name), tag, key=self.KEY, on_stale=lambda s: self._stale(tag, s))
            if values is not None and values.shape != tuple(shape):
                self._stale({"shape": list(shape)}, {"shape": list(values.shape)})
                values = None
        if not bool(sharding.broadcast(np.array(int(values is not None), np.int32))):
            return None
        values = sharding.broadcast(values if self.primary else np.zeros(shape, np.float64))
        self.reused.append(self._path(name).name)
        self.untimed += seconds is None and self.primary
        self.reused_s += seconds or 0.0
        return values

    def save(self, name: str, tag: dict, values, seconds: float) -> None:
        """Saves part ``name`` (process 0 only), computed from ``tag`` in ``seconds``."""
        self.computed.append(self._path(name).name)
        if not self.primary:
            return
        with self.guard.deferred() if self.guard is not None else contextlib.nullcontext():
            save(self._path(name), values, {**self.base_tag, **tag}, seconds, key=self.KEY)
        if self.guard is not None:
            self.guard.check()  # a signal whose exception was dropped stops the run here, its part saved
