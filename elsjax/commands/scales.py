"""``elsjax scales``: the published scales (one patch size k per step; docs/maths.md §6), one line each."""

from __future__ import annotations

import argparse

from elsjax import scales


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="print only these scales")


def run(args: argparse.Namespace) -> int:
    if args.name and args.name not in scales.PUBLISHED and args.name not in scales.ALIASES:
        raise ValueError(f"name: no published scales {args.name!r}; known: {', '.join(scales.names())}")
    chosen = [args.name] if args.name else scales.names()
    for name in chosen:
        print(f"{name}: {','.join(str(k) for k in scales.resolve(name))}")
    return 0
