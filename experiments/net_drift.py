"""The net's own samples across its training checkpoints: how bright they are, beside its training images.

A net whose loss has flattened can still drift in what it generates: with no EMA of the weights (the paper's nets
have none either), small changes of its noise prediction at high noise shift the whole sample, and a checkpoint
may draw saturated, nearly white images. No score machine can follow such samples (its outputs are mosaics of
training patches), so they bound the agreement of every machine at once. This script measures it per checkpoint:
the mean pixel, the fraction of pixels above 0.5 and outside [-1, 1], for the net's 20- and 150-step DDIM samples
from fixed seeds, and draws the first seeds' samples per checkpoint (one column each). ``--weights raw ema`` reads
both the raw weights and their moving average of a net trained with ``ema_decay > 0`` (not the paper's procedure).

    python experiments/net_drift.py experiments/checkpoints/mnist_resnet_zeros_n2000_cpu \
        experiments/checkpoints/mnist_resnet_zeros_n2000_long_cpu --labels "run 0" "run 0" \
        --out experiments/results/cpu_budget/net_drift
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from elsjax import checkpoint, figures, sampler, seeds
from elsjax.jobs import netdata


def stats(x: np.ndarray) -> dict:
    """Brightness of images in [-1, 1]: mean pixel, fraction above 0.5, fraction outside [-1, 1]."""
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()), "frac_above_half": float((x > 0.5).mean()),
            "frac_outside": float((np.abs(x) > 1.0).mean())}  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nets", nargs="+", help="net directories (checkpoint roots or elsjax train runs)")
    parser.add_argument("--n-seeds", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1, help="the noise seed (1: the evaluation's first seeds)")
    parser.add_argument("--out", default="", help="write OUT.json and OUT.png")
    parser.add_argument("--weights", nargs="+", default=["raw"], choices=["raw", "ema"],
                        help="which weights of each checkpoint: raw (the paper's), ema (their moving average, for a "
                             "net trained with ema_decay > 0), or both")  # fmt: skip
    parser.add_argument("--labels", nargs="+", default=None,
                        help="a name per net for the figure's columns (default: none for one net, else the "
                             "directories' names)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.nets):
        raise SystemExit(f"net_drift: --labels: {len(args.labels)} names for {len(args.nets)} nets")
    labels = args.labels or ([""] if len(args.nets) == 1 else [Path(n).name for n in args.nets])

    first = netdata.load(args.nets[0], limit=0)
    shape = first.dataset.images.shape[1:]
    noise = seeds.noise(args.seed, args.n_seeds, shape)
    if first.conditional:
        raise SystemExit("net_drift: class-conditional nets are not supported (the study's net is unconditional)")
    results = {"seed": args.seed, "n_seeds": args.n_seeds, "train": stats(first.dataset.images), "nets": {}}
    print(f"training images: {json.dumps(results['train'])}")
    columns = {}
    for net, label in zip(args.nets, labels):
        for step, weights in [(s, w) for s in checkpoint.steps(net) for w in args.weights]:
            eps_fn, params, meta = checkpoint.load_net(net, step=step, weights=weights)
            row = {}
            for n in (20, 150):
                x = np.asarray(sampler.sample_net(eps_fn, params, jax.numpy.asarray(noise), num_steps=n))
                row[str(n)] = stats(x)
                if n == 20:
                    column = f"{step}" if args.weights == ["raw"] else f"{step} {weights}"
                    columns[f"{label} {column}".strip()] = x
            key = str(step) if weights == "raw" else f"{step}_ema"  # raw: the keys of the files written before EMA
            results["nets"].setdefault(str(net), {})[key] = row
            print(f"{net} step {step} ({weights}): " + "; ".join(
                f"{n} steps mean {v['mean']:+.2f}, >0.5 {v['frac_above_half']:.2f}, outside {v['frac_outside']:.2f}"
                for n, v in row.items()), flush=True)  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(results, indent=1))
        figures.comparison_grid(columns, args.out + ".png", max_rows=6)
        print(f"wrote {args.out}.json, {args.out}.png")
    return results


if __name__ == "__main__":
    main()
