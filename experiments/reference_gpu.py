"""elsjax and the authors' PyTorch reference side by side on one device: one ELS evaluation per (N, k) and a 19-step
sample, on the same training images, query and seed, each timed with the device synchronised; and the largest
differences between their scores and between their samples.

Two processes share the device in turn. A worker, run by any Python that has torch and numpy (``--torch-python``:
the GPU machine's ``python3``, or a CPU venv for a rehearsal), imports the reference from ``--reference-dir`` and
calls its public classes (``utils.idealscore.LocalEquivScoreModule`` and ``ScheduledScoreMachine``; matplotlib and
torchvision, which the reference imports but never uses here, are stubbed when they are missing); it has exited
before this process starts JAX, so the two never hold the device at once. Then elsjax evaluates the same inputs.

Inputs, as experiments/bench.py and experiments/fixed_costs.py use them: the first N MNIST training images
(``elsjax.data.load``), the query ``x`` of bench.py's batch-1 rows (``default_rng(1)``), ``t = 0.5``, and the seed
of fixed_costs.py's samples (``default_rng(2)``), with the published ``MNIST_ResNet_circular`` scales.

Reference settings: the training set stays on the host in a ``TensorDataset`` and is streamed in loader batches of
``--ref-batch`` images (the authors' demo default is 64 and their script's 256; this batch must divide N, since
the reference averages each batch and unequal batches would reweight the dictionary, docs/maths.md). Its float32
convolutions run with TF32 off, as elsjax's products run at ``Precision.HIGHEST``; on a GPU each evaluation is
timed again with TF32 on (PyTorch's default for convolutions), with its score difference.

Times: ``first`` is the first call of a shape (the reference: cuDNN's algorithm choice; elsjax: compilation), then
the best of ``--repeats`` calls. elsjax's build (host deduplication and transfer) is timed apart.

Usage:
  python experiments/reference_gpu.py --n 1000 5000 --k 3 5 9 --sample-n 1000 --out reference.json
  python experiments/reference_gpu.py --torch-python /tmp/tv/bin/python --n 200 --k 3 --sample-n 200 --ref-batch 100
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE_DIRS = [HERE.parent / ".gpu" / "reference" / "convolutional_diffusion",
                  Path("/work/shared/reference/convolutional_diffusion")]  # fmt: skip
SCHEDULE = "MNIST_ResNet_circular"
T_EVAL = 0.5


def query(image_shape) -> np.ndarray:
    """bench.py's batch-1 query: ``default_rng(1)`` normal, float32 ``[1, H, W, C]``."""
    return np.random.default_rng(1).normal(size=(1, *image_shape)).astype(np.float32)


