"""Subcommands of the ``elsjax`` command line, one module each (registered in :data:`elsjax.cli.COMMANDS`).

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""
