"""Subcommands of the ``elsjax`` command line, one module each (registered in :data:`elsjax.cli.COMMANDS`).

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``; a job's command parses its config
(:func:`config_flags`, :func:`resolved`), calls the job in :mod:`elsjax.jobs` and prints a summary.
"""

from __future__ import annotations

import argparse

from elsjax import config as config_lib

EPILOG = "Any field can also be set as --config.FIELD=VALUE (after --config FILE, before plain flags)."


def config_flags(parser: argparse.ArgumentParser, fields) -> None:
    """``--config FILE`` and one flag per field of a table of :class:`elsjax.config.Field` (see
    :func:`elsjax.config.add_flags`)."""
    config_lib.add_flags(parser, fields)
    parser.epilog = EPILOG


def resolved(schema, args: argparse.Namespace):
    """The job's config: ``schema``, then the config file, the ``--config.F=V`` overrides and the flags."""
    return config_lib.resolve(schema, args, args.extra)


def is_primary() -> bool:
    """Whether this process reports a job's results: always, except in a multi-process run (process 0 only)."""
    import jax

    return jax.process_index() == 0


def job_command(fields, job: str, summary):
    """``(add_arguments, run)`` of a command that resolves the config of a table of fields, runs
    ``elsjax.jobs.JOB.run`` and prints ``summary(record, cfg)`` (in a multi-process run, process 0 only)."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        config_flags(parser, fields)

    def run(args: argparse.Namespace) -> int:
        import importlib

        cfg = resolved(config_lib.schema(fields), args)
        record = importlib.import_module(f"elsjax.jobs.{job}").run(cfg)
        if is_primary():
            print(summary(record, cfg))
        return 0

    return add_arguments, run
