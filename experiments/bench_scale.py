"""Time per score evaluation against device count, on fake CPU devices.

For each device count d it starts a fresh interpreter with ``--xla_force_host_platform_device_count=d`` (JAX fixes
its devices when it starts), builds the machine on ``--n`` training images and times one evaluation of a batch of
``--batch`` images (compiled, warm, best of ``--repeats``) on each mesh (seeds x entries) that uses d devices, and
without a mesh (the one-device path) for comparison.

Fake CPU devices share the machine's cores (2 here): XLA already spreads one device's work over every core, so more
devices cannot make an evaluation faster here, only add the cost of splitting and merging. The table measures that
overhead; the speed-up needs real devices (GPUs, TPU cores, or hosts), one per shard.

Usage:
  python experiments/bench_scale.py                          # ELS k=3, N=1000 Fashion-MNIST, B=4, d in 1,2,4,8
  python experiments/bench_scale.py --kind bbels --k 5 --devices 1,2,4 --out results.json
  python experiments/bench_scale.py --tiny                   # seconds (synthetic images)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def meshes_for(d: int) -> list[tuple[int, int]]:
    """(seeds, entries) pairs that use exactly d devices: all entries, all seeds, and one square-ish split."""
    out = [(1, d)]
    if d > 1:
        out.append((d, 1))
    for s in range(2, d):
        if d % s == 0 and (s, d // s) not in out and s <= d // s:
            out.append((s, d // s))
    return out


def worker(args) -> list[dict]:
    import jax
    import numpy as np

    from elsjax import denoisers, sharding

    if args.tiny:
        rng = np.random.default_rng(0)
        codes = np.where(rng.uniform(size=(args.n, 12, 12, 1)) < 0.8, 0, rng.integers(0, 256, (args.n, 12, 12, 1)))
        images, source = (codes * np.float32(2 / 255) - 1).astype(np.float32), "synthetic 8-bit 12x12"
    else:
        from elsjax import data

        ds = data.load(args.dataset, limit=args.n)
        images, source = ds.images, f"{ds.name} ({ds.source})"
    x = np.random.default_rng(1).normal(size=(args.batch,) + images.shape[1:]).astype(np.float32)
    d = len(jax.devices())
    rows = []
    for mesh_shape in [None] + meshes_for(d):
        if mesh_shape is not None and args.batch % mesh_shape[0]:
            continue
        mesh = None if mesh_shape is None else sharding.make_mesh(*mesh_shape)
        machine = denoisers.build(args.kind, images, args.k, mesh=mesh)
        xs = x if mesh is None else sharding.put_batch(x, mesh)
        start = time.perf_counter()
        jax.block_until_ready(machine.score(xs, 0.5))  # compile and warm up
        first = time.perf_counter() - start
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(machine.score(xs, 0.5))
            best = min(best, time.perf_counter() - start)
        entries = machine.tables[0].keys.shape[-3] * machine.tables[0].keys.shape[-2]
        rows.append(
            {
                "devices": d,
                "mesh": "none" if mesh_shape is None else f"{mesh_shape[0]} x {mesh_shape[1]}",
                "seconds_per_eval": round(best, 4),
                "first_call_s": round(first, 2),
                "dictionary_entries": int(entries),
                "data": source,
            }
        )
        del machine
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="els")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--n", type=int, default=1000, help="training images")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--batch", type=int, default=4, help="images per evaluation")
    parser.add_argument("--devices", default="1,2,4,8", help="fake CPU device counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="tiny synthetic data, devices 1,2 (for tests)")
    parser.add_argument("--out", help="write the table as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.n, args.devices, args.repeats, args.batch = 6, "1,2", 1, 2
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    rows = []
    for d in [int(v) for v in args.devices.split(",")]:
        env = dict(os.environ)
        env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={d}"
        argv_ = [sys.executable, __file__, "--worker", "--kind", args.kind, "--k", str(args.k), "--n", str(args.n)]
        argv_ += ["--dataset", args.dataset, "--batch", str(args.batch), "--repeats", str(args.repeats)]
        argv_ += ["--tiny"] if args.tiny else []
        done = subprocess.run(argv_, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    base = rows[0]["seconds_per_eval"]
    print(f"{args.kind} k={args.k}, N={args.n} ({rows[0]['data']}), batch {args.batch}, on {os.cpu_count()} CPU cores")
    print("fake devices share the cores: no speed-up is expected here, the table shows the cost of sharding")
    print(f"{'devices':>7}  {'mesh (seeds x entries)':>22}  {'s / evaluation':>14}  {'vs one device':>13}")
    for r in rows:
        print(
            f"{r['devices']:>7}  {r['mesh']:>22}  {r['seconds_per_eval']:>14.4f}  {r['seconds_per_eval'] / base:>12.2f}x"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": vars(args), "cpu_cores": os.cpu_count(), "machine": platform.machine(), "rows": rows}, f,
                      indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
