"""Gallery: machine samples next to their nearest training images (L2 in pixel space).

Runs the sampling job with the gallery config (or any sample config and flags), then finds, for each sample, the
closest image of the training subset the machine used (all classes of that subset), and writes a two-row PNG:
samples on top, nearest training images below. A sample far from every training image is a new combination of
training patches (the paper's "creativity"); a copy would sit on its neighbour.

    python experiments/gallery.py                     # docs/gallery_els.png, a few minutes on 2 CPU cores
    python experiments/gallery.py --limit 2000 --png docs/gallery_2k.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from elsjax import atomic, cli, config, data, images
from elsjax.jobs import sample as sample_job

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "experiments" / "configs" / "gallery_fmnist_bbels.py"


def nearest_neighbours(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and L2 distance of each query's nearest reference (both ``[N, ...]``, flattened per image).

    Example:
      >>> q, r = np.zeros((1, 2, 2, 1)), np.stack([np.ones((2, 2, 1)), np.zeros((2, 2, 1))])
      >>> nearest_neighbours(q, r)
      (array([1]), array([0.]))
    """
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    r = np.asarray(references, np.float64).reshape(len(references), -1)
    sq = (q * q).sum(1)[:, None] - 2.0 * q @ r.T + (r * r).sum(1)[None, :]
    index = sq.argmin(axis=1)
    return index, np.sqrt(np.maximum(sq[np.arange(len(q)), index], 0.0))


def gallery(cfg, png: Path) -> dict:
    """Samples with ``cfg`` (a :func:`elsjax.config.sample_config`), then writes the gallery PNG and its JSON."""
    record = sample_job.run(cfg)
    with np.load(Path(cfg.out_dir) / "samples.npz") as f:
        samples = f["samples"]
    train = data.load(cfg.dataset, **config.data_options(cfg))
    index, distance = nearest_neighbours(samples, train.images)
    tiles = images.to_uint8(np.concatenate([samples, train.images[index]]))
    png.parent.mkdir(parents=True, exist_ok=True)
    images.save_png(png, images.grid(tiles, columns=len(samples)), scale=cfg.png_scale)
    summary = {
        "png": _relative(png),
        "rows": ["samples", "nearest training image (L2, pixel space, over the whole training subset)"],
        "nearest_index": index.tolist(),
        "nearest_label": train.labels[index].tolist(),
        "l2_distance": [round(float(d), 3) for d in distance],
        "sample_record": str(Path(cfg.out_dir) / "record.json"),
        "data": record["data"],
        "scales": record["scales"],
        "config": record["config"],
        "timings": record["timings"],
    }
    atomic.write_text(png.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    print(f"wrote {png} and {png.with_suffix('.json')}")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    config.add_flags(parser, config.SAMPLE_FIELDS)
    parser.add_argument("--png", default=str(REPO / "docs" / "gallery_els.png"), help="where to write the gallery")
    args, extra = parser.parse_known_args(argv)
    if args.config is None:
        args.config = str(DEFAULT_CONFIG)
    return cli.call(
        "gallery", lambda: gallery(config.resolve(config.sample_config(), args, extra), Path(args.png)) and 0
    )


def _relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (the committed record holds no machine paths)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
