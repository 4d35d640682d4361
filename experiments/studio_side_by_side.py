"""Side by side with analytic-diffusion-studio (PyTorch): the same MNIST digits and noisy queries through each field
denoiser of both libraries; their posterior means compared, against each other and against float64 brute forces,
and their calls timed alternately in one run.

The studio's code is never copied into this repository: ``git archive`` exports its ``src/`` from a mirror into a
folder outside it (``--studio-src``, default /tmp/studio_src), and a worker process under a torch interpreter
(``--torch-python``) imports the studio's classes from there. The worker is this file run with ``--worker``; it stubs
the imports the denoisers never use (diffusers' scheduler, torchvision, PIL, omegaconf, tqdm) and faiss, whose
``IndexFlatL2`` it replaces by an exact float32 search of its own (direct differences, as faiss's flat index computes
them for fewer than 20 queries). The worker reads one JSON command per line and answers one line.

Parameterisation. The studio's denoisers read ``alpha_prod = scheduler.alphas_cumprod[step]`` and take
``x_t = sqrt(alpha_prod) x_0 + sqrt(1 - alpha_prod) eps`` on images in [-1, 1]; elsjax takes ``x_t = a_t x_0 + b_t eps``
on the same images. elsjax's t is therefore the studio's ``alpha_prod = a_t^2`` (:func:`studio_alphas_cumprod`): the
worker replaces the scheduler's table by these values and calls step ``i`` for the i-th t. :func:`elsjax_time` maps
back (the studio's own 1000-step linear DDPM table ends at t = 1.004, past elsjax's t = 1).

Pairs (studio class : elsjax name):
  wiener        DenoisingWiener : "wiener" (the studio's covariance divides by N - 1, elsjax's by N)
  pca_locality  PCALocalityDenoiser (its MNIST config's batch of 512, and one batch of N) : "pca_locality" (tau)
  optimal       OptimalDenoiser, num_neighbors = N (exact) and 200 (its MNIST config) : "ideal"
  nearest       NearestDatasetDenoiser at x_t (as the studio's sampler calls it) and at x_t / a_t : "nearest"
  scfdm         SmoothedCFDM (smoothing_std 1, as its MNIST config; num_neighbors = N) : "scfdm" (smoothing 1),
                both with ``--draws`` Monte Carlo draws of their own; their gap is set against elsjax's own spread
                between two keys

    python experiments/studio_side_by_side.py --n 1000 5000 \\
        --out experiments/results/studio_side_by_side.json

Writes the JSON and a markdown table next to it (``.md``). Times are per call on ``--queries`` images, warm (after
one untimed call at that t), both libraries on 2 threads, the two alternated call by call (``--rounds`` each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STUDIO_GIT = Path("/work/.mirror/analytic-diffusion+analytic-diffusion-studio/repo")
TORCH_PYTHON = "/tmp/tv/bin/python"
STUDIO_TRAIN_STEPS = 1000  # the studio's DDIMScheduler: 1000 training steps, betas linear from 1e-4 to 0.02
STUDIO_BETAS = (1e-4, 0.02)
STUDIO_OPTIMAL_NEIGHBORS = 200  # configs/optimal/mnist.yaml
STUDIO_PCA_BATCH = 512  # configs/pca_locality/mnist.yaml
SMOOTHING = 1.0  # configs/scfdm/mnist.yaml


# ----------------------------------------------------------------------------------------------------------------
# The parameterisation (no torch).


def studio_alphas_cumprod(t) -> np.ndarray:
    """The studio's ``alpha_prod`` (its scheduler's ``alphas_cumprod`` entry) of elsjax's times ``t``: ``a_t^2``."""
    from elsjax import noise

    a, _ = noise.signal_noise_std(np.asarray(t, np.float32))
    return np.asarray(a, np.float64) ** 2


def elsjax_time(alphas_cumprod) -> np.ndarray:
    """elsjax's t of the studio's ``alpha_prod``: noise level ``sqrt((1 - alpha_prod) / alpha_prod)`` (float32)."""
    from elsjax import sampler

    ap = np.asarray(alphas_cumprod, np.float64)
    return np.asarray(sampler.time_of_sigma(np.sqrt((1.0 - ap) / ap)))


