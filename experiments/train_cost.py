"""Cost of training the paper's nets: FLOPs of one optimiser step (XLA's cost analysis) and measured steps per second.

It builds the paper-width net (`elsjax.paper.NETS`: the ResNet at width 256, the UNet at widths 64/128/256), the
paper's optimiser, and times ``--steps`` calls of the jitted :func:`elsjax.train.train_step` at the paper's batch
(128) after one warm-up call (the compilation), on random data of the dataset's shape. It prints the step's FLOPs
(``jax.jit(...).lower(...).compile().cost_analysis()``, forward + backward + Adam), steps/s, the achieved FLOP/s,
and the hours the paper's 300 epochs would take at that rate (140,700 steps for 60,000 images, 117,300 for 50,000).

Usage:
  python experiments/train_cost.py --arch resnet --steps 50            # time 50 steps (on a GPU: seconds)
  python experiments/train_cost.py --arch unet --channels 3 --classes 10 --flops-only
  python experiments/train_cost.py --tiny                              # seconds on a CPU (what the tests run)
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from elsjax import nets, paper, train


def paper_steps(num_images: int) -> int:
    """Optimiser steps of the paper's recipe (300 epochs at batch 128, the last partial batch kept)."""
    return paper.TRAINING["epochs"] * -(-num_images // paper.TRAINING["batch_size"])


def setup(arch: str, channels: int, classes: int, batch: int, num_images: int, **settings):
    """``(step, state, images, labels)``: the jitted step bound to the paper's net and optimiser, and its inputs."""
    spec = nets.spec(arch, channels=channels, num_classes=classes, **settings)
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    tx = train.optimizer()
    state = train.init(params, tx)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (num_images, 32, 32, channels)).astype(np.float32)
    labels = rng.integers(0, classes, num_images).astype(np.int32) if classes else None
    step = jax.jit(lambda s, x, y: train.train_step(s, x, y, eps_fn=eps_fn, tx=tx, batch_size=batch,
                                                     key=jax.random.key(1)))  # fmt: skip
    return step, state, images, labels, nets.param_count(params)


def step_flops(step, state, images, labels) -> float:
    """FLOPs of one optimiser step, as XLA's cost analysis of the compiled step counts them."""
    analysis = step.lower(state, images, labels).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis  # a list in older JAX versions
    return float(analysis["flops"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet", choices=sorted(nets.ARCHITECTURES))
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--classes", type=int, default=0, help="0: unconditional")
    parser.add_argument("--batch", type=int, default=paper.TRAINING["batch_size"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps after the warm-up (compiling) one")
    parser.add_argument("--train-images", type=int, default=60000, help="sets the implied step count of 300 epochs")
    parser.add_argument("--flops-only", action="store_true", help="count the FLOPs, time nothing")
    parser.add_argument("--tiny", action="store_true", help="width 8, batch 4, 2 steps (for tests)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    settings = dict(width=8, emb_dim=8) if args.tiny else {}
    if args.tiny:
        args.batch, args.steps = 4, 2
    step, state, images, labels, n_params = setup(
        args.arch, args.channels, args.classes, args.batch, max(args.batch, 256), **settings
    )
    flops = step_flops(step, state, images, labels)
    total_steps = paper_steps(args.train_images)
    result = {
        "arch": args.arch, "channels": args.channels, "classes": args.classes, "batch": args.batch,
        "params": n_params, "flops_per_step": flops, "paper_steps": total_steps,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
    }  # fmt: skip
    print(f"{args.arch} ({n_params / 1e6:.2f}M parameters), batch {args.batch}: {flops / 1e9:.1f} GFLOP per step")
    if not args.flops_only:
        state, loss = step(state, images, labels)  # compiles
        jax.block_until_ready(loss)
        start = time.perf_counter()
        for _ in range(args.steps):
            state, loss = step(state, images, labels)
        jax.block_until_ready(loss)
        seconds = time.perf_counter() - start
        rate = args.steps / seconds
        result.update(steps_per_s=rate, flops_per_s=flops * rate, paper_hours=total_steps / rate / 3600)
        print(
            f"{rate:.2f} steps/s ({flops * rate / 1e12:.2f} TFLOP/s achieved) on {jax.devices()[0]}: "
            f"{total_steps:,} steps (300 epochs of {args.train_images:,} images) would take "
            f"{result['paper_hours']:.1f} h"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
