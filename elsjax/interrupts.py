"""SIGTERM treated as Ctrl-C, and signals held back while a checkpoint is being written.

Schedulers (Slurm, Kubernetes, systemd) send SIGTERM before they kill a job. Python's default for SIGTERM is to
die on the spot, so a training job would lose everything since its last checkpoint and could leave a half-written
orbax temporary folder. :class:`SignalGuard` makes SIGTERM raise :class:`Interrupted` (a ``KeyboardInterrupt``),
so the code that saves a checkpoint on Ctrl-C handles both; inside :meth:`SignalGuard.deferred` both signals wait
until the block (a checkpoint save) has completed.

Python runs a signal handler between two bytecodes of the main thread, which may be inside a garbage-collector
callback (JAX registers one) or a ``__del__``; an exception raised there is printed and dropped ("Exception ignored
in ..."), and the job would run on. So the guard also remembers the signal, and loops call
:meth:`SignalGuard.check` at safe points (each training step, each saved part) to raise it again.

Example (with SIGINT, which is harmless should the guard not be installed; SIGTERM is handled the same way):
    >>> import signal
    >>> inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job may ignore SIGINT
    >>> guard = SignalGuard().install()
    >>> try:
    ...     with guard.deferred():
    ...         signal.raise_signal(signal.SIGINT)  # held until the block ends
    ...         held = "still running"
    ... except KeyboardInterrupt as err:
    ...     print(held, "then", type(err).__name__, signal.Signals(err.signum).name)
    ... finally:
    ...     guard.restore()
    ...     _ = signal.signal(signal.SIGINT, inherited)
    still running then Interrupted SIGINT
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Interrupted", "SignalGuard"]


class Interrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` raised for a signal; ``signum`` says which (e.g. ``signal.SIGTERM``)."""

    def __init__(self, signum: int):
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


class SignalGuard:
    """While installed, SIGTERM and SIGINT raise :class:`Interrupted`, except inside :meth:`deferred` blocks.

    Only signals whose handler is still Python's default are taken over (SIGTERM: ``SIG_DFL``, SIGINT:
    ``default_int_handler``), so a host program's own handlers are left alone; outside the main thread (where
    Python allows no handler) installing does nothing.
    """

    _DEFAULTS = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}

    def __init__(self):
        self._previous: dict[int, object] = {}
        self._depth = 0
        self._pending: int | None = None
        self._received: int | None = None  # the last signal raised, until the guard is restored

    def install(self) -> SignalGuard:
        """Takes over SIGTERM and SIGINT (where they have their default handlers); returns ``self``."""
        self._received = None
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum, default in self._DEFAULTS.items():
            if signal.getsignal(signum) is default:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Puts the previous handlers back (safe to call more than once)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self._received = None

    def check(self) -> None:
        """Raises :class:`Interrupted` if a signal was received since :meth:`install`: its first exception may have
        been dropped (raised inside a garbage-collector callback), so a loop calls this at its safe points.

        Example (a handler's exception that never reached the loop):
            >>> guard = SignalGuard()
            >>> try:
            ...     guard._handle(signal.SIGTERM, None)
            ... except Interrupted:
            ...     pass  # dropped, as Python drops one raised inside a gc callback
            >>> try:
            ...     guard.check()
            ... except Interrupted as err:
            ...     print(signal.Signals(err.signum).name)
            SIGTERM
        """
        if self._received is not None:
            raise Interrupted(self._received)

    def _handle(self, signum, frame) -> None:
        del frame
        if self._depth:
            self._pending = signum
            return
        self._received = signum
        raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        """A block that a signal does not interrupt: one received meanwhile is raised when the block completes."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending is not None:
            signum, self._pending = self._pending, None
            self._received = signum
            raise Interrupted(signum)
