"""The ``elsjax`` command line: a registry of subcommands, each a module under :mod:`elsjax.commands`.

A command module exposes ``HELP`` (optional one-line summary), ``add_arguments(parser)`` and ``run(args) -> int``.
Only the chosen command's module is imported, so a command whose module does not exist yet (or needs heavy
imports) costs nothing to the others. Bad input (``ValueError``, a missing data source, an existing output
directory, a bad environment variable) ends with one line on stderr and exit code 2, never a traceback (set
``ELSJAX_DEBUG=1`` to see it); a file that cannot be written (a full disk) ends with one line and exit code 1.

Example:
    >>> from elsjax import cli
    >>> cli.main(["scales", "--name", "MNIST_ResNet_zeros"])
    MNIST_ResNet_zeros: 3,3,5,5,5,7,7,7,9,9,11,11,11,11,13,15,15,15,15,15
    0
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable, Sequence

__all__ = ["COMMANDS", "main", "call", "UsageError"]

# name -> (module, one-line help). Add a command by adding a module and a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "sample": ("elsjax.commands.sample", "draw samples from a score machine and write a PNG grid, arrays and a record"),
    "train": ("elsjax.commands.train", "train a convolutional diffusion network"),
    "calibrate": ("elsjax.commands.calibrate", "calibrate a machine's patch size per step to a trained net"),
    "evaluate": ("elsjax.commands.evaluate", "measure how well machines predict a trained net's samples"),
    "explain": (
        "elsjax.commands.explain",
        "patch provenance of machine samples: which training patches each pixel comes from",
    ),
    "sweep": ("elsjax.commands.sweep", "run rows of the paper's tables: train, calibrate, evaluate, tabulate"),
    "scales": ("elsjax.commands.scales", "list the published scales (the patch size k of each step)"),
}

EXIT_USAGE = 2
EXIT_FAILED = 1  # the command could not finish (a file could not be written); its run directory says so


class UsageError(Exception):
    """Bad input found by a command; reported as one line on stderr with exit code 2."""


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="elsjax", description="Analytic, training-free diffusion models (equivariant local score machines)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return parser, sub


def _chosen(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _load(name: str):
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):  # the command itself is missing, not one of its imports
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``elsjax COMMAND ...`` and returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, sub = _parser()
    chosen = _chosen(argv)
    module = None
    for name, (_, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = _load(name)
            if module is not None:
                module.add_arguments(command_parser)
    args, extra = parser.parse_known_args(argv)
    if module is None:
        print(f"elsjax {args.command}: error: this command is not available in this version of elsjax", file=sys.stderr)
        return EXIT_USAGE
    if extra and not getattr(module, "ACCEPTS_EXTRA", False):
        parser.parse_args(argv)  # argparse's own message and exit code 2
    args.extra = extra
    return call(args.command, lambda: _run(module, args))


def enable_compilation_cache() -> str | None:
    """Keeps compiled programs on disk in ``$ELSJAX_CACHE/jax`` so that a repeated run skips compilation.

    A command compiles one program per (dictionary shape, k); on 2 CPU cores that is about 1 s each, a large part
    of a short run. Skipped when ``ELSJAX_COMPILATION_CACHE=0`` or when JAX's own cache directory is already set;
    an unwritable directory is reported in one line, and the command compiles without it.
    """
    import jax

    from elsjax import atomic, envvars
    from elsjax.datasources import cache_root

    if not envvars.get("ELSJAX_COMPILATION_CACHE") or jax.config.jax_compilation_cache_dir:
        return None
    try:
        path = str(atomic.check_writable(cache_root() / "jax", "ELSJAX_CACHE"))
    except ValueError as err:
        print(f"elsjax: warning: {err}; compiling without the compilation cache", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
    return path


def _run(module, args) -> int:
    from elsjax import envvars

    envvars.check_all()  # a bad value costs one line, before anything starts
    if getattr(module, "COMPILES", False):
        enable_compilation_cache()
    return module.run(args)


def call(name: str, fn: Callable[[], int | None]) -> int:
    """Runs ``fn()`` the way the command line runs a command, and returns the exit code.

    Bad input (``ValueError``, including :class:`elsjax.runs.RunDirError`; a missing data source; ``UsageError``)
    is one line on stderr, ``elsjax NAME: error: ...``, and exit code 2; a file that cannot be written
    (:class:`elsjax.atomic.WriteError`: a full disk, a read-only file system) is one line and exit code 1; Ctrl-C
    is exit code 130, SIGTERM 143. For scripts in ``experiments/`` that wrap a library job the way a command does.
    """
    from elsjax.atomic import WriteError
    from elsjax.datasources import SourceUnavailable

    try:
        return int(fn() or 0)
    except (UsageError, ValueError, SourceUnavailable, FileExistsError) as err:
        if _debug():
            raise  # the full traceback, for debugging
        message = " ".join(str(err).split())  # one line
        print(f"elsjax {name}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except WriteError as err:
        if _debug():
            raise
        message = " ".join(str(err).split())
        print(
            f"elsjax {name}: error: {message}; nothing half-written was left, and the run is unfinished (no "
            "record.json): make room (or fix the file system) and run the same command again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt as err:
        # Ctrl-C exits 130 and SIGTERM 143 (128 + the signal), as a shell reports them.
        signum = int(getattr(err, "signum", signal.SIGINT))
        print(f"elsjax {name}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum


def _debug() -> bool:
    """``ELSJAX_DEBUG`` (a bad value counts as off here; the command's start reports it)."""
    from elsjax import envvars

    try:
        return bool(envvars.get("ELSJAX_DEBUG"))
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
