"""Where a sample's wall time goes: dictionary builds, host-device transfer, compilation and evaluation, per k.

A 19-step machine sample runs one segment of steps per run of equal k in its schedule; each segment needs the
dictionary of its k (built on the host, then moved to the device) and the compiled program of its dictionary's
shape. This benchmark times, each in a fresh Python process (so that nothing is compiled yet and nothing is cached):

* ``cold``: :func:`elsjax.sampler.sample_machine` as a user calls it, its wall time (the first call of the
  process, compilation included), then the same call again in the same process (``warm``: programs compiled);
* ``split``: the same schedule run phase by phase with the library's own pieces: the host build
  (``patches.region_dictionaries(..., to_device=False)``), the transfer (``patches.device_put``), the trace and the
  compilation of the sampler's loop ahead of time (``sampler.sample_loop.lower(...).compile()``), and the segment's
  evaluations (the compiled loop, waited for). Dictionaries are kept or rebuilt as the sampler would.

The ``fixed`` share of a sample is ``(cold wall - its evaluations) / cold wall``, the evaluations timed in the same
process right after (every dictionary built, every program compiled, the same segments): everything a user waits for
beyond the evaluations (builds, transfers, tracing, compilation, dispatch). On a shared machine the load changes
from one process to the next, so only figures from one process are compared this way. With ``--reference PYTHON``, the
authors' PyTorch sampler (``/work/shared/reference/time_reference.py``, or ``--reference-script``) samples from
the same seed on the same training images in the same run, for the speed-up.

Usage:
  python experiments/fixed_costs.py --n 1000 5000 --repeats 2 --out experiments/results/fixed_costs_cpu_mnist.json
  python experiments/fixed_costs.py --n 1000 --reference /tmp/refvenv/bin/python --out fc_ref.json
  python experiments/fixed_costs.py --tiny        # seconds, synthetic data (what the test suite runs)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REFERENCE_SCRIPT = "/work/shared/reference/time_reference.py"
SCHEDULE = "MNIST_ResNet_circular"


def load_images(dataset: str, n: int, tiny: bool) -> np.ndarray:
    if tiny:
        rng = np.random.default_rng(0)
        codes = np.where(rng.uniform(size=(n, 12, 12, 1)) < 0.8, 0, rng.integers(0, 256, (n, 12, 12, 1)))
        return np.clip(codes / 127.5 - 1, -1, 1).astype(np.float32)
    from elsjax import data

    return data.load(dataset, limit=n or None).images


def seeds_for(images: np.ndarray, batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch,) + images.shape[1:]).astype(np.float32)


def schedule(args) -> list[int]:
    from elsjax import scales

    return [3, 3, 5, 5, 3, 3] if args.tiny else scales.resolve(args.schedule)


# ---------------------------------------------------------------------------------------------------------------
# Workers: each runs in its own process and prints one JSON line.


def worker_cold(args) -> dict:
    """A user's call, twice: the first call of a fresh process (compilation included), then again."""
    import jax

    from elsjax import sampler

    if args.persistent_cache:  # as the command line does (cli.enable_compilation_cache), in the given folder
        jax.config.update("jax_compilation_cache_dir", args.persistent_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)

    images = load_images(args.dataset, args.n[0], args.tiny)
    seeds = seeds_for(images, args.batch, args.seed)
    walls, cpu, programs = [], time.process_time(), sampler.sample_loop._cache_size()
    for _ in range(2):
        start = time.perf_counter()
        out = np.asarray(sampler.sample_machine(args.kind, seeds, images, schedule(args)))
        walls.append(time.perf_counter() - start)
        cpu = time.process_time() - cpu if len(walls) == 1 else cpu
        programs = sampler.sample_loop._cache_size() - programs if len(walls) == 1 else programs
    return {
        "cold_s": walls[0], "cold_cpu_s": cpu, "warm_s": walls[1], "programs": programs,
        **evals_only(args, images, seeds),
        "sample": out[:1].tolist(), "backend": jax.default_backend(),
    }  # fmt: skip


def evals_only(args, images, seeds) -> dict:
    """The same sample's segments alone (dictionaries built, programs compiled), in the same process, just after:
    ``evals_s`` (wall) and ``evals_cpu_s`` (CPU time of the process, less sensitive to other processes' load)."""
    import itertools

    import jax
    import jax.numpy as jnp

    from elsjax import denoisers, sampler

    grid, ks = sampler.machine_steps(schedule(args))
    built = {int(k): denoisers.build(args.kind, images, int(k)) for k in dict.fromkeys(ks)}
    x, start, total, cpu = jnp.asarray(seeds), 0, 0.0, 0.0
    for k, steps in itertools.groupby(ks):
        length = len(list(steps))
        segment = np.zeros_like(grid)
        segment[:length] = grid[start : start + length]
        machine, steps_left = built[int(k)], jnp.int32(length)
        t0, c0 = time.perf_counter(), time.process_time()
        x = sampler.sample_loop(
            denoisers.Denoiser.eps, machine, x, segment, num_steps=steps_left, return_trajectory=False
        )
        x = jax.block_until_ready(x)
        total, cpu = total + time.perf_counter() - t0, cpu + time.process_time() - c0
        start += length
    return {"evals_s": total, "evals_cpu_s": cpu}


