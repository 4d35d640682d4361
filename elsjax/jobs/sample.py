"""The sampling job: samples of a score machine on real data, written as a PNG grid, arrays and a record.

Outputs in ``out_dir``:

* ``samples.png``: blocks of two rows, the seeds (clipped to [-1, 1]) above their samples;
* ``samples.npz``: ``samples`` and ``seeds`` ``[B, 32, 32, C]`` float32, ``labels`` ``[B]`` (the class of each
  seed, -1 when unconditional), ``prng_seed``;
* ``config.json`` and ``record.json``: the configuration, the scales, the data source and subset, versions and
  timings.

``knobs`` are the denoiser's own keyword arguments (e.g. ``{"tau": 0.02}`` for ``pca_locality``), passed to
:func:`elsjax.sample`.

Example (a tiny user-directory dataset; see ``tests/test_cli.py``)::

    elsjax sample --dataset mnist --data-dir DIR --limit 40 --scales 3,3,3,3 --n-seeds 2 --out-dir runs/tiny

Scale-out (docs/scale_out.md): ``mesh`` splits the dictionaries and the seeds over devices; with several processes
(``coordinator``, ``num_processes``, ``process_id``) each process builds the dictionaries of its share of every
class, and process 0 writes the outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elsjax import config as config_lib
from elsjax import data, runs, seeds, sharding

__all__ = ["run", "OUTPUT_FILES"]

OUTPUT_FILES = ("samples.png", "samples.npz", "config.json", "record.json")


def _check(cfg) -> None:
    check_sampling(cfg, positive=("n_seeds", "png_scale"))


def check_sampling(cfg, *, positive: tuple[str, ...]) -> None:
    """The checks of a sampling job's config (``elsjax sample``, ``elsjax explain``): ``positive`` fields >= 1."""
    from elsjax import denoisers

    denoisers.get(cfg.kind)  # a ValueError naming the registered denoisers
    for key in positive:
        if cfg[key] < 1:
            raise ValueError(f"{key}: expected a positive integer, got {cfg[key]}")
    if cfg.limit < 0:
        raise ValueError(f"limit: expected a positive integer (or 0 for all), got {cfg.limit}")
    if cfg.chunk_size < 0:
        raise ValueError(f"chunk_size: expected a positive integer (or 0 for the default), got {cfg.chunk_size}")


def load_dataset_check(cfg) -> None:
    """The cheap checks of :func:`load_dataset` (dataset name, class range), before anything is loaded."""
    info = data.DATASETS[data.canonical_name(cfg.dataset)]
    if cfg.label >= info.num_classes or cfg.label < -1:
        raise ValueError(
            f"label: class {cfg.label} is out of range for {info.name} (classes 0..{info.num_classes - 1}, or -1)"
        )


def load_dataset(cfg):
    """The machines' training set of a sampling job's config: all classes for a conditional machine, else the
    images of class ``label`` (or all of them for -1)."""
    load_dataset_check(cfg)
    info = data.DATASETS[data.canonical_name(cfg.dataset)]
    label = None if cfg.conditional or cfg.label < 0 else cfg.label
    return data.load(info.name, label=label, **config_lib.data_options(cfg))


def check_classes(y, dataset) -> None:
    """Every class in ``y`` (None: unconditional) has images in ``dataset``."""
    if y is None:
        return
    missing = sorted(set(y.tolist()) - set(dataset.labels.tolist()))
    if missing:
        raise ValueError(f"label: class(es) {missing} have no images in the {dataset.subset} of {dataset.name}")


@runs.job
def run(cfg) -> dict:
    """Runs one sampling job described by a :func:`elsjax.config.sample_config` and writes its outputs.

    Returns:
      The record written to ``record.json``.

    Raises:
      ValueError: a bad field (named), or a class with no training images.
      elsjax.runs.RunDirError: ``out_dir`` is not empty (and ``overwrite`` is off), not writable, or in use by
        another run.
      elsjax.data.SourceUnavailable: the dataset is not on this machine.
    """
    import elsjax
    from elsjax import scales as scales_lib

    clock = runs.Stopwatch()
    cfg = config_lib.merge(config_lib.sample_config(), cfg.to_dict())  # typed (lists given as text converted)
    mesh = sharding.setup(**config_lib.scale_out(cfg))  # before JAX starts
    primary = sharding.is_primary()  # process 0 writes the outputs
    _check(cfg)
    knobs = config_lib.denoiser_knobs(cfg.kind, cfg.knobs)
    sharding.check_batch(cfg.n_seeds, mesh, "n_seeds")
    scales = scales_lib.resolve(cfg.scales)
    out_dir = Path(cfg.out_dir)
    load_dataset_check(cfg)
    if primary:  # before the data and the sampling: the directory is writable, locked and holds config.json
        runs.start_run(out_dir, config_lib.as_saved(cfg), overwrite=cfg.overwrite,
                       defaults=config_lib.as_saved(config_lib.sample_config()))  # fmt: skip
    dataset = load_dataset(cfg)
    clock.lap("data")

    noise = seeds.noise(cfg.seed, cfg.n_seeds, dataset.images.shape[1:])
    y = seeds.classes(cfg.n_seeds, dataset.num_classes, label=cfg.label) if cfg.conditional else None
    check_classes(y, dataset)
    groups = 1 if y is None else len(np.unique(y))
    train, labels = sharding.local_share(dataset.images, dataset.labels)  # all of them with one process
    bar = runs.StepBar(groups * (len(scales) - 1), enabled=cfg.progress and primary)
    try:
        samples = elsjax.sample(
            cfg.kind, noise, train=train, scales=scales, labels=labels, y=y,
            convention=cfg.convention, chunk_size=cfg.chunk_size or None, progress=bar, mesh=mesh, **knobs,
        )  # fmt: skip
    finally:
        bar.close()
    clock.lap("sample")
    record = {
        "command": "elsjax sample",
        "scales": scales,
        "seeds": seeds.describe(cfg.seed, noise.shape),
        "labels": None if y is None else y.tolist(),
        "data": dataset.describe(),
        "mesh": sharding.describe(mesh),
    }
    if not primary:
        return {**record, "timings": clock.laps()}

    runs.save_samples(out_dir, noise, samples, labels=y, prng_seed=cfg.seed, png_scale=cfg.png_scale)
    return runs.write_record(out_dir, record, config=cfg, timings=clock.laps())
