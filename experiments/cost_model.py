"""A cost model of a sweep row (train, calibrate, evaluate): exact work counts times measured throughput.

Work. One evaluation of a dictionary denoiser on one image streams, for every query pixel, every entry of the
dictionary that answers it; the model counts those (query pixel, entry) pairs from the denoiser's own regions
(``Denoiser.regions``: ELS one table, bbELS a centre table and border/corner tables of many groups) and from the
distinct fraction of each group's patches, measured with the library's own deduplication
(``Denoiser.occurrence_tables``, one hashing pass, no dictionary). "Distinct" pairs count each query against its
group's distinct entries; "executed" pairs add the padding the kernel streams too (a table's groups share one
layout, the largest group's, in whole chunks; classes share chunk counts rounded by ``patches.bucket``). LS streams
every training image per pixel (no deduplication), IS one whole-image query against the distinct images.

Throughput. Seconds per executed pair are fitted as ``a + b D``, D = k^2 C + 2 the key length (the matmul's depth),
by relative least squares to the pairs/s that ``experiments/bench.py`` measured for ELS (its JSON; the k it
measured are listed as "measured", the k between them as interpolated, larger k as extrapolated along the line). bbELS and IS are charged the ELS
rate at their D. Build seconds are fitted as ``c_rows rows + c_bytes bytes`` of patches hashed, to the same JSON's
build times at its largest N. LS has its own kernel (a box sum of squared differences): its seconds per pair are
``a + b D`` fitted to a CPU timing made here, and on another backend scaled by that backend's ELS speed-up over the
CPU at k = 3 (no LS was timed on a GPU).

Stages (one row; ``elsjax.calibrate`` and ``elsjax.evaluate``): calibration builds, per class group and per k, one
dictionary and evaluates it on all ``seeds x steps`` states of the group; the evaluation runs each machine for 19
steps on every seed, building each distinct k of its schedule once per class group. A calibrated schedule is not
known before the run: the model charges the published one for both (stated in the output).

Usage:
  python experiments/cost_model.py paper          # hours per stage of each paper_scale.py row, 1 and 8 GPUs
  python experiments/cost_model.py validate       # measure CPU rates now; predict the cpu_budget row's timings
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (experiments/bench.py: data loading and the ELS throughput measurement)

from elsjax import denoisers, paper, patches, sampler, scales  # noqa: E402
from elsjax.denoisers import ideal, local  # noqa: E402

RESULTS = HERE / "results"
GPU_BENCH = (RESULTS / "bench_gpu_fmnist_full.json", RESULTS / "bench_gpu_mnist.json")  # one H200
CPU_BENCH = (RESULTS / "bench_cpu_mnist_n1000.json", RESULTS / "bench_cpu_mnist_n5000.json",
             RESULTS / "bench_cpu_fmnist_full_k9_17.json")  # fmt: skip
CHUNK = {"cpu": 1024, "gpu": 16384}  # the library's patch chunk per backend (elsjax.denoisers.patch)

# FLOPs of one training step at batch 128 (forward, backward, Adam), from XLA's cost analysis on this CPU:
# `python experiments/train_cost.py --arch ARCH --channels C [--classes 10] --flops-only`.
TRAIN_FLOPS = {
    ("resnet", 1): 2674.1e9,
    ("resnet", 3): 2680.1e9,
    ("unet", 1): 282.1e9,
    ("unet", 3): 284.0e9,
    ("unet_sa", 3): 1727.5e9,
}
H200_FP32_PEAK = 67e12  # FLOP/s, float32 without tensor cores (NVIDIA's H200 SXM datasheet)
EVALUATE_SEEDS = 100  # experiments/sweeps/paper_scale.py
TRAIN_EFFICIENCY = 0.4  # assumed fraction of that peak a 3x3-conv net reaches (an estimate, not measured)


# ----------------------------------------------------------------------------------------------------------------
# Work counts.


class Table(NamedTuple):
    """One table of a denoiser at one k: per group, its query pixels, its patch positions per training image, and
    the distinct fraction of its source rows (distinct / (N x positions)) measured on some training images."""

    queries: np.ndarray  # [G] int
    positions: np.ndarray  # [G] int
    fraction: np.ndarray  # [G] float
    chunk: int


class Work(NamedTuple):
    """Per image evaluation of one denoiser at one k on N training images (pairs are (query pixel, entry))."""

    distinct_pairs: int
    executed_pairs: int
    dim: int  # key length D = k^2 C + 2 (IS: H W C + 2)
    rows: int  # source rows the build hashes
    bytes: int  # bytes of those rows (8-bit data: one byte a pixel)


def tables(kind: str, k: int, image_shape, *, images=None, chunk: int) -> tuple[Table, ...]:
    """The tables of ``kind`` at ``k`` for images of ``image_shape (H, W, C)``; distinct fractions measured on
    ``images`` (exact for those images), or 1 (every patch distinct: an upper bound) when None."""
    h, w, _ = image_shape
    cls = denoisers.get(kind)
    if kind == "ls":  # one entry per training image at every pixel, no deduplication
        return (Table(np.array([h * w]), np.array([1]), np.array([1.0]), local.IMAGE_CHUNK),)
    if kind == "ideal":
        frac = 1.0 if images is None else patches.ideal_occurrences(images).counts.astype(bool).sum() / len(images)
        return (Table(np.array([1]), np.array([1]), np.array([frac]), ideal.IMAGE_CHUNK),)
    regions = cls.regions(h, w, k)
    occ = [None] * len(regions) if images is None else cls.occurrence_tables(images, k)
    out = []
    for region, o in zip(regions, occ):
        positions = np.array([len(r) * len(c) for r, c in zip(region.centre_rows, region.centre_cols)])
        n_rows = positions * (1 if images is None else len(images))
        fraction = np.ones(len(positions)) if o is None else (o.counts > 0).sum(axis=1) / n_rows
        out.append(Table(np.full(len(positions), region.pixels.shape[1]), positions, fraction, chunk))
    return tuple(out)


def layout(m: int, chunk_size: int, n_groups: int, shape_bits: int | None) -> int:
    """Entries per group the kernel streams for a table whose largest group has ``m`` distinct entries (the
    library's layout: whole chunks; with ``shape_bits``, full chunks whose count is rounded by ``patches.bucket``)."""
    if shape_bits is None:
        chunk = min(chunk_size, -(-m // 8) * 8)
        return math.ceil(m / chunk) * chunk
    return chunk_size * patches.bucket(math.ceil(m / chunk_size), shape_bits if n_groups == 1 else 1)


def work(kind: str, k: int, image_shape, tabs, n_images: int, *, shape_bits: int | None = None) -> Work:
    """The :class:`Work` of one image evaluation against ``n_images`` training images, each group holding
    ``ceil(fraction x n_images x positions)`` distinct entries."""
    h, w, c = image_shape
    distinct = executed = rows = 0
    for t in tabs:
        entries = np.ceil(t.fraction * n_images * t.positions).astype(np.int64)
        distinct += int(np.sum(t.queries * entries))
        m = int(entries.max())
        streamed = layout(m, t.chunk, len(entries), shape_bits) if kind != "ls" else ceil_div(m, min(t.chunk, m)) * min(t.chunk, m)  # fmt: skip
        executed += int(np.sum(t.queries)) * streamed
        rows += n_images * int(np.sum(t.positions))
    dim = h * w * c + 2 if kind == "ideal" else k * k * c + 2
    return Work(distinct, executed, dim, rows, rows * (dim - 2))


# ----------------------------------------------------------------------------------------------------------------
# Throughput.


class Rate(NamedTuple):
    """Seconds per executed pair ``a + b D`` (patch machines), the same for LS, and build seconds
    ``c_rows rows + c_bytes bytes``."""

    pair: tuple[float, float]
    ls_pair: tuple[float, float]
    build: tuple[float, float]
    measured_k: tuple[int, ...]
    source: str

    def pair_seconds(self, kind: str, dim: int) -> float:
        a, b = self.ls_pair if kind == "ls" else self.pair
        return a + b * dim

    def build_seconds(self, kind: str, w: Work) -> float:
        return 0.0 if kind == "ls" else self.build[0] * w.rows + self.build[1] * w.bytes


def fit_line(x, y) -> tuple[float, float]:
    """``(a, b)`` of ``y ~ a + b x`` minimising the relative error, both coefficients non-negative."""
    from scipy.optimize import nnls

    x, y = np.asarray(x, float), np.asarray(y, float)
    return tuple(float(v) for v in nnls(np.stack([np.ones_like(x), x], 1) / y[:, None], np.ones_like(y))[0])


def fit_build(evals) -> tuple[float, float]:
    """``(c_rows, c_bytes)`` fitted to the build times of the largest N of ``evals`` (ELS valid patches, 8-bit)."""
    from scipy.optimize import nnls

    n = max(e["N"] for e in evals)
    points = {e["k"]: e for e in evals if e["N"] == n}
    rows = np.array([n * (32 - k + 1) ** 2 for k in points], float)
    a = np.stack([rows, rows * np.array([k * k for k in points], float)], 1)
    y = np.array([e["build_s"] for e in points.values()])
    return tuple(float(v) for v in nnls(a / y[:, None], np.ones_like(y))[0])


def from_bench(paths, *, ls_pair=None, channels: int = 1, batch: int | None = None) -> Rate:
    """The :class:`Rate` of bench JSON files (one machine): each k's evaluations at the largest batch measured."""
    evals, backend = [], None
    for path in paths:
        data = json.loads(Path(path).read_text())
        backend = data["backend"]
        evals += data["evals"]
    batch = batch or max(e["batch"] for e in evals)
    chosen = [e for e in evals if e["batch"] == batch]
    pair = fit_line([e["k"] ** 2 * channels + 2 for e in chosen], [1 / e["pairs_per_s"] for e in chosen])
    ks = tuple(sorted({e["k"] for e in chosen}))
    names = ", ".join(Path(p).name for p in paths)
    return Rate(pair, ls_pair or pair, fit_build(evals), ks, f"{backend}: {names} (batch {batch})")


def scaled_ls(rate: Rate, cpu: Rate) -> Rate:
    """``rate`` with the LS seconds of ``cpu`` scaled by the ELS speed-up of ``rate`` over ``cpu`` at k = 3."""
    speedup = cpu.pair_seconds("els", 11) / rate.pair_seconds("els", 11)
    return rate._replace(ls_pair=tuple(v / speedup for v in cpu.ls_pair))


# ----------------------------------------------------------------------------------------------------------------
# Stages of a row.


class Row(NamedTuple):
    """What a sweep row's cost depends on."""

    name: str
    dataset: str
    arch: str
    kind: str  # the (E)LS machine: bbels (zero padding) or els (circular)
    channels: int
    classes: int  # 0: unconditional (one class group)
    n_train: int
    published: tuple[int, ...]


class Fractions:
    """Tables per (kind, k), their distinct fractions measured once on ``images`` (None: every patch distinct)."""

    def __init__(self, image_shape, images=None, *, chunk: int):
        self.image_shape, self.images, self.chunk, self.cache = tuple(image_shape), images, chunk, {}

    def __call__(self, kind: str, k: int) -> tuple[Table, ...]:
        if (kind, k) not in self.cache:
            self.cache[kind, k] = tables(kind, k, self.image_shape, images=self.images, chunk=self.chunk)
        return self.cache[kind, k]


def machine_seconds(kind, ks, n_images, per_device, fractions, rate, *, shape_bits=None) -> tuple[float, float]:
    """``(evaluation s, build s)`` of ``per_device`` images evaluated at each k of ``ks`` (one build per distinct k)
    against a dictionary of ``n_images``."""
    evaluate = build = 0.0
    for k in dict.fromkeys(ks):
        w = work(kind, k, fractions.image_shape, fractions(kind, k), n_images, shape_bits=shape_bits)
        evaluate += list(ks).count(k) * per_device * w.executed_pairs * rate.pair_seconds(kind, w.dim)
        build += rate.build_seconds(kind, w)
    return evaluate, build


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def row_seconds(row: Row, rate: Rate, fractions: Fractions, *, devices: int = 1) -> dict:
    """Seconds per stage of ``row``: calibration (``paper.CALIBRATION``) of its (E)LS and LS, and the evaluation
    (100 seeds; calibrated and published schedules, both charged the published one; IS). ``devices``: seeds and
    states split evenly (each device a ceil share), builds once per dictionary on the host."""
    groups = max(row.classes, 1)
    cal, out = paper.CALIBRATION, {}
    shape_bits = patches.SHARED_SHAPE_BITS if groups > 1 else None
    n_cal, n_eval = cal["limit"] // groups, row.n_train // groups
    states = ceil_div(ceil_div(cal["n_seeds"], groups) * cal["num_steps"], devices)
    seeds = ceil_div(ceil_div(EVALUATE_SEEDS, groups), devices)
    for kind in (row.kind, "ls"):
        e, b = machine_seconds(kind, cal["ks"], n_cal, states, fractions, rate, shape_bits=shape_bits)
        out[f"calibrate_{kind}"] = (groups * e, groups * b)
    steps = [int(k) for k in sampler.machine_steps(row.published)[1]]
    evaluate = [0.0, 0.0]
    for kind, ks in ((row.kind, steps), (row.kind, steps), ("ls", steps), ("ls", steps), ("ideal", [0] * len(steps))):
        e, b = machine_seconds(kind, ks, n_eval, seeds, fractions, rate, shape_bits=shape_bits)
        evaluate[0] += groups * e
        evaluate[1] += groups * b
    out["evaluate"] = tuple(evaluate)
    return out


def train_hours(arch: str, channels: int, n_train: int) -> float | None:
    """Estimated hours of the paper's 300 epochs on one H200: FLOPs per step / (efficiency x float32 peak)."""
    flops = TRAIN_FLOPS.get((arch, channels))
    if flops is None:
        return None
    steps = paper.TRAINING["epochs"] * -(-n_train // paper.TRAINING["batch_size"])
    return steps * flops / (TRAIN_EFFICIENCY * H200_FP32_PEAK) / 3600


def paper_rows() -> list[Row]:
    """The rows of experiments/sweeps/paper_scale.py."""
    from elsjax.config import load_file

    sweep = load_file(HERE / "sweeps" / "paper_scale.py")
    rows = []
    for r in sweep.rows:
        cfg = load_file(r["train_config"])
        channels = 3 if cfg.dataset == "cifar10" else 1
        kind = "els" if cfg.padding == "circular" else "bbels"
        rows.append(Row(r["name"], cfg.dataset, cfg.arch, kind, channels, 10 if cfg.conditional else 0,
                        r["train_images"], tuple(scales.resolve(r["published"]))))  # fmt: skip
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Reports.


def describe(rate: Rate, channels: int = 1) -> None:
    """Pairs/s of the fitted rate at every odd k to 31, marked measured or extrapolated."""
    print(f"rate from {rate.source}: s/pair = {rate.pair[0]:.3g} + {rate.pair[1]:.3g} D; LS {rate.ls_pair[0]:.3g} + "
          f"{rate.ls_pair[1]:.3g} D; build s = {rate.build[0]:.3g} rows + {rate.build[1]:.3g} bytes")  # fmt: skip
    for k in range(3, 32, 2):
        d = k * k * channels + 2
        inside = min(rate.measured_k) < k < max(rate.measured_k)
        tag = "measured k" if k in rate.measured_k else "interpolated" if inside else "extrapolated"
        print(f"  k={k:>2} D={d:>4}: {1 / rate.pair_seconds('els', d):.3g} pairs/s ({tag})")


def measure_ls(images, ks, batch: int = 16) -> tuple[float, float]:
    """LS seconds per (query pixel, training image) pair, timed here at each k, fitted as ``a + b D``."""
    x = np.random.default_rng(1).normal(size=(batch,) + images.shape[1:]).astype(np.float32)
    t = np.full((batch,), 0.5, np.float32)
    seconds = []
    for k in ks:
        machine = denoisers.build("ls", images, k)
        w = work("ls", k, images.shape[1:], tables("ls", k, images.shape[1:], chunk=0), len(images))
        s = bench.timeit(denoisers.Denoiser.score, machine, x, t, repeats=3)
        seconds.append(s / (batch * w.executed_pairs))
        print(f"  LS k={k:>2}: {1 / seconds[-1]:.3g} pairs/s")
    return fit_line([k * k * images.shape[-1] + 2 for k in ks], seconds)


def validate(args) -> None:
    """Measures CPU rates now and predicts the committed cpu_budget row's calibration and evaluation timings."""
    row_dir = RESULTS / "cpu_budget" / "mnist_resnet_zeros_step2400"
    records = {s: json.loads((row_dir / s / "record.json").read_text()) for s in ("calibrate_bbels", "calibrate_ls", "evaluate")}  # fmt: skip
    n = records["evaluate"]["data"]["num_images"]
    images, source = bench.load_images("mnist", n, False)
    print(f"{source}: {images.shape}; ELS rate measured now (experiments/bench.py, batch {args.batch}):")
    evals = []
    for k in [] if args.no_measure else args.ks:
        machine, build_s = bench.build(images, k)
        evals.append(bench.bench_eval(images, machine, build_s, args.batch, 1))
        print(f"  k={k:>2}: {evals[-1]['pairs_per_s']:.3g} pairs/s, build {build_s:.1f} s")
        del machine
    out = Path(args.tmp) / "bench_now.json"
    out.write_text(json.dumps({"backend": "cpu", "evals": evals}))
    ls_pair = LS_CPU if args.no_measure else measure_ls(images, args.ks)
    earlier = from_bench(CPU_BENCH, ls_pair=ls_pair)
    now = earlier if args.no_measure else from_bench([out], ls_pair=ls_pair)
    fractions = Fractions(images.shape[1:], images, chunk=CHUNK["cpu"])  # exact: these are the row's images
    x = np.random.default_rng(2).normal(size=(args.batch,) + images.shape[1:]).astype(np.float32)
    for k in () if args.no_measure else (3, 9):  # bbELS timed directly: is the ELS rate at the same D its rate?
        machine = denoisers.build("bbels", images, k)
        s = bench.timeit(denoisers.Denoiser.score, machine, x, np.full((args.batch,), 0.5, np.float32), repeats=1)
        w = work("bbels", k, images.shape[1:], fractions("bbels", k), n)
        print(f"  bbELS k={k}: measured {s:.2f} s, predicted {args.batch * w.executed_pairs * now.pair_seconds('bbels', w.dim):.2f} s")  # fmt: skip
    describe(now)
    cal_ks = {s: [int(v) for v in records[s]["config"]["ks"].split(",")] for s in ("calibrate_bbels", "calibrate_ls")}
    states = records["calibrate_bbels"]["config"]["n_seeds"] * records["calibrate_bbels"]["config"]["num_steps"]
    seeds = records["evaluate"]["config"]["n_seeds"]
    parts = -(-seeds // records["evaluate"]["config"]["seeds_per_part"])
    schedules = {name: spec.partition(":")[::2] for name, spec in (m.split("=") for m in records["evaluate"]["config"]["machines"].split(","))}  # fmt: skip
    print(f"\n{'stage':<34} {'measured s':>10} {'now-rate s':>10} {'ratio':>6} {'earlier-rate s':>14} {'ratio':>6}")
    lines = []
    for stage, kind in (("calibrate_bbels", "bbels"), ("calibrate_ls", "ls")):
        t = records[stage]["timings"]
        for label, measured, pick in (("evaluate", t["calibrate_evaluate_s"], 0), ("build", t["calibrate_build_s"], 1)):
            lines.append((f"{stage} {label}", measured, [machine_seconds(kind, cal_ks[stage], n, states, fractions, r)[pick] for r in (now, earlier)]))  # fmt: skip
    for name, (kind, spec) in schedules.items():
        sched = records[spec.split("/")[-2]]["median"] if spec.endswith(".json") else scales.resolve(spec) if spec else [0] * 20  # fmt: skip
        ks = [int(k) for k in sampler.machine_steps(sched)[1]] if kind != "ideal" else [0] * 19
        predicted = [sum(machine_seconds(kind, ks, n, seeds // parts, fractions, r)) * parts for r in (now, earlier)]
        lines.append(
            (f"evaluate machine_{name} (+builds)", records["evaluate"]["timings"]["machine_s"][name], predicted)
        )
    for label, measured, (p_now, p_earlier) in lines:
        print(f"{label:<34} {measured:>10.1f} {p_now:>10.1f} {p_now / measured:>6.2f} {p_earlier:>14.1f} {p_earlier / measured:>6.2f}")  # fmt: skip


def paper_report(args) -> None:
    """Hours per stage of each paper_scale.py row on one H200 and on 8, from the GPU bench and measured fractions."""
    cpu_ls = json.loads(Path(args.ls_rate).read_text()) if args.ls_rate else None
    cpu = from_bench(CPU_BENCH, ls_pair=tuple(cpu_ls) if cpu_ls else LS_CPU)
    fractions = {}
    for dataset in ("mnist", "fashion_mnist", "cifar10"):
        images = None if dataset == "cifar10" else bench.load_images(dataset, args.subsample, False)[0]
        channels = 3 if dataset == "cifar10" else 1
        fractions[dataset] = Fractions((32, 32, channels), images, chunk=CHUNK["gpu"])
    rows = paper_rows()
    rates = {c: scaled_ls(from_bench(GPU_BENCH, channels=c), cpu) for c in (1, 3)}
    describe(rates[1])
    head = f"{'row':<36} {'GPUs':>4} {'train h':>8} {'cal (E)LS h':>11} {'cal LS h':>8} {'evaluate h':>10} {'builds h':>8} {'total h':>8}"  # fmt: skip
    print("\n" + head)
    table = []
    for row in rows:
        train = train_hours(row.arch, row.channels, row.n_train)
        for devices in (1, 8):
            s = row_seconds(row, rates[row.channels], fractions[row.dataset], devices=devices)
            h = {key: (e / 3600, b / 3600) for key, (e, b) in s.items()}
            builds = sum(b for _, b in h.values())
            total = (train or 0) + sum(e + b for e, b in h.values())
            cal = h[f"calibrate_{row.kind}"]
            print(f"{row.name:<36} {devices:>4} {train if train else float('nan'):>8.1f} {cal[0]:>11.2f} "
                  f"{h['calibrate_ls'][0]:>8.3f} {h['evaluate'][0]:>10.2f} {builds:>8.2f} {total:>8.1f}")  # fmt: skip
            table.append(dict(row=row.name, devices=devices, train_h=train, hours=h, total_h=total))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))


# LS seconds per pair on this CPU, a + b D: the committed cpu_budget row's calibrate_ls (N = 2,000, 8 k x 200
# states x 1,024 pixels x 2,048 streamed images = 3.36e9 pairs in 42.7 s, under load). Overridden by --ls-rate.
LS_CPU = (1.27e-8, 0.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("paper", help="hours per stage of each paper_scale.py row")
    p.add_argument("--subsample", type=int, default=1000, help="images the distinct fractions are measured on")
    p.add_argument("--ls-rate", default=None, help="JSON [a, b] of CPU LS seconds per pair (default: LS_CPU)")
    p.add_argument("--out", default=None)
    v = sub.add_parser("validate", help="predict the committed cpu_budget row from CPU rates measured now")
    v.add_argument("--ks", type=int, nargs="+", default=[3, 5, 9, 17])
    v.add_argument("--batch", type=int, default=4)
    v.add_argument("--tmp", default="/tmp")
    v.add_argument("--no-measure", action="store_true", help="use the committed CPU bench rates only")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    (paper_report if args.command == "paper" else validate)(args)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