def worker_split(args) -> dict:
    """The sample phase by phase: host build, transfer, trace, compile, evaluation (per segment, in order)."""
    import itertools

    import jax
    import jax.numpy as jnp

    from elsjax import denoisers, patches, sampler
    from elsjax.denoisers.patch import default_patch_chunk

    images = load_images(args.dataset, args.n[0], args.tiny)
    seeds = jnp.asarray(seeds_for(images, args.batch, args.seed))
    h, w, c = images.shape[1:]
    grid, ks = sampler.machine_steps(schedule(args))
    keep_bytes = sampler.default_keep_bytes()
    chunk = default_patch_chunk()
    cls = denoisers.get(args.kind)
    rows, built, programs, start, x = [], {}, {}, 0, seeds
    for k, steps in itertools.groupby(ks):
        k, length = int(k), len(list(steps))
        row = {"k": k, "steps": length, "build_s": 0.0, "transfer_s": 0.0, "trace_s": 0.0, "compile_s": 0.0}
        if k not in built:
            t0 = time.perf_counter()
            host = patches.region_dictionaries(images, k, cls.regions(h, w, k), chunk_size=chunk, to_device=False)
            t1 = time.perf_counter()
            tables = tuple(jax.block_until_ready(patches.device_put(d)) for d in host)
            t2 = time.perf_counter()
            built[k] = cls(tables=tables, k=k, image_shape=(h, w, c))
            row["build_s"], row["transfer_s"] = t1 - t0, t2 - t1
            row["entries"] = [int(np.prod(d.keys.shape[:-1])) for d in host]
            del host
        machine = built.pop(k)
        if k in ks[start + length :] and _nbytes(machine) + sum(map(_nbytes, built.values())) <= keep_bytes:
            built[k] = machine
        segment = np.zeros_like(grid)
        segment[:length] = grid[start : start + length]
        shape = tuple(leaf.shape for leaf in jax.tree_util.tree_leaves(machine))
        if (k, shape) not in programs:
            t0 = time.perf_counter()
            lowered = sampler.sample_loop.lower(
                denoisers.Denoiser.eps, machine, x, segment, num_steps=jnp.int32(length), return_trajectory=False
            )
            t1 = time.perf_counter()
            programs[k, shape] = lowered.compile()
            row["trace_s"], row["compile_s"] = t1 - t0, time.perf_counter() - t1
        t0 = time.perf_counter()
        x = jax.block_until_ready(programs[k, shape](machine, x, segment, num_steps=jnp.int32(length)))
        row["eval_s"] = time.perf_counter() - t0
        del machine
        rows.append(row)
        start += length
    return {"segments": rows}


def _nbytes(tree) -> int:
    import jax

    return sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(tree))