def studio_training_alphas_cumprod(steps: int = STUDIO_TRAIN_STEPS, betas=STUDIO_BETAS) -> np.ndarray:
    """The studio's own table: diffusers' ``"linear"`` betas (float32), ``alphas_cumprod = cumprod(1 - beta)``."""
    beta = np.linspace(betas[0], betas[1], steps, dtype=np.float32)
    return np.cumprod(1.0 - beta.astype(np.float64))


def studio_ddim_steps(n: int, steps: int = STUDIO_TRAIN_STEPS) -> np.ndarray:
    """The training steps the studio's n-step DDIM sampler visits (diffusers' default ``"leading"`` spacing)."""
    return (np.arange(n) * (steps // n))[::-1]


# ----------------------------------------------------------------------------------------------------------------
# The worker (torch interpreter; imports the studio from --studio-src).


def _stub(name: str, **attrs):
    import types

    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


class _FlatL2:
    """Exact float32 nearest-neighbour search standing in for ``faiss.IndexFlatL2``: squared distances, ascending."""

    def __init__(self, dim):
        self.dim, self.data = dim, None

    def add(self, vectors):
        import torch

        self.data = torch.from_numpy(np.ascontiguousarray(vectors, np.float32))

    def search(self, queries, k):
        import torch

        q = torch.from_numpy(np.ascontiguousarray(queries, np.float32))
        d2 = torch.stack([((self.data - row) ** 2).sum(dim=1) for row in q])
        dist, idx = torch.topk(d2, k, dim=1, largest=False, sorted=True)
        return dist.numpy(), idx.numpy().astype(np.int64)


def _install_stubs():
    class Scheduler:  # the denoisers only read alphas_cumprod, which the worker sets
        init_noise_sigma = 1.0

        def __init__(self, **config):
            self.config, self.alphas_cumprod = config, None

        def set_timesteps(self, n):
            self.num_inference_steps = n

    _stub("diffusers", DDIMScheduler=Scheduler)
    _stub("tqdm", tqdm=lambda iterable=None, *args, **kwargs: iterable)
    _stub(
        "faiss",
        Index=object,
        IndexFlatL2=_FlatL2,
        omp_set_num_threads=lambda n: None,
        write_index=lambda index, path: None,  # never read back: each build searches afresh
        read_index=lambda path: None,
    )
    tv = _stub("torchvision")
    for sub in ("datasets", "transforms", "models"):
        setattr(tv, sub, _stub("torchvision." + sub))
    _stub("PIL", Image=_stub("PIL.Image"))
    _stub("omegaconf", OmegaConf=object)


def _export_studio(git_dir: Path, dest: Path) -> Path:
    if not (dest / "local_diffusion" / "models" / "pca_locality.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(git_dir), "archive", "HEAD", "src"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(dest), "--strip-components=1"], input=archive.stdout, check=True)
    return dest


class _Worker:
    def __init__(self, studio_src: str, threads: int):
        _install_stubs()
        sys.path.insert(0, studio_src)
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        from local_diffusion import models
        from local_diffusion.data import DatasetBundle

        self.torch, self.models, self.bundle_type = torch, models, DatasetBundle
        self.inputs, self.built, self.scratch = None, {}, tempfile.mkdtemp(prefix="studio_side_")

    def load(self, path):
        torch = self.torch
        d = np.load(path)
        self.train = torch.from_numpy(np.ascontiguousarray(d["train"].transpose(0, 3, 1, 2)))
        self.queries = torch.from_numpy(np.ascontiguousarray(d["queries"].transpose(0, 1, 4, 2, 3)))
        self.alphas_cumprod = torch.tensor(d["alphas_cumprod"], dtype=torch.float32)
        self.built = {}
        return {"n": len(self.train), "threads": torch.get_num_threads()}

    def build(self, name, model, params, batch_size):
        from torch.utils.data import DataLoader, TensorDataset

        dataset = TensorDataset(self.train)
        n, c, h, _ = self.train.shape
        bundle = self.bundle_type(
            name="mnist", dataset=dataset, dataloader=DataLoader(dataset, batch_size=batch_size, shuffle=False),
            resolution=h, in_channels=c, split="train", postprocess=lambda v: v,
        )  # fmt: skip
        where = Path(self.scratch) / f"n{n}"  # per training set: the studio reloads a saved filter from its path
        params = {**params, "wiener_path": str(where / "wiener"), "index_path": str(where / name)}
        start = time.perf_counter()
        denoiser = self.models.create_model(model, dataset=bundle, device="cpu", num_steps=10, params=params)
        denoiser.train(bundle)
        seconds = time.perf_counter() - start
        denoiser.scheduler.alphas_cumprod = self.alphas_cumprod
        self.built[name] = denoiser
        return {"build_s": seconds}

    def call(self, name, step, out=None, scaled=False):
        torch = self.torch
        x = self.queries[step]
        if scaled:
            x = x / torch.sqrt(self.alphas_cumprod[step])
        start = time.perf_counter()
        with torch.no_grad():
            mean = self.built[name].denoise(x, torch.tensor(step))
        seconds = time.perf_counter() - start
        if out:
            np.save(out, mean.permute(0, 2, 3, 1).numpy())
        return {"s": seconds}

    def mask(self, name, step, out):
        """The studio's own float32 PCA-locality mask at ``step`` (its ``_projection_mask``), rows for output pixels."""
        mask, _, _ = self.built[name]._projection_mask(step)
        np.save(out, mask.T.numpy())  # the studio applies it as delta @ mask: column i serves output pixel i
        return {}


def worker_main(studio_src: str, threads: int) -> int:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # anything the studio prints stays off the reply channel
    worker = _Worker(studio_src, threads)
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        replies.write(json.dumps(getattr(worker, op)(**command)) + "\n")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# The driver (elsjax's interpreter).


class Studio:
    """The worker process, one JSON line each way."""

    def __init__(self, torch_python: str, studio_src: Path, threads: int):
        cmd = [torch_python, str(Path(__file__).resolve()), "--worker", str(studio_src), "--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the studio worker exited ({self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def __call__(self, op, **kwargs):
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        return self._read()

    def close(self):
        self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.proc.stdin.close()
        self.proc.wait()


def compare(mine, reference) -> dict:
    """Max abs difference and relative L2 (``||mine - ref|| / ||ref||``) over the batch."""
    mine, reference = np.asarray(mine, np.float64), np.asarray(reference, np.float64)
    return {
        "max_abs": float(np.max(np.abs(mine - reference))),
        "rel_l2": float(np.linalg.norm(mine - reference) / np.linalg.norm(reference)),
    }


def pca_mask_studio_f64(t, train, tau):
    """The studio's PCA-locality mask in float64, row i for output pixel i (docs/maths.md §12.2): its Wiener filter
    uses the N - 1 covariance; entry (i, j) compares ``|W[j, i] / W[j, j]|`` (diagonals below 1e-6 read as 1) with
    tau times the matrix's largest such ratio."""
    from brute_force import schedule_ab

    flat = np.asarray(train, np.float64).reshape(len(train), -1)
    centred = flat - flat.mean(axis=0)
    sigma = centred.T @ centred / (len(flat) - 1)
    a, b = schedule_ab(t)
    w = a * a * sigma @ np.linalg.inv(a * a * sigma + b * b * np.eye(len(sigma)))
    diag = np.diag(w).copy()
    diag[np.abs(diag) < 1e-6] = 1.0
    ratio = np.abs(w / diag[:, None])
    return (ratio >= tau * ratio.max()).T.astype(np.float64)


def masked_softmax_mean_f64(x, t, train, mask):
    """Per pixel i, the softmax over all N training images of ``-sum_j mask[i, j] (x_j - a phi_j)^2 / 2b^2``."""
    from brute_force import schedule_ab

    a, b = schedule_ab(t)
    phi = np.asarray(train, np.float64).reshape(len(train), -1)
    out = []
    for image in np.asarray(x, np.float64).reshape(len(x), -1):
        logits = -(((image[None] - a * phi) ** 2) @ mask.T) / (2 * b * b)  # [N, D]
        w = np.exp(logits - logits.max(axis=0))
        out.append(np.sum(w * phi, axis=0) / np.sum(w, axis=0))
    return np.stack(out).reshape(np.shape(x))


def time_pair(studio, name, step, elsjax_call, rounds: int, out):
    """One untimed call each (the outputs), then ``rounds`` timed calls each, alternating which goes first."""
    studio("call", name=name, step=step, out=str(out))
    mine = np.asarray(elsjax_call())
    times = {"studio": [], "elsjax": []}
    for r in range(rounds):
        for side in ("studio", "elsjax") if r % 2 == 0 else ("elsjax", "studio"):
            if side == "studio":
                times["studio"].append(studio("call", name=name, step=step)["s"])
            else:
                start = time.perf_counter()
                np.asarray(elsjax_call())
                times["elsjax"].append(time.perf_counter() - start)
    return np.load(out), mine, times


def run_n(args, studio, images, queries_clean, eps, tmp: Path, builds: dict) -> list[dict]:
    import jax

    from elsjax import denoisers, noise

    n = args.n_now
    train = images[:n]
    ts = np.asarray(args.t, np.float32)
    a, b = (np.asarray(v) for v in noise.signal_noise_std(ts))
    queries = a[:, None, None, None, None] * queries_clean[None] + b[:, None, None, None, None] * eps[None]
    queries = queries.astype(np.float32)
    np.savez(tmp / "inputs.npz", train=train, queries=queries, alphas_cumprod=studio_alphas_cumprod(ts))
    studio("load", path=str(tmp / "inputs.npz"))

    sys.path.insert(0, str(REPO / "tests"))
    import brute_force_field as bff

    pairs = [  # (row name, studio model, studio params, studio batch, elsjax name, elsjax knobs)
        ("wiener", "wiener", {}, 512, "wiener", {}),
        ("optimal_exact", "optimal", {"num_neighbors": n}, 512, "ideal", {}),
        ("optimal_top200", "optimal", {"num_neighbors": STUDIO_OPTIMAL_NEIGHBORS}, 512, "ideal", {}),
        ("nearest", "nearest_dataset", {}, 512, "nearest", {}),
        ("scfdm", "scfdm", {"num_neighbors": n, "num_noise": args.draws, "smoothing_std": SMOOTHING}, 512, "scfdm",
         {"smoothing": SMOOTHING, "samples": args.draws, "key": jax.random.key(0)}),
    ]  # fmt: skip
    for tau in args.tau:
        pairs.append((f"pca_tau{tau}", "pca_locality", {"mask_threshold": tau}, STUDIO_PCA_BATCH, "pca_locality",
                      {"tau": tau}))  # fmt: skip
        pairs.append((f"pca_tau{tau}_onebatch", "pca_locality", {"mask_threshold": tau}, n, None, {"tau": tau}))
    rows, built = [], {}
    for row, model, params, batch, kind, knobs in pairs:
        build_s = studio("build", name=row, model=model, params=params, batch_size=batch)["build_s"]
        start = time.perf_counter()
        if kind is not None:
            built[row] = denoisers.build(kind, train, **knobs)
        builds[(n, row)] = {
            "N": n,
            "row": row,
            "studio_build_s": build_s,
            "elsjax_build_s": time.perf_counter() - start,
        }
        print(f"N={n} {row}: built (studio {build_s:.1f} s, elsjax {time.perf_counter() - start:.1f} s)", flush=True)
    spread = denoisers.build("scfdm", train, smoothing=SMOOTHING, samples=args.draws, key=jax.random.key(1))
    for i, t in enumerate(ts):
        x = queries[i]
        reference = {
            "ideal": np.stack([bff.ideal_mean(q, t, train) for q in x]),
            "wiener": np.stack([bff.wiener_mean(q, t, train) for q in x]),
        }
        flat = np.asarray(train, np.float64).reshape(n, -1)
        sigma = np.cov(flat, rowvar=False, ddof=1)  # the studio's covariance
        reference["wiener_n_minus_1"] = np.stack([bff.gaussian_mean(q, t, flat.mean(axis=0), sigma) for q in x])
        for row, model, _params, _batch, kind, _knobs in pairs:
            if kind is None:
                continue
            out = tmp / f"{row}_{i}.npy"
            studio_mean, mine, times = time_pair(
                studio, row, i, lambda d=built[row], x=x, t=t: jax.block_until_ready(d.denoise(x, t)), args.rounds, out
            )
            entry = {"N": n, "row": row, "studio": model, "elsjax": kind, "t": float(t), "alpha_prod": float(a[i] ** 2)}
            entry.update(compare(studio_mean, mine))
            entry["studio_s"] = float(np.median(times["studio"]))
            entry["elsjax_s"] = float(np.median(times["elsjax"]))
            entry["ratio"] = entry["studio_s"] / entry["elsjax_s"]
            entry["checks"] = checks(row, studio, i, t, x, train, studio_mean, mine, reference, spread, bff, tmp)
            rows.append(entry)
            print(f"N={n} t={t:.2f} {row}: max|d| {entry['max_abs']:.2e} rel {entry['rel_l2']:.2e} "
                  f"studio {entry['studio_s']:.3f} s elsjax {entry['elsjax_s']:.3f} s", flush=True)  # fmt: skip
    return rows


def checks(row, studio, i, t, x, train, studio_mean, mine, reference, spread, bff, tmp) -> dict:
    """What explains each pair's gap: each side against a float64 brute force of its own definition."""
    if row == "wiener":
        return {
            "elsjax_vs_f64": compare(mine, reference["wiener"]),
            "studio_vs_f64_n_minus_1": compare(studio_mean, reference["wiener_n_minus_1"]),
            "f64_n_vs_n_minus_1": compare(reference["wiener"], reference["wiener_n_minus_1"]),
        }
    if row.startswith("optimal"):
        return {
            "elsjax_vs_f64": compare(mine, reference["ideal"]),
            "studio_vs_f64": compare(studio_mean, reference["ideal"]),
        }
    if row == "nearest":
        studio("call", name=row, step=i, out=str(tmp / "scaled.npy"), scaled=True)
        scaled = np.load(tmp / "scaled.npy")
        same = lambda u: float(np.mean(np.max(np.abs(u - mine), axis=(1, 2, 3)) < 1e-6))  # noqa: E731 (1 ulp apart)
        return {"same_image_at_x": same(studio_mean), "same_image_at_x_over_a": same(scaled)}
    if row == "scfdm":
        return {
            "elsjax_key0_vs_key1": compare(mine, np.asarray(spread.denoise(x, t))),
            "elsjax_vs_ideal_f64": compare(mine, reference["ideal"]),
        }
    tau = float(row.removeprefix("pca_tau"))
    studio("call", name=row + "_onebatch", step=i, out=str(tmp / "onebatch.npy"))
    onebatch = np.load(tmp / "onebatch.npy")
    mask_elsjax, margin = bff.pca_mask(t, train, tau)
    mask_studio = pca_mask_studio_f64(t, train, tau)
    studio("mask", name=row, step=i, out=str(tmp / "mask.npy"))
    mask_studio_own = np.load(tmp / "mask.npy").astype(np.float64)
    f64_elsjax = masked_softmax_mean_f64(x, t, train, mask_elsjax)
    f64_studio = masked_softmax_mean_f64(x, t, train, mask_studio)
    f64_studio_own = masked_softmax_mean_f64(x, t, train, mask_studio_own)
    varying = np.asarray(train).reshape(len(train), -1).std(axis=0) > 0
    return {
        "elsjax_vs_f64": compare(mine, f64_elsjax),
        "studio_batched_vs_f64_own_mask": compare(studio_mean, f64_studio_own),
        "studio_onebatch_vs_f64_own_mask": compare(onebatch, f64_studio_own),
        "studio_batched_vs_onebatch": compare(studio_mean, onebatch),
        "f64_own_mask_vs_f64_studio": compare(f64_studio_own, f64_studio),
        "f64_studio_vs_f64_elsjax": compare(f64_studio, f64_elsjax),
        "mask_kept_elsjax": float(mask_elsjax.mean()),
        "mask_kept_studio": float(mask_studio.mean()),
        "mask_kept_studio_own": float(mask_studio_own.mean()),
        "mask_own_vs_f64_differ": float(np.mean(mask_studio_own != mask_studio)),
        "mask_own_vs_f64_transposed_differ": float(np.mean(mask_studio_own != mask_studio.T)),
        "own_entry_kept_elsjax": float(np.mean(np.diag(mask_elsjax)[varying])),
        "own_entry_kept_studio": float(np.mean(np.diag(mask_studio)[varying])),
        "elsjax_mask_margin": float(margin),
    }


def markdown(result) -> str:
    rows = result["rows"]
    lines = [
        "# Side by side with analytic-diffusion-studio",
        "",
        f"`{result['command']}`; MNIST (first N training images, 32x32x1), {result['queries']} held-out digits noised "
        f"at each t; per-call times on {result['queries']} images, median of {result['rounds']} alternated calls, "
        f"2 threads each; load average {result['load_before']} before, {result['load_after']} after.",
        "",
        "| N | pair (studio : elsjax) | max abs diff (largest over t) | rel L2 (largest) | studio / elsjax time "
        "(median over t, range) |",
        "|---|---|---|---|---|",
    ]
    for n, row in dict.fromkeys((r["N"], r["row"]) for r in rows):
        group = [r for r in rows if (r["N"], r["row"]) == (n, row)]
        ratios = [r["ratio"] for r in group]
        lines.append(
            f"| {n} | {row} ({group[0]['studio']} : {group[0]['elsjax']}) | {max(r['max_abs'] for r in group):.2e} | "
            f"{max(r['rel_l2'] for r in group):.2e} | {np.median(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f}) |"
        )
    lines += [
        "",
        "| N | pair (studio : elsjax) | t | max abs diff | rel L2 | studio s | elsjax s | studio / elsjax |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['N']} | {r['row']} ({r['studio']} : {r['elsjax']}) | {r['t']:.2f} | {r['max_abs']:.2e} | "
            f"{r['rel_l2']:.2e} | {r['studio_s']:.3f} | {r['elsjax_s']:.3f} | {r['ratio']:.2f} |"
        )
    lines += ["", "## What explains each gap (max abs diff / rel L2)", ""]
    for r in rows:
        parts = []
        for key, value in r["checks"].items():
            parts.append(f"{key} {value['max_abs']:.1e}/{value['rel_l2']:.1e}" if isinstance(value, dict)
                         else f"{key} {value:.3g}")  # fmt: skip
        lines.append(f"- N={r['N']} t={r['t']:.2f} {r['row']}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000], help="training images (first N of MNIST)")
    parser.add_argument("--t", type=float, nargs="+", default=[0.1, 0.4, 0.7, 0.9])
    parser.add_argument("--tau", type=float, nargs="+", default=[0.02], help="PCA-locality mask thresholds")
    parser.add_argument("--queries", type=int, default=4, help="held-out digits noised at each t")
    parser.add_argument("--draws", type=int, default=16, help="Monte Carlo draws of sCFDM, each side")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per side, alternated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-python", default=TORCH_PYTHON)
    parser.add_argument("--studio-git", type=Path, default=STUDIO_GIT)
    parser.add_argument("--studio-src", type=Path, default=Path("/tmp/studio_src"), help="export folder (not in git)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments/results/studio_side_by_side.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.threads)
    if not all(0 < t <= 1 for t in args.t) or min(args.n) < 2 or args.queries < 1:
        raise ValueError(f"need 0 < t <= 1, N >= 2 and queries >= 1, got t={args.t}, n={args.n}, {args.queries}")
    threads = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads}"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + threads).strip()
    from elsjax import data

    images = data.load("mnist", limit=max(args.n) + args.queries).images
    queries_clean = images[max(args.n) :]  # held out from every training set
    eps = np.random.default_rng(0).standard_normal(queries_clean.shape).astype(np.float32)
    load_before = os.getloadavg()[0]
    src = _export_studio(args.studio_git, args.studio_src)
    studio = Studio(args.torch_python, src, args.threads)
    rows, builds = [], {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.n:
                args.n_now = n
                rows += run_n(args, studio, images, queries_clean, eps, Path(tmp), builds)
    finally:
        studio.close()
    steps = studio_ddim_steps(10)
    result = {
        "command": "python experiments/studio_side_by_side.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "studio_commit": subprocess.run(["git", "-C", str(args.studio_git), "rev-parse", "HEAD"], capture_output=True,
                                        text=True).stdout.strip(),  # fmt: skip
        "queries": args.queries, "rounds": args.rounds, "threads": args.threads, "draws": args.draws,
        "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
        "studio_10_step_grid": {"steps": steps.tolist(),
                                "elsjax_t": elsjax_time(studio_training_alphas_cumprod()[steps]).round(4).tolist()},
        "builds": list(builds.values()),
        "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
