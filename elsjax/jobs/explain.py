"""The explain job: patch provenance of machine samples (docs/maths.md §11), as arrays and one figure per seed.

For each explained seed the machine's sampler runs with provenance on (:func:`elsjax.provenance.sample_provenance`):
every step records, per pixel, the ``top`` heaviest dictionary entries (training image, centre position, class,
weight, occurrence count), the posterior entropy and the clean estimate. Outputs in ``out_dir``:

* ``explain_SEED.png`` (one per explained seed, :func:`elsjax.figures.provenance_figure`): the sample beside its
  mosaic (each pixel the centre value of its top patch), provenance maps (each pixel coloured by the training image
  of its top patch, the most used ones as thumbnails in the legend; pixels whose top patch is common, such as flat
  background, dark) and entropy maps at the last step and a few
  chosen steps, and the mean entropy, the number of distinct source images and k against t;
* ``provenance.npz``: ``step``, ``t``, ``k`` ``[S]``; ``x`` and ``mean`` ``[S, B, H, W, C]`` (the input and the
  clean estimate of each step); ``image``, ``weight``, ``count``, ``label`` ``[S, B, H, W, top]`` and ``position``
  ``[S, B, H, W, top, 2]``; ``entropy`` ``[S, B, H, W]``; ``samples`` and ``seeds`` ``[B, H, W, C]``; ``y`` ``[B]``
  (-1 when unconditional); ``seed_index`` ``[B]`` (which seeds of the run). ``image`` indexes the training subset
  that ``record.json`` describes (``data``): the first ``limit`` images of the split (then the class, for an
  unconditional run with a fixed ``label``);
* ``config.json`` and ``record.json``: the configuration; per step t, k, each seed's mean entropy and number of
  distinct source images; when explaining a saved ``samples.npz``, how far the recomputed samples are from it.

Example (a tiny user-directory dataset; see ``tests/test_cli.py``)::

    elsjax explain --dataset mnist --data-dir DIR --limit 40 --scales 3,3,3,3 --n-seeds 2 --out-dir runs/why
    elsjax explain --samples runs/sample/samples.npz --which 0,3 --out-dir runs/why_sample
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from elsjax import atomic, figures, runs, seeds
from elsjax import config as config_lib
from elsjax.jobs import sample as sample_job

__all__ = ["run", "OUTPUT_FILES", "parse_indices"]

OUTPUT_FILES = ("explain_SEED.png", "provenance.npz", "config.json", "record.json")


def parse_indices(name: str, text: str) -> list[int] | None:
    """Comma-separated non-negative integers, or None for an empty string.

    Example:
      >>> parse_indices("which", "0, 3"), parse_indices("which", "")
      ([0, 3], None)
    """
    text = text if isinstance(text, str) else ",".join(map(str, text))  # a typed config's tuple
    if not str(text).strip():
        return None
    try:
        values = [int(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated non-negative integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise ValueError(f"{name}: expected non-negative integers, got {text!r}")
    return values


def _check(cfg) -> None:
    sample_job.check_sampling(cfg, positive=("n_seeds", "top"))
    if cfg.legend < 0:
        raise ValueError(f"legend: expected a non-negative integer, got {cfg.legend}")


class _Stored(NamedTuple):
    """The seeds, classes (None when unconditional) and samples of a saved ``samples.npz``."""

    seeds: np.ndarray
    y: np.ndarray | None
    samples: np.ndarray


def _from_samples(cfg) -> tuple[object, _Stored]:
    """``(cfg with the sample run's fields, the stored seeds, classes and samples)`` from ``cfg.samples``."""
    path = Path(cfg.samples)
    if not path.is_file():
        raise ValueError(f"samples: no such file {str(path)!r} (a samples.npz written by elsjax sample)")
    config_path = path.parent / "config.json"
    if not config_path.is_file():
        raise ValueError(f"samples: {config_path} is missing (the sample run's configuration, written beside it)")
    run_config = runs.read_json(config_path, name="samples")
    record_path = path.parent / "record.json"
    command = runs.read_json(record_path, name="samples").get("command") if record_path.is_file() else None
    if not isinstance(run_config, dict) or "arch" in run_config or command not in (None, "elsjax sample"):
        made_by = command or (
            "elsjax train" if isinstance(run_config, dict) and "arch" in run_config else "another job"
        )
        raise ValueError(
            f"samples: {path} was written by {made_by}, not by elsjax sample; explain takes the samples of a "
            "score machine (`elsjax sample --out-dir DIR`, then --samples DIR/samples.npz)"
        )
    taken = {key: run_config[key] for key in config_lib.SAMPLE_RUN_FIELDS if key in run_config}
    cfg = config_lib.merge(cfg, taken)
    try:
        with np.load(path) as f:
            missing = {"seeds", "samples", "labels"} - set(f.files)
            if missing:
                raise ValueError(f"samples: {path} lacks {sorted(missing)} (not a samples.npz of elsjax sample)")
            noise, stored, labels = f["seeds"], f["samples"], f["labels"]
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - a truncated or garbled file, whatever numpy raises for it
        raise ValueError(f"samples: {path} is unreadable (truncated or corrupt: {type(err).__name__})") from None
    y = None if (labels < 0).all() else labels.astype(np.int32)
    cfg.n_seeds = int(noise.shape[0])
    return cfg, _Stored(np.asarray(noise, np.float32), y, np.asarray(stored, np.float32))


@runs.job
def run(cfg) -> dict:
    """Runs one explain job described by a :func:`elsjax.config.explain_config` and writes its outputs.

    Returns:
      The record written to ``record.json``.

    Raises:
      ValueError: a bad field (named), a class with no training images, a ``samples`` file that is not one.
      elsjax.runs.RunDirError: ``out_dir`` is not empty (and ``overwrite`` is off).
      elsjax.data.SourceUnavailable: the dataset is not on this machine.
    """
    from elsjax.provenance import mosaic

    clock = runs.Stopwatch()
    cfg, stored, scales, which, shown_steps = _checked(cfg)
    out_dir = Path(cfg.out_dir)
    # Before the data and the sampling: the directory is writable, locked and holds config.json.
    runs.start_run(out_dir, cfg, overwrite=cfg.overwrite, defaults=config_lib.explain_config())
    dataset = sample_job.load_dataset(cfg)
    clock.lap("data")
    if stored is None:
        noise = seeds.noise(cfg.seed, cfg.n_seeds, dataset.images.shape[1:])
        y = seeds.classes(cfg.n_seeds, dataset.num_classes, label=cfg.label) if cfg.conditional else None
    else:
        noise, y = stored.seeds, stored.y
    which, chosen_y = _chosen_seeds(noise, y, which, dataset)
    samples, steps = _sample(cfg, noise[which], chosen_y, dataset, scales)
    clock.lap("sample")
    arrays = _provenance_arrays(steps, samples, noise[which], which, chosen_y)
    atomic.save_npz(out_dir / "provenance.npz", compressed=True, **arrays)
    tiles = mosaic(steps[-1].provenance, dataset.images)
    step_pos = {s.step: i for i, s in enumerate(steps)}
    shown = None if shown_steps is None else sorted({step_pos[s] for s in shown_steps} | {len(steps) - 1})
    figures_written = _write_figures(cfg, out_dir, dataset, arrays, tiles, which=which, y=chosen_y, shown=shown)
    clock.lap("figures")
    record = {
        "command": "elsjax explain",
        "scales": scales,
        "seeds": seeds.describe(cfg.seed, noise.shape) if stored is None else {"from": str(cfg.samples)},
        "seed_index": which,
        "labels": None if chosen_y is None else chosen_y.tolist(),
        "data": dataset.describe(),
        "figures": figures_written,
        **_step_summaries(steps, samples, tiles),
    }
    if stored is not None:
        record["stored_samples_max_abs_diff"] = float(np.max(np.abs(stored.samples[which] - samples)))
    return runs.write_record(out_dir, record, config=cfg, timings=clock.laps())


def _checked(cfg):
    """``(cfg, stored samples or None, scales, which, shown steps)``: every check that needs no data, before the
    run directory is started."""
    from elsjax import scales as scales_lib
    from elsjax.provenance import check_steps

    stored = None
    if cfg.samples:
        cfg, stored = _from_samples(cfg)
    _check(cfg)
    scales = scales_lib.resolve(cfg.scales)
    which = parse_indices("which", cfg.which)
    shown_steps = check_steps(parse_indices("steps", cfg.steps), len(scales))
    n_seeds = cfg.n_seeds if stored is None else stored.seeds.shape[0]
    if which is not None and max(which) >= n_seeds:
        raise ValueError(f"which: seed indices run from 0 to {n_seeds - 1}, got {max(which)}")
    sample_job.load_dataset_check(cfg)
    return cfg, stored, scales, which, shown_steps


def _chosen_seeds(noise, y, which, dataset):
    """``(which, their classes or None)``: the seeds to explain (all by default), checked against the data."""
    if noise.shape[1:] != dataset.images.shape[1:]:
        raise ValueError(
            f"samples: seeds of shape {noise.shape[1:]} do not match the images {dataset.images.shape[1:]}"
        )
    which = list(range(noise.shape[0])) if which is None else which
    if max(which) >= noise.shape[0]:
        raise ValueError(f"which: seed indices run from 0 to {noise.shape[0] - 1}, got {max(which)}")
    chosen_y = None if y is None else y[which]
    sample_job.check_classes(chosen_y, dataset)
    return which, chosen_y


def _sample(cfg, noise, y, dataset, scales):
    """``(samples, steps)`` of :func:`elsjax.provenance.sample_provenance` from ``noise``, with a progress bar."""
    from elsjax.provenance import sample_provenance

    groups = 1 if y is None else len(np.unique(y))
    bar = runs.StepBar(groups * (len(scales) - 1), enabled=cfg.progress)
    try:
        return sample_provenance(
            cfg.kind, noise, train=dataset.images, scales=scales, labels=dataset.labels, y=y,
            top=cfg.top, convention=cfg.convention, chunk_size=cfg.chunk_size or None, progress=bar,
        )  # fmt: skip
    finally:
        bar.close()


def _provenance_arrays(steps, samples, noise, which, y) -> dict:
    """The arrays of ``provenance.npz`` (see the module's docstring)."""
    stack = lambda field: np.stack([getattr(s.provenance, field) for s in steps])
    return {
        "step": np.array([s.step for s in steps], np.int64),
        "t": np.array([s.t for s in steps], np.float32),
        "k": np.array([s.k for s in steps], np.int64),
        "x": np.stack([s.x for s in steps]),
        **{field: stack(field) for field in ("mean", "image", "position", "weight", "count", "label", "entropy")},
        "samples": samples,
        "seeds": noise,
        "y": np.full(len(which), -1, np.int32) if y is None else y.astype(np.int32),
        "seed_index": np.asarray(which, np.int64),
    }


def _write_figures(cfg, out_dir: Path, dataset, arrays: dict, tiles, *, which, y, shown) -> list[str]:
    """``explain_SEED.png`` for each explained seed (``which``, of classes ``y`` or None); their names."""
    written = []
    for b, index in enumerate(which):
        cls = "" if y is None else f", class {int(y[b])}"
        title = f"{cfg.kind} on {dataset.name} ({dataset.subset}), seed {index}{cls}: where each pixel comes from"
        written.append(
            figures.provenance_figure(
                out_dir / f"explain_{index}.png", sample=arrays["samples"][b], mosaic=tiles[b],
                source=arrays["image"][:, b, ..., 0], entropy=arrays["entropy"][:, b], estimates=arrays["mean"][:, b],
                t=arrays["t"], k=arrays["k"], train=dataset.images, labels=dataset.labels,
                count=arrays["count"][:, b, ..., 0], shown=shown, legend=cfg.legend, title=title,
            ).name
        )  # fmt: skip
    return written


def _step_summaries(steps, samples, tiles) -> dict:
    """The record's ``steps`` (per step t, k, each seed's mean entropy and number of distinct source images) and
    ``mosaic_mean_abs_diff`` (per seed)."""
    from elsjax.provenance import distinct_sources

    n = len(samples)
    return {
        "steps": [
            {
                "step": s.step, "t": s.t, "k": s.k,
                "mean_entropy": [round(float(v), 5) for v in s.provenance.entropy.reshape(n, -1).mean(1)],
                "distinct_sources": distinct_sources(s.provenance).tolist(),
            }
            for s in steps
        ],
        "mosaic_mean_abs_diff": [round(float(v), 5) for v in np.abs(tiles - samples).reshape(n, -1).mean(1)],
    }  # fmt: skip
