"""``elsjax sample``: samples of a score machine on real data, written as a PNG grid, arrays and a JSON record.

Outputs in ``out_dir``:

* ``samples.png``: blocks of two rows, the seeds (clipped to [-1, 1]) above their samples;
* ``samples.npz``: ``samples`` and ``seeds`` ``[B, 32, 32, C]`` float32, ``labels`` ``[B]`` (the class of each
  seed, -1 when unconditional), ``prng_seed``;
* ``record.json``: the full configuration, the schedule, the data source and subset, versions and timings.

Example (a tiny user-directory dataset; see ``tests/test_cli.py``)::

    elsjax sample --dataset mnist --data-dir DIR --limit 40 --schedule 3,3,3,3 --n-seeds 2 --out-dir runs/tiny
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from elsjax import config as config_lib
from elsjax import seeds as seeds_lib
from elsjax.cli import UsageError

ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides
COMPILES = True  # the command line keeps compiled programs on disk (see elsjax.cli.enable_compilation_cache)

OUTPUT_FILES = ("samples.png", "samples.npz", "record.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_lib.add_flags(parser, config_lib.sample_config())
    parser.epilog = "Any field can also be set as --config.FIELD=VALUE (after --config FILE, before plain flags)."


def run(args: argparse.Namespace) -> int:
    cfg = config_lib.resolve(config_lib.sample_config(), args, args.extra)
    result = sample(cfg)
    out = Path(cfg.out_dir)
    print(f"wrote {', '.join(str(out / name) for name in OUTPUT_FILES)}")
    print(f"data: {result['data']['source']}, {result['data']['subset']} ({result['data']['num_images']} images)")
    print(f"time: {result['timings']['total_s']:.1f} s (sampling {result['timings']['sample_s']:.1f} s)")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# The steps, each usable on its own (the gallery script reuses them).


def check_out_dir(path, overwrite: bool) -> Path:
    """The output directory, refusing to write into a non-empty one unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"out_dir: {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UsageError(f"out_dir: {path} exists and is not empty (pass --overwrite to write into it)")
    return path


class ReverseStepBar:
    """A tqdm bar over all reverse steps of all class groups, fed by the sampler's ``progress`` callback.

    The sampler reports once per class group (``steps_done`` restarts at 0), so the bar keeps the offset.
    """

    def __init__(self, total_steps: int, enabled: bool = True):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_steps, unit="step", desc="reverse steps", disable=not enabled, file=sys.stderr)
        self.done_in_group = 0
        self.group = 0

    def __call__(self, phase: str, steps_done: int, total_steps: int, k: int) -> None:
        if phase == "build":
            if steps_done == 0 and self.done_in_group:
                self.done_in_group, self.group = 0, self.group + 1
            self.bar.set_postfix_str(f"group {self.group + 1}, building k={k}")
        else:
            self.bar.update(steps_done - self.done_in_group)
            self.done_in_group = steps_done
            self.bar.set_postfix_str(f"group {self.group + 1}, k={k}")

    def close(self) -> None:
        self.bar.close()


def versions() -> dict:
    """Versions of the software that produced a result."""
    import jax
    import jaxlib

    import elsjax

    return {
        "elsjax": elsjax.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
    }


def sample_grid(seeds: np.ndarray, samples: np.ndarray, columns: int = 10) -> np.ndarray:
    """uint8 grid of blocks of two rows: up to ``columns`` seeds, then their samples below them."""
    from elsjax import images

    width = min(columns, seeds.shape[0])
    blocks = []
    for start in range(0, seeds.shape[0], width):
        count = min(width, seeds.shape[0] - start)
        block = np.ones((2 * width,) + seeds.shape[1:], np.float32)  # white where the last block is short
        block[:count] = seeds[start : start + count]
        block[width : width + count] = samples[start : start + count]
        blocks.append(images.grid(images.to_uint8(block), columns=width))
    return np.concatenate(blocks, axis=0)


def sample(cfg) -> dict:
    """Runs one sampling job described by a :func:`elsjax.config.sample_config` and writes its outputs.

    Returns:
      The record written to ``record.json``.
    """

    import elsjax
    from elsjax import data, images, schedules

    start = time.perf_counter()
    if cfg.kind not in elsjax.machines.KINDS:
        raise UsageError(f"kind: expected one of {list(elsjax.machines.KINDS)}, got {cfg.kind!r}")
    scales = schedules.get_schedule(cfg.schedule)
    if cfg.n_seeds < 1:
        raise UsageError(f"n_seeds: expected a positive integer, got {cfg.n_seeds}")
    if cfg.limit < 0:
        raise UsageError(f"limit: expected a positive integer (or 0 for all), got {cfg.limit}")
    if cfg.png_scale < 1:
        raise UsageError(f"png_scale: expected a positive integer, got {cfg.png_scale}")
    out_dir = check_out_dir(cfg.out_dir, cfg.overwrite)
    info = data.DATASETS[data.canonical_name(cfg.dataset)]
    if cfg.label >= info.num_classes or cfg.label < -1:
        raise UsageError(f"label: class {cfg.label} is out of range for {info.name} (classes 0..{info.num_classes - 1}, or -1)")

    label = None if cfg.conditional or cfg.label < 0 else cfg.label
    dataset = data.load(info.name, label=label, **config_lib.data_options(cfg))
    loaded = time.perf_counter()

    seeds = seeds_lib.noise(cfg.seed, cfg.n_seeds, dataset.images.shape[1:])
    y = seeds_lib.classes(cfg.n_seeds, dataset.num_classes, label=cfg.label) if cfg.conditional else None
    if y is not None:
        missing = sorted(set(y.tolist()) - set(dataset.labels.tolist()))
        if missing:
            raise UsageError(f"label: class(es) {missing} have no images in the {dataset.subset} of {dataset.name}")
    groups = 1 if y is None else len(np.unique(y))
    bar = ReverseStepBar(groups * (len(scales) - 1), enabled=cfg.progress)
    try:
        samples = elsjax.sample(
            cfg.kind,
            seeds,
            train=dataset.images,
            scales=scales,
            labels=dataset.labels,
            y=y,
            convention=cfg.convention,
            chunk_size=cfg.chunk_size or None,
            progress=bar,
        )
    finally:
        bar.close()
    sampled = time.perf_counter()

    out_dir.mkdir(parents=True, exist_ok=True)
    images.save_png(out_dir / "samples.png", sample_grid(seeds, samples), scale=cfg.png_scale)
    np.savez(
        out_dir / "samples.npz",
        samples=samples,
        seeds=seeds,
        labels=np.full(cfg.n_seeds, -1, np.int32) if y is None else y,
        prng_seed=np.int64(cfg.seed),
    )
    record = {
        "command": "elsjax sample",
        "argv": sys.argv,
        "config": cfg.to_dict(),
        "schedule": scales,
        "seeds": seeds_lib.describe(cfg.seed, seeds.shape),
        "labels": None if y is None else y.tolist(),
        "data": dataset.describe(),
        "versions": versions(),
        "timings": {
            "data_s": round(loaded - start, 3),
            "sample_s": round(sampled - loaded, 3),
            "total_s": round(time.perf_counter() - start, 3),
        },
    }
    (out_dir / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
