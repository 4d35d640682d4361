"""Benchmark of patch provenance (docs/maths.md §11): its cost on top of the default kernel, compile and evaluation apart.

For each machine kind, training-set size N, patch size k and batch B it compiles and times, on the same machine and
inputs,

* off: ``Denoiser.denoise``, the default program (the code path every sampler uses; provenance leaves it as it
  was: the test suite checks that its compiled program has no top-k in it);
* on: ``Denoiser.posterior(top=TOP)``, the provenance program: the same mean plus the top entries and the
  entropy, in the same single pass over the dictionary;

and prints compile seconds (``jit(...).lower(...).compile()``), seconds per evaluation (best of ``--repeats``, warm),
throughput (query pixels x distinct dictionary entries per second) and the on/off ratio. With ``--sample`` it also
times one sample with the published schedule both ways (every step recorded), builds and compiles included.

Usage:
  python experiments/bench_provenance.py                  # MNIST N=1000, k=5, B=1 and 4, every kind, top 8
  python experiments/bench_provenance.py --sample --out experiments/results/bench_provenance_cpu_mnist_n1000.json
  python experiments/bench_provenance.py --tiny           # seconds, synthetic data (what the test suite runs)
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time

import jax
import numpy as np

from elsjax import denoisers, sampler, scales


def load_images(dataset: str, n: int, tiny: bool):
    if tiny:
        rng = np.random.default_rng(0)
        codes = np.where(rng.uniform(size=(n, 12, 12, 1)) < 0.8, 0, rng.integers(0, 256, (n, 12, 12, 1)))
        return (codes * np.float32(2 / 255) - 1).astype(np.float32), "synthetic 8-bit"
    from elsjax import data

    ds = data.load(dataset, limit=n)
    return ds.images, f"{ds.name} ({ds.source}, first {n})"


def compile_and_time(fn, args, repeats: int):
    """``(compile seconds, best seconds per call)`` of the jitted ``fn`` at ``args``."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))  # warm
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return compile_s, best


def entries(machine) -> int:
    """Distinct dictionary entries a query pixel streams past, averaged over pixels (padding excluded)."""
    h, w, _ = machine.image_shape
    if not isinstance(machine, denoisers.PatchDenoiser):  # IS and LS: one table of one group
        return int(
            np.sum(
                np.asarray(machine.tables[0].log_weights if machine.name == "ls" else machine.tables[0].aux[..., 1])
                > -1e29
            )
        )
    table, group = machine.pixel_groups((h, w), machine.k)
    counts = [np.sum(np.asarray(t.aux[..., 1]) > -1e29, axis=(-2, -1)).reshape(-1) for t in machine.tables]
    return float(np.mean([counts[t][g] for t, g in zip(table.reshape(-1), group.reshape(-1))]))


def bench_eval(kind, images, k, batch, top, repeats):
    machine = denoisers.build(kind, images, k)
    x = np.asarray(jax.random.normal(jax.random.key(1), (batch,) + images.shape[1:]), np.float32)
    t = np.full(batch, 0.3, np.float32)
    off_c, off_s = compile_and_time(jax.jit(lambda m, x, t: m.denoise(x, t)), (machine, x, t), repeats)
    on = jax.jit(lambda m, x, t: m.posterior(x, t, top=top))
    on_c, on_s = compile_and_time(on, (machine, x, t), repeats)
    pairs = batch * images.shape[1] * images.shape[2] * entries(machine)
    return {
        "kind": kind, "n": len(images), "k": machine.k, "batch": batch, "top": top, "pairs": pairs,
        "off_compile_s": off_c, "on_compile_s": on_c, "off_s": off_s, "on_s": on_s,
        "off_pairs_per_s": pairs / off_s, "on_pairs_per_s": pairs / on_s, "ratio": on_s / off_s,
    }  # fmt: skip


def bench_sample(kind, images, batch, top, schedule):
    seeds = np.asarray(jax.random.normal(jax.random.key(2), (batch,) + images.shape[1:]), np.float32)
    start = time.perf_counter()
    off = np.asarray(sampler.sample_machine(kind, seeds, images, schedule))
    off_s = time.perf_counter() - start
    start = time.perf_counter()
    on, records = sampler.sample_posteriors(kind, seeds, images, schedule, top=top)
    on_s = time.perf_counter() - start
    return {
        "kind": kind, "n": len(images), "batch": batch, "top": top, "steps": len(records), "off_s": off_s,
        "on_s": on_s, "ratio": on_s / off_s, "max_abs_diff": float(np.max(np.abs(np.asarray(on) - off))),
    }  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--n", type=int, default=1000, help="training images (the first N of the split)")
    parser.add_argument("--kinds", default="ideal,ls,els,bbels")
    parser.add_argument("--k", type=int, nargs="+", default=[5])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", action="store_true", help="also time one sample per kind, off and on")
    parser.add_argument("--scales", default="MNIST_ResNet_zeros", help="the sample's schedule")
    parser.add_argument("--tiny", action="store_true", help="a few seconds on synthetic data (for tests)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.n, args.k, args.batch, args.top, args.repeats, args.kinds = 8, [3], [1, 2], 4, 1, "els"
    images, source = load_images(args.dataset, args.n, args.tiny)
    kinds = args.kinds.split(",")
    print(f"data: {source}, {images.shape}; backend {jax.default_backend()}; top {args.top}")
    header = f"{'kind':>6} {'k':>3} {'B':>3} | {'compile off':>11} {'on':>6} | {'eval off':>9} {'on':>9} {'on/off':>6}"
    print(header + f" | {'Mpairs/s off':>12} {'on':>7}")
    results = {"data": source, "backend": jax.default_backend(), "machine": platform.processor() or platform.machine()}
    results["evals"] = []
    for kind, k, batch in itertools.product(kinds, args.k, args.batch):
        if kind == "ideal" and k != args.k[0]:
            continue
        r = bench_eval(kind, images, k, batch, args.top, args.repeats)
        results["evals"].append(r)
        print(
            f"{kind:>6} {r['k']:>3} {batch:>3} | {r['off_compile_s']:>10.2f}s {r['on_compile_s']:>5.2f}s | "
            f"{r['off_s']:>8.4f}s {r['on_s']:>8.4f}s {r['ratio']:>6.2f} | "
            f"{r['off_pairs_per_s'] / 1e6:>12.1f} {r['on_pairs_per_s'] / 1e6:>7.1f}",
            flush=True,
        )
    results["samples"] = []
    if args.sample or args.tiny:
        schedule = [3, 3, 5, 3] if args.tiny else scales.resolve(args.scales)
        print(f"\nsamples ({len(schedule) - 1} steps, every step recorded; builds and compiles included)")
        for kind in kinds:
            r = bench_sample(kind, images, 1, args.top, schedule)
            results["samples"].append(r)
            print(
                f"{kind:>6} B=1 | off {r['off_s']:7.2f}s  on {r['on_s']:7.2f}s  on/off {r['ratio']:.2f}  "
                f"max |sample on - off| {r['max_abs_diff']:.1e}",
                flush=True,
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