def seed_image(image_shape) -> np.ndarray:
    """fixed_costs.py's batch-1 seed: ``default_rng(2)`` normal, float32 ``[1, H, W, C]``."""
    return np.random.default_rng(2).normal(size=(1, *image_shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# The worker: torch and the reference only (no JAX, no elsjax).


def _stub_missing(name: str, submodules) -> None:
    if importlib.util.find_spec(name) is not None:
        return
    root = types.ModuleType(name)
    sys.modules[name] = root
    for sub in submodules:
        module = types.ModuleType(f"{name}.{sub}")
        setattr(root, sub, module)
        sys.modules[f"{name}.{sub}"] = module


def worker(args) -> None:
    _stub_missing("torchvision", ["transforms", "datasets", "models"])
    _stub_missing("matplotlib", ["pyplot", "cm"])
    sys.path.insert(0, args.reference_dir)
    import torch
    from torch.utils.data import TensorDataset
    from utils import idealscore  # the reference's module

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = device.type == "cuda"
    if not on_gpu:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    precisions = ["fp32", "tf32"] if on_gpu else ["fp32"]

    def set_precision(name: str) -> None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"

    def timed(fn):
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            out = fn()
        sync()
        return out, time.perf_counter() - start

    start = time.perf_counter()
    torch.zeros(1, device=device).add_(1).sum().item()  # the device's context, outside every timing
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if on_gpu else "cpu",
            "init_s": time.perf_counter() - start, "threads": torch.get_num_threads()}  # fmt: skip
    inputs = np.load(args.inputs)
    train = torch.from_numpy(np.ascontiguousarray(inputs["train"].transpose(0, 3, 1, 2)))
    n, c, h = train.shape[0], train.shape[1], train.shape[2]
    dataset = TensorDataset(train, torch.zeros(n, dtype=torch.long))
    x = torch.from_numpy(np.ascontiguousarray(inputs["x"].transpose(0, 3, 1, 2))).to(device)
    t = torch.tensor(float(inputs["t"]))
    common = dict(batch_size=args.ref_batch, image_size=h, channels=c, schedule=idealscore.cosine_noise_schedule)
    rows, arrays = [], {}
    for k in [int(v) for v in inputs["ks"]]:
        module = idealscore.LocalEquivScoreModule(dataset, kernel_size=k, **common)
        row = {"N": n, "k": k}
        for precision in precisions:
            set_precision(precision)
            evaluate = functools.partial(module, t, x, device=device)
            score, first = timed(evaluate)
            best = min(timed(evaluate)[1] for _ in range(args.repeats))
            row[precision] = {"first_s": first, "warm_s": best}
            arrays[f"score_k{k}_{precision}"] = score.permute(0, 2, 3, 1).cpu().numpy()
        rows.append(row)
        print(f"reference ELS N={n} k={k}: " + ", ".join(f"{p} {row[p]['warm_s'] * 1e3:.1f} ms" for p in precisions))
    samples = []
    if "scales" in inputs.files:
        set_precision("fp32")
        module = idealscore.LocalEquivScoreModule(dataset, kernel_size=3, **common)
        machine = idealscore.ScheduledScoreMachine(module, in_channels=c, imsize=h, scales=inputs["scales"].tolist())
        seed = torch.from_numpy(np.ascontiguousarray(inputs["seed"].transpose(0, 3, 1, 2))).to(device)
        runs = [timed(functools.partial(machine, seed, device=device)) for _ in range(args.sample_repeats)]
        out, walls = runs[-1][0], [wall for _, wall in runs]
        arrays["sample"] = out.permute(0, 2, 3, 1).cpu().numpy()
        samples.append({"N": n, "batch": 1, "seconds": walls})
        print(f"reference 19-step ELS sample N={n}: " + ", ".join(f"{w:.2f} s" for w in walls))
    np.savez(args.out, **arrays)
    Path(args.out).with_suffix(".json").write_text(json.dumps({**info, "evals": rows, "samples": samples}))


# ---------------------------------------------------------------------------------------------------------------
# The driver: inputs, the worker, then elsjax on the same inputs.


def run_reference(args, images, ks, sample: bool, folder: Path) -> tuple[dict, dict]:
    from elsjax import scales

    inputs, out = folder / f"in_{len(images)}.npz", folder / f"out_{len(images)}.npz"
    extra = {"scales": np.asarray(scales.resolve(SCHEDULE)), "seed": seed_image(images.shape[1:])} if sample else {}
    np.savez(inputs, train=images, x=query(images.shape[1:]), t=T_EVAL, ks=np.asarray(ks), **extra)
    cmd = [args.torch_python, __file__, "--worker", "--inputs", str(inputs), "--out", str(out)]
    cmd += ["--reference-dir", args.reference_dir, "--ref-batch", str(args.ref_batch), "--repeats", str(args.repeats)]
    cmd += ["--sample-repeats", str(args.sample_repeats), "--threads", str(args.threads)]
    subprocess.run(cmd + (["--device", args.device] if args.device else []), check=True)
    with np.load(out) as arrays:
        return json.loads(out.with_suffix(".json").read_text()), dict(arrays)


def run_elsjax(images, k: int, repeats: int) -> tuple[dict, np.ndarray]:
    import bench  # experiments/bench.py: the same build and timing as its rows
    import jax
    import jax.numpy as jnp

    from elsjax import denoisers

    machine, build_s = bench.build(images, k)
    x, t = jnp.asarray(query(images.shape[1:])), jnp.full((1,), T_EVAL)
    start = time.perf_counter()
    score = np.asarray(jax.block_until_ready(denoisers.Denoiser.score(machine, x, t)))
    first = time.perf_counter() - start
    warm = bench.timeit(denoisers.Denoiser.score, machine, x, t, repeats=repeats)
    return {"first_s": first, "warm_s": warm, "build_s": build_s}, score


def run_elsjax_sample(images, repeats: int) -> tuple[list[float], np.ndarray]:
    from elsjax import sampler, scales

    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = np.asarray(sampler.sample_machine("els", seed_image(images.shape[1:]), images, scales.resolve(SCHEDULE)))
        walls.append(time.perf_counter() - start)
    return walls, out


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def compare(args) -> dict:
    from elsjax import data

    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "t": T_EVAL,
               "ref_batch": args.ref_batch, "schedule": SCHEDULE, "evals": [], "samples": []}  # fmt: skip
    loaded, references = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(set(args.n) | set(args.sample_n)):  # every reference run first: then JAX takes the device
            loaded[n] = data.load(args.dataset, limit=n).images
            ks = args.k if n in args.n else []
            references[n] = run_reference(args, loaded[n], ks, n in args.sample_n, Path(tmp))
    import jax

    results.update(jax=jax.__version__, backend=jax.default_backend(), devices=[str(d) for d in jax.devices()])
    for n, (info, arrays) in references.items():
        results.update({key: info[key] for key in ("torch", "device", "init_s", "threads")})
        for ref in info["evals"]:
            ours, score = run_elsjax(loaded[n], ref["k"], args.repeats)
            row = {**ref, "elsjax": ours, "ref_max_abs": float(np.max(np.abs(arrays[f"score_k{ref['k']}_fp32"])))}
            for precision in ("fp32", "tf32"):
                if precision in ref:
                    row[f"max_abs_diff_{precision}"] = max_abs(score, arrays[f"score_k{ref['k']}_{precision}"])
                    row[f"speedup_warm_{precision}"] = ref[precision]["warm_s"] / ours["warm_s"]
            results["evals"].append(row)
        for ref in info["samples"]:
            walls, out = run_elsjax_sample(loaded[n], args.sample_repeats)
            results["samples"].append({**ref, "reference_s": ref.pop("seconds"), "elsjax_s": walls,
                                       "max_abs_diff": max_abs(out, arrays["sample"])})  # fmt: skip
    return results


