"""Ahead-of-time compiled programs, kept by an explicit :class:`Programs` object (no module-level state).

A job that evaluates many denoisers of one shape (the classes of a conditional calibration, padded to shared
shapes; the seed blocks of an evaluation) compiles each program once: ``programs.compile(fn, *args)`` lowers and
compiles a ``jax.jit`` function for the arguments' structure, shapes, dtypes and shardings (and the values of
anything that is not an array, such as static arguments), and returns the kept executable when it has seen them.
The executable takes the non-static arguments only.

Example:
    >>> import jax, jax.numpy as jnp
    >>> programs = Programs(size=4)
    >>> double = jax.jit(lambda x: 2 * x)
    >>> run = programs.compile(double, jnp.ones(3))
    >>> run(jnp.arange(3.0)).tolist(), programs.compile(double, jnp.zeros(3)) is run, programs.compiles
    ([0.0, 2.0, 4.0], True, 1)
"""

from __future__ import annotations

import collections
import threading

import jax
import numpy as np

__all__ = ["Programs", "CompileCounter", "BACKEND_COMPILE_EVENT"]

# The jax.monitoring event of one XLA compilation (not recorded when the persistent compilation cache answers).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class Programs:
    """The most recently used ``size`` compiled programs, by function and argument signature.

    Attributes:
      compiles: how many programs this object compiled (the others were found).
    """

    def __init__(self, size: int = 32):
        self.size = int(size)
        self.compiles = 0
        self._kept: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def compile(self, fn, *args, **kwargs):
        """``fn.lower(*args, **kwargs).compile()`` (``fn`` a ``jax.jit`` function), or the kept one."""
        key = (fn, _signature(args), _signature(kwargs))
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        program = fn.lower(*args, **kwargs).compile()
        with self._lock:
            self.compiles += 1
            self._kept[key] = program
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return program


class CompileCounter:
    """Counts XLA compilations while active (a context manager), by the name of the compiled function, from
    ``jax.monitoring`` events: every thread's compilations count, programs found in a cache do not.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> def triple(x):
      ...     return 3 * x
      >>> with CompileCounter() as counter:
      ...     _ = jax.jit(triple)(jnp.ones(5)), jax.jit(triple)(jnp.ones(7))
      >>> counter.counts["triple"]
      2
    """

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def __enter__(self) -> CompileCounter:
        jax.monitoring.register_event_duration_secs_listener(self._record)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_duration_listener(self._record)

    def _record(self, event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            name = kwargs.get("fun_name", "")
            name = name[4:-1] if name.startswith("jit(") and name.endswith(")") else name  # "jit(f)": f's name
            with self._lock:
                self.counts[name] += 1


def _signature(tree):
    leaves, structure = jax.tree_util.tree_flatten(tree)
    return structure, tuple(_leaf(a) for a in leaves)


def _leaf(a):
    if isinstance(a, jax.Array):
        return ("array", a.shape, a.dtype.str, a.sharding if not isinstance(a, jax.core.Tracer) else None)
    if isinstance(a, np.ndarray):
        return ("array", a.shape, a.dtype.str, None)
    return ("value", type(a), a)
