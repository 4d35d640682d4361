"""Host memory per process for one ELS dictionary (k = 3 by default) of the full Fashion-MNIST training set, built
by one process or split over several (``jax.distributed`` on this machine, one CPU device each).

Each process loads the training set, keeps its share of every class (``elsjax.sharding.local_share``), builds the
ELS machine on a mesh with one ``"entries"`` column per process (``elsjax.make_mesh()``; one process: no mesh, the
one-device path) and reports its resident memory: after loading the data, the peak and the steady state after the
build, and the bytes of dictionary it holds. With ``--evaluate`` it also times one score evaluation of one image
(the combined score, every process taking part) and checks it is finite.

Usage:
  python experiments/scale_memory.py --processes 1          # the one-process baseline
  python experiments/scale_memory.py --processes 2          # two processes on this machine (loopback, Gloo)
  python experiments/scale_memory.py --processes 2 --limit 2000 --evaluate

Prints one JSON line per process (and writes them with --out).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time


def rss_gb() -> tuple[float, float]:
    """(current, peak) resident set size in GB (Linux)."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * resource.getpagesize() / 2**30
    return round(current, 3), round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def worker(args) -> dict:
    """One process: its share of the training set, its share of the dictionary."""
    from elsjax import sharding

    distributed = sharding.initialize()  # ELSJAX_COORDINATOR, ELSJAX_NUM_PROCESSES, ELSJAX_PROCESS_ID
    import jax
    import numpy as np

    from elsjax import data, denoisers

    start = time.perf_counter()
    dataset = data.load(args.dataset, limit=args.limit or None)
    train, _ = sharding.local_share(dataset.images, dataset.labels)
    del dataset
    after_data = rss_gb()
    mesh = sharding.make_mesh() if distributed else None
    machine = denoisers.build("els", train, args.k, mesh=mesh)
    jax.block_until_ready(machine.tables)
    build_s = time.perf_counter() - start
    held = sum(s.data.nbytes for leaf in jax.tree_util.tree_leaves(machine) for s in leaf.addressable_shards)
    report = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "dataset": args.dataset,
        "own_images": int(len(train)),
        "k": args.k,
        "mesh": sharding.describe(mesh),
        "dictionary_entries_global": int(machine.tables[0].keys.shape[-3] * machine.tables[0].keys.shape[-2]),
        "dictionary_bytes_held": int(held),
        "rss_after_data_gb": after_data[0],
        "rss_after_build_gb": rss_gb()[0],
        "peak_rss_gb": rss_gb()[1],
        "build_s": round(build_s, 1),
    }
    if args.evaluate:
        x = np.random.default_rng(0).normal(size=(1,) + train.shape[1:]).astype(np.float32)
        if mesh is not None:
            x = sharding.put_batch(x, mesh)
        t0 = time.perf_counter()
        score = sharding.to_host(jax.block_until_ready(machine.score(x, 0.5)))
        report["evaluate_s"] = round(time.perf_counter() - t0, 1)  # compile included
        report["score_finite"] = bool(np.all(np.isfinite(score)))
        report["peak_rss_gb"] = rss_gb()[1]
    if distributed:
        jax.distributed.shutdown()
    return report


def launch(args) -> list[dict]:
    """Starts ``args.processes`` workers of this script on this machine and collects their reports."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for i in range(args.processes):
        env = dict(os.environ)
        if args.processes > 1:
            env.update(
                ELSJAX_COORDINATOR=f"127.0.0.1:{port}", ELSJAX_NUM_PROCESSES=str(args.processes),
                ELSJAX_PROCESS_ID=str(i),
            )  # fmt: skip
        argv = [sys.executable, __file__, "--worker", "--dataset", args.dataset, "--limit", str(args.limit)]
        argv += ["--k", str(args.k)] + (["--evaluate"] if args.evaluate else [])
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True))
    reports = []
    for p in procs:
        out, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SystemExit(f"a worker failed with exit code {p.returncode}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--limit", type=int, default=0, help="training images (0: all)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--evaluate", action="store_true", help="also time one score evaluation of one image")
    parser.add_argument("--out", help="write the reports as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return 0
    reports = launch(args)
    for r in reports:
        print(json.dumps(r))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(reports, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