def worker_reference(args) -> dict:
    """The authors' sampler on the same images and seed (its own venv and interpreter)."""
    images = load_images(args.dataset, args.n[0], args.tiny)
    seeds = seeds_for(images, 1, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        kind = {"els": "ELS", "bbels": "bbELS"}[args.kind]
        np.savez(inp, train=images, x=seeds, k=3, t=0.5, machine=kind, scales=np.asarray(schedule(args)))
        env = {**os.environ, "REF_THREADS": str(args.reference_threads)}
        subprocess.run([args.reference, args.reference_script, str(inp), str(out)], check=True, env=env)
        result = json.loads(out.read_text())
    return {"sample_s": result["sample_s"], "eval_k3_s": result["eval_s"], "sample": result["sample"]}


# ---------------------------------------------------------------------------------------------------------------


def run_worker(args, mode: str, n: int, extra=()) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--n", str(n), "--dataset", args.dataset, "--kind", args.kind]
    cmd += ["--schedule", args.schedule, "--batch", str(args.batch), "--seed", str(args.seed), *extra]
    if args.tiny:
        cmd.append("--tiny")
    if args.reference:
        cmd += ["--reference", args.reference, "--reference-script", args.reference_script]
        cmd += ["--reference-threads", str(args.reference_threads)]
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the library's default: no persistent compilation cache
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(split: dict, cold: dict) -> dict:
    """Sums of the split; the fixed costs of the cold call against its evaluations timed in the same process."""
    seg = split["segments"]
    total = {key: sum(r[key] for r in seg) for key in ("build_s", "transfer_s", "trace_s", "compile_s", "eval_s")}
    fixed = cold["cold_s"] - cold["evals_s"]
    return {
        **{f"sum_{key}": v for key, v in total.items()},
        "cold_s": cold["cold_s"],
        "programs": cold["programs"],
        "cold_cpu_s": cold["cold_cpu_s"],
        "warm_s": cold["warm_s"],
        "evals_s": cold["evals_s"],
        "fixed_s": fixed,
        "fixed_share": fixed / cold["cold_s"],
        "evals_cpu_s": cold.get("evals_cpu_s"),
        "fixed_cpu_share": (cold["cold_cpu_s"] - cold["evals_cpu_s"]) / cold["cold_cpu_s"]
        if "evals_cpu_s" in cold
        else None,
    }


def print_split(n: int, split: dict, summary: dict) -> None:
    s = summary
    if split["segments"]:  # empty with --no-split
        print(f"N={n}: {'k':>3} {'steps':>5} {'build':>7} {'transfer':>8} {'trace':>6} {'compile':>7} {'eval':>7}")
        for r in split["segments"]:
            print(
                f"{'':{len(str(n)) + 3}} {r['k']:>3} {r['steps']:>5} {r['build_s']:>7.3f} {r['transfer_s']:>8.3f} "
                f"{r['trace_s']:>6.3f} {r['compile_s']:>7.3f} {r['eval_s']:>7.3f}"
            )
        print(
            f"{'':{len(str(n)) + 3}} sum       {s['sum_build_s']:>7.3f} {s['sum_transfer_s']:>8.3f} "
            f"{s['sum_trace_s']:>6.3f} {s['sum_compile_s']:>7.3f} {s['sum_eval_s']:>7.3f}"
        )
    print(
        f"  sample_machine: cold {s['cold_s']:.2f} s (fresh process; {s['cold_cpu_s']:.1f} s of CPU, "
        f"{s['programs']} sampling programs compiled), warm "
        f"{s['warm_s']:.2f} s; its evaluations alone {s['evals_s']:.2f} s (same process, just after): fixed costs "
        f"{s['fixed_s']:.2f} s = {100 * s['fixed_share']:.0f}% of the cold wall; in CPU time "
        f"{s['cold_cpu_s'] - s['evals_cpu_s']:.1f} s = {100 * s['fixed_cpu_share']:.0f}% of the cold call's",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000], help="training-set sizes (0 = full)")
    parser.add_argument("--kind", default="els", choices=["els", "bbels"])
    parser.add_argument("--schedule", default=SCHEDULE)
    parser.add_argument("--batch", type=int, default=1, help="seeds per sample")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="fresh-process repeats of each measurement")
    parser.add_argument("--reference", default="", help="a Python with torch: also time the authors' sampler")
    parser.add_argument("--reference-script", default=REFERENCE_SCRIPT)
    parser.add_argument("--reference-threads", type=int, default=2)
    parser.add_argument(
        "--persistent-cache", nargs="?", const="yes", default="",
        help="also time a fresh process whose persistent compilation cache (as the CLI's) was filled by another",
    )  # fmt: skip
    parser.add_argument(
        "--split", action=argparse.BooleanOptionalAction, default=True,
        help="also time the sample phase by phase in another fresh process (--no-split: the cold process alone)",
    )  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="a few seconds on synthetic data (for tests)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.n = [8] if args.n == [1000, 5000] else args.n
    if args.worker:
        fn = {"cold": worker_cold, "split": worker_split, "reference": worker_reference}[args.worker]
        print(json.dumps(fn(args)), flush=True)
        return None

    import jax  # not its backend: a device held here would leave the workers a fraction of its memory

    results = {
        "backend": None,  # the workers'
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "kind": args.kind,
        "schedule": args.schedule,
        "batch": args.batch,
        "runs": [],
    }
    for n in args.n:
        for repeat in range(args.repeats):
            split = run_worker(args, "split", n) if args.split else {"segments": []}
            cold = run_worker(args, "cold", n)
            results["backend"] = cold.pop("backend")
            summary = summarize(split, cold)
            entry = {"N": n, "repeat": repeat, "split": split, "cold": {k: v for k, v in cold.items() if k != "sample"}}
            entry["summary"] = summary
            print_split(n, split, summary)
            if args.persistent_cache:
                with tempfile.TemporaryDirectory() as folder:
                    run_worker(args, "cold", n, ["--persistent-cache", folder])  # fills the cache
                    cached = run_worker(args, "cold", n, ["--persistent-cache", folder])
                summary["cold_cached_s"] = cached["cold_s"]
                summary["fixed_cached_share"] = (cached["cold_s"] - cached["evals_s"]) / cached["cold_s"]
                print(
                    f"  with the persistent compilation cache filled by an earlier process: cold {cached['cold_s']:.2f} s, "
                    f"fixed costs {100 * summary['fixed_cached_share']:.0f}%",
                    flush=True,
                )
            if args.reference and args.batch == 1:
                ref = run_worker(args, "reference", n)
                diff = float(np.max(np.abs(np.asarray(ref["sample"]) - np.asarray(cold["sample"]))))
                entry["reference"] = {"sample_s": ref["sample_s"], "eval_k3_s": ref["eval_k3_s"]}
                entry["speedup_cold"] = ref["sample_s"] / summary["cold_s"]
                entry["speedup_warm"] = ref["sample_s"] / summary["warm_s"]
                print(
                    f"  reference sampler {ref['sample_s']:.1f} s: elsjax {entry['speedup_cold']:.1f}x faster cold, "
                    f"{entry['speedup_warm']:.1f}x warm" + f" (samples differ by at most {diff:.2g})",
                    flush=True,
                )
            results["runs"].append(entry)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
