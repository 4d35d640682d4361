"""The approximate coarse-to-fine retrieval ("golddiff", docs/maths.md §12.6) against exact IS: error and speed at
every t of the machine grid.

For each training-set size N it takes the first N training images as the dictionary and the next B images as clean
held-out images, noises them at every t of the machine grid (t = 0.95, 0.90, ..., 0.05; the same noise for every
denoiser), and compares each retrieval configuration ``subset:tail`` with exact IS (``"ideal"``):

* err: the median over the B images of ``||mu_retrieval - mu_IS|| / ||mu_IS - mean||`` (the error relative to how
  far the exact estimate is from the training mean), and its maximum over the images;
* ms: seconds per call of the compiled denoiser on the batch (best of ``--repeats``, warm), and the speed-up.

A configuration ``subset:tail:t0`` scans the whole set exactly above ``t0`` (``exact_above``).

Usage:
  python experiments/bench_retrieval.py                               # MNIST, N = 1000 and 5000, B = 8
  python experiments/bench_retrieval.py --n 5000 --configs 64:32,64:32:0.75 --out retrieval.json
  python experiments/bench_retrieval.py --tiny                        # seconds, synthetic data
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

from elsjax import denoisers, noise


def load(n: int, batch: int, tiny: bool):
    if tiny:
        rng = np.random.default_rng(0)
        images = np.tanh(rng.normal(size=(n + batch, 16, 16, 1))).astype(np.float32)
        return images[:n], images[n:], "synthetic 16x16"
    from elsjax import data

    ds = data.load("mnist", limit=n + batch)
    return ds.images[:n], ds.images[n:], f"{ds.name} ({ds.source}), first {n} + {batch} held out"


def timed(machine, x, t, repeats: int):
    """``(mean [B, ...], best seconds per call)``; compiled and warmed first."""
    fn = jax.jit(lambda m, x, t: m.denoise(x, t))
    out = jax.block_until_ready(fn(machine, x, t))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(machine, x, t))
        best = min(best, time.perf_counter() - start)
    return np.asarray(out), best


def run(n: int, batch: int, configs, pool: int, repeats: int, tiny: bool, steps: int = 20) -> dict:
    train, held, what = load(n, batch, tiny)
    mean = train.mean(axis=0)
    exact = denoisers.build("ideal", train)
    machines = {
        ":".join(map(str, c)): denoisers.build(
            "golddiff", train, subset=c[0], tail=c[1], pool=pool, key=jax.random.key(0),
            exact_above=c[2] if len(c) > 2 else None,
        )
        for c in configs
    }  # fmt: skip
    rng = np.random.default_rng(1)
    rows = []
    for i in range(steps - 1, 0, -1):
        t = np.float32(i / steps)
        a, b = (float(v) for v in noise.signal_noise_std(t))
        x = (a * held + b * rng.normal(size=held.shape)).astype(np.float32)
        t_batch = np.full(batch, t, np.float32)
        want, exact_s = timed(exact, x, t_batch, repeats)
        scale = np.linalg.norm((want - mean).reshape(batch, -1), axis=1)
        row = {"t": float(t), "exact_s": exact_s}
        for name, machine in machines.items():
            got, s = timed(machine, x, t_batch, repeats)
            err = np.linalg.norm((got - want).reshape(batch, -1), axis=1) / scale
            row[name] = {
                "err_median": float(np.median(err)),
                "err_max": float(err.max()),
                "s": s,
                "speedup": exact_s / s,
            }
        rows.append(row)
    return {"n": n, "batch": batch, "data": what, "pool": pool, "rows": rows}


def print_table(result: dict) -> None:
    names = [k for k in result["rows"][0] if ":" in k]
    print(f"\nN = {result['n']}, B = {result['batch']}, {result['data']}, pool {result['pool']}")
    print("subset:tail configurations; err = median (max) of ||mu - mu_IS|| / ||mu_IS - mean|| over the batch")
    head = f"{'t':>5} {'exact ms':>9} " + " ".join(f"{n + ' err':>20} {'ms':>7} {'x':>6}" for n in names)
    print(head)
    for row in result["rows"]:
        cells = [f"{row['t']:5.2f} {1e3 * row['exact_s']:9.2f}"]
        for name in names:
            c = row[name]
            cells.append(f"{c['err_median']:11.2e} ({c['err_max']:.1e}) {1e3 * c['s']:7.2f} {c['speedup']:6.1f}")
        print(" ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--configs", default="64:32,256:64,64:32:0.75", help="subset:tail[:exact_above], comma-separated"
    )
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="synthetic 16x16 data (seconds)")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    configs = [tuple(float(v) if "." in v else int(v) for v in c.split(":")) for c in args.configs.split(",")]
    results = []
    for n in args.n:
        result = run(n, args.batch, configs, args.pool, args.repeats, args.tiny)
        print_table(result)
        results.append(result)
    if args.out:
        meta = {"backend": jax.default_backend(), "device": str(jax.devices()[0]), "machine": platform.processor()}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
