"""``elsjax schedules``: the published k schedules (SPEC 5), one per line."""

from __future__ import annotations

import argparse

from elsjax import schedules


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="print only this schedule")


def run(args: argparse.Namespace) -> int:
    if args.name and args.name not in schedules.PUBLISHED and args.name not in schedules.ALIASES:
        raise ValueError(f"name: no published schedule {args.name!r}; known: {', '.join(schedules.names())}")
    chosen = [args.name] if args.name else schedules.names()
    for name in chosen:
        print(f"{name}: {','.join(str(k) for k in schedules.get_schedule(name))}")
    return 0
