"""Dictionary build time, host (NumPy) against compiled (jitted), beside one evaluation at the same k.

For each training set and k it builds the ELS dictionary (``patches.region_dictionaries`` with
``patches.HostBuilder()`` and ``patches.CompiledBuilder()``), the two builds alternating in one process, ``repeats``
times each, after one untimed compiled build (its compilation, reported as ``compiled_first_s``). It checks that the
two builds are identical (a digest of every array's bytes), then times one compiled ELS evaluation at the same k
(one image, t = 0.5, warm; ``bench.timeit``) and prints each build's best time and its ratio to that evaluation.

On a shared machine the load changes from minute to minute: only the figures of one row (measured alternately, in
one process) compare directly.

Usage:
  python experiments/bench_build.py                                  # MNIST N=1000, 5000; Fashion-MNIST 60k; k 3, 5, 9
  python experiments/bench_build.py --data mnist:1000 --k 3 --repeats 3
  python experiments/bench_build.py --tiny                           # seconds, synthetic data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (experiments/bench.py: data loading and warm timing)

from elsjax import denoisers, dictcache, patches  # noqa: E402

DEFAULT_DATA = ("mnist:1000", "mnist:5000", "fashion_mnist:60000")


def timed_build(images, k: int, builder) -> tuple[float, tuple]:
    h, w = images.shape[1:3]
    start = time.perf_counter()
    regions = patches.els_regions(h, w, k)
    tables = jax.block_until_ready(patches.region_dictionaries(images, k, regions, builder=builder))
    return time.perf_counter() - start, tables


def digest(tables) -> str:
    return dictcache.digest(np.concatenate([np.asarray(a).view(np.uint8).ravel() for a in jax.tree.leaves(tables)]))


BUILDERS = {"host": patches.HostBuilder(), "compiled": patches.CompiledBuilder()}


def bench_k(images, k: int, repeats: int, names) -> dict:
    builders = {name: BUILDERS[name] for name in names}
    digests, compiled_first_s = {}, float("nan")
    if "compiled" in builders:
        compiled_first_s, tables = timed_build(images, k, builders["compiled"])
        del tables
    times = {name: [] for name in builders}
    for _ in range(repeats):
        for name, builder in builders.items():  # alternately, so that both see the same load
            seconds, tables = timed_build(images, k, builder)
            times[name].append(seconds)
            digests[name] = digest(tables)
            entries = int(np.sum(np.asarray(tables[0].aux[..., 1]) > -1e29))
            del tables
    machine = denoisers.build("els", images, k)
    x = np.random.default_rng(1).normal(size=(1,) + images.shape[1:]).astype(np.float32)
    eval_s = bench.timeit(denoisers.Denoiser.score, machine, x, np.full(1, 0.5, np.float32), repeats=1)
    row = {"N": images.shape[0], "k": k, "distinct": entries, "identical": len(set(digests.values())) == 1}
    row |= {"compiled_first_s": compiled_first_s, "eval_s": eval_s, "load_avg": os.getloadavg()}
    for name, seconds in times.items():
        row |= {f"{name}_s": min(seconds), f"{name}_over_eval": min(seconds) / eval_s, f"{name}_all_s": seconds}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=DEFAULT_DATA, help="dataset:N pairs (elsjax.data names)")
    parser.add_argument("--k", nargs="+", type=int, default=[3, 5, 9])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="synthetic 8-bit data, seconds")
    parser.add_argument("--builders", nargs="+", choices=sorted(BUILDERS), default=list(BUILDERS))
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    data = ["synthetic:64"] if args.tiny else args.data
    print(f"# {platform.node()} {jax.default_backend()} jax {jax.__version__}, host build threads: default")
    print(f"# data N k | distinct | one eval s | per builder ({', '.join(args.builders)}): build s, build/eval")
    rows = []
    for spec in data:
        name, n = spec.split(":")
        images, source = bench.load_images(name, int(n), args.tiny)
        for k in args.k:
            row = bench_k(images, k, args.repeats, args.builders) | {"data": source}
            rows.append(row)
            builds = " | ".join(f"{b} {row[b + '_s']:.2f} s {row[b + '_over_eval']:.2f}" for b in args.builders)
            print(
                f"{name} {row['N']} {k} | {row['distinct']} | eval {row['eval_s']:.2f} s | {builds} | "
                f"compiled first {row['compiled_first_s']:.2f} s | identical {row['identical']} | "
                f"load {row['load_avg'][0]:.1f}",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
