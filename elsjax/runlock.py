"""One job per run directory at a time: a lock file that names its holder.

A job takes the lock of its run directory (:data:`LOCK_FILE`, ``run.lock``) before its first expensive step and
gives it back when it ends, whether it finishes or fails. The file holds the holder's PID, host, start time and
command line, so a second job on the same directory is refused at once with one line that names them
(:class:`Locked`). A lock whose process is gone (killed, or the machine rebooted: same host, no such PID, or the
PID now belongs to a process that started later) is *stale*: the next job says so in one line and takes it over.
A lock held on another host cannot be checked from here; it is refused, and the message says which file to delete
if that run is gone.

The lock file is created complete and in one step (written beside, then hard-linked to its name: the link fails if
the name exists), so two jobs that start at the same moment cannot both take it. Taking a lock is re-entrant within
a process (a sweep holds its directory while its stages take their own).

Example:
    >>> import tempfile
    >>> from elsjax import runlock
    >>> directory = tempfile.mkdtemp()
    >>> with runlock.RunLock(directory) as lock:
    ...     runlock.holder(directory)["pid"] == lock.info["pid"]
    True
    >>> runlock.holder(directory) is None
    True
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["LOCK_FILE", "Locked", "RunLock", "holder", "describe"]

LOCK_FILE = "run.lock"

_HELD: dict[str, int] = {}  # lock files this process holds -> how many times
_GUARD = threading.Lock()


class Locked(ValueError):
    """The run directory is in use by another job (the message names it)."""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name


def _alive(info: dict) -> bool:
    """Whether the process of a lock on this host still runs (a lock of another host counts as alive)."""
    if info.get("host") != socket.gethostname():
        return True
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    started = info.get("pid_start")
    return started is None or _process_start(pid) in (None, started)


def holder(directory) -> dict | None:
    """The holder of ``directory``'s lock (``pid``, ``host``, ``started``, ``command``), or None if unlocked.

    An unreadable lock file gives ``{"unreadable": True}``.
    """
    return _read(Path(directory) / LOCK_FILE)


def _read(path: Path) -> dict | None:
    try:
        info = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"unreadable": True}
    return info if isinstance(info, dict) else {"unreadable": True}


def describe(info: dict) -> str:
    """``PID 123 on HOST, started 2025-01-01T00:00:00, `elsjax evaluate ...``` for messages."""
    if info.get("unreadable"):
        return "an unreadable lock file"
    text = f"PID {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
    return text + (f" (`{info['command']}`)" if info.get("command") else "")


class RunLock:
    """The lock of one run directory; a context manager (or :meth:`acquire` and :meth:`release`).

    Args:
      directory: the run directory (it must exist).
      log: where the note about a stale lock goes (default: one line on stderr).
      command: what the lock file says the holder runs (default: the command line).
    """

    def __init__(self, directory, *, log: Callable[[str], None] | None = None, command: str | None = None):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.log = log or (lambda text: print(text, file=sys.stderr))
        pid = os.getpid()
        self.info = {
            "pid": pid,
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "pid_start": _process_start(pid),
            "command": command if command is not None else _command_line(),
        }
        self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _key(self) -> str:
        return str(self.path.resolve())

    def acquire(self) -> RunLock:
        """Takes the lock (re-entrant within this process).

        Raises:
          Locked: another live job holds it (the message names it and what to do).
          OSError: the lock file cannot be written (an unwritable directory, a full disk).
        """
        key = self._key()
        with _GUARD:
            if key in _HELD:
                _HELD[key] += 1
                self.held = True
                return self
        for _ in range(20):
            if self._create():
                with _GUARD:
                    _HELD[key] = _HELD.get(key, 0) + 1
                self.held = True
                return self
            info = holder(self.directory)
            if info is None:
                continue  # released in between: try again
            if info.get("unreadable"):
                if time.time() - _mtime(self.path) < 2.0:  # being replaced right now
                    time.sleep(0.1)
                    continue
            elif _alive(info):
                same_host = info.get("host") == socket.gethostname()
                what = "wait for it to finish" + (
                    "" if same_host else ", or, if that run is gone, delete " + str(self.path)
                )
                raise Locked(f"out_dir: {self.directory} is in use by another run: {describe(info)}; {what}")
            if self._take_over(info):
                self.log(
                    f"elsjax: note: {self.directory} was locked by {describe(info)}, which is gone: "
                    "the lock is stale, taking it over"
                )
        raise Locked(f"out_dir: {self.directory}: could not take the lock {self.path} (another run keeps taking it)")

    def _create(self) -> bool:
        """Creates the lock file complete and in one step; False if it exists."""
        tmp = self.directory / f".{LOCK_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            tmp.write_text(json.dumps(self.info, indent=1) + "\n")
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            except OSError:  # a file system without hard links: exclusive create instead (written after)
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(self.info, indent=1) + "\n")
            return True
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _take_over(self, stale: dict) -> bool:
        """Moves a stale lock aside; True if it was still the stale one (else it is put back: someone took it)."""
        aside = self.directory / f".{LOCK_FILE}.stale.{os.getpid()}.tmp"
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = _read(aside) or {}
            if moved == stale or (stale.get("unreadable") and moved.get("unreadable")):
                return True
            with contextlib.suppress(OSError):  # a fresh lock of another job: give it back
                os.link(aside, self.path)
            return False
        finally:
            with contextlib.suppress(OSError):
                aside.unlink()

    def release(self) -> None:
        """Gives the lock back (the file is removed once this process holds it no more)."""
        if not self.held:
            return
        self.held = False
        key = self._key()
        with _GUARD:
            _HELD[key] = _HELD.get(key, 1) - 1
            if _HELD[key] > 0:
                return
            del _HELD[key]
        info = holder(self.directory)
        if info is not None and info.get("pid") == os.getpid() and info.get("host") == self.info["host"]:
            with contextlib.suppress(OSError):
                self.path.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "elsjax")):
        argv[0] = "elsjax"
    text = " ".join(argv)
    return text if len(text) <= 300 else text[:297] + "..."