def print_table(results: dict) -> None:
    print(f"{'N':>6} {'k':>3} {'ref ms':>8} {'ref tf32':>8} {'elsjax ms':>9} {'ratio':>7} {'max|diff|':>9} {'rel':>8}")
    for r in results["evals"]:
        tf32 = f"{r['tf32']['warm_s'] * 1e3:>8.1f}" if "tf32" in r else f"{'-':>8}"
        print(
            f"{r['N']:>6} {r['k']:>3} {r['fp32']['warm_s'] * 1e3:>8.1f} {tf32} {r['elsjax']['warm_s'] * 1e3:>9.2f} "
            f"{r['speedup_warm_fp32']:>6.1f}x {r['max_abs_diff_fp32']:>9.2e} {r['max_abs_diff_fp32'] / r['ref_max_abs']:>8.1e}"
        )
    for s in results["samples"]:
        print(
            f"19-step sample N={s['N']}: reference {', '.join(f'{v:.2f}' for v in s['reference_s'])} s; elsjax "
            f"{', '.join(f'{v:.2f}' for v in s['elsjax_s'])} s (first call of this process, then again); "
            f"samples differ by at most {s['max_abs_diff']:.2g}",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--n", type=int, nargs="*", default=[1000, 5000], help="training-set sizes of the evaluations")
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 9])
    parser.add_argument("--sample-n", type=int, nargs="*", default=[1000], help="training-set sizes of the samples")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the first (the best is kept)")
    parser.add_argument("--sample-repeats", type=int, default=2, help="samples timed (the first is the first call)")
    parser.add_argument("--ref-batch", type=int, default=200, help="the reference's loader batch (divides every N)")
    parser.add_argument("--torch-python", default=sys.executable, help="a Python with torch for the reference")
    parser.add_argument("--reference-dir", default=next((str(p) for p in REFERENCE_DIRS if p.is_dir()), ""))
    parser.add_argument("--device", default="", help="torch device of the reference (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on a CPU")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    uneven = [n for n in args.n + args.sample_n if n % args.ref_batch]
    if uneven:
        raise ValueError(
            f"--ref-batch {args.ref_batch} must divide every N, not {uneven} (unequal batches reweight it)"
        )
    if not args.reference_dir or not Path(args.reference_dir, "utils", "idealscore.py").is_file():
        raise ValueError(
            f"--reference-dir: no utils/idealscore.py in {args.reference_dir!r} (run experiments/gpu_prepare.sh)"
        )
    results = compare(args)
    print_table(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
