"""Time and memory of one unconditional 19-step ELS sample, segment by segment.

Prints, at every dictionary build and after every segment of steps (the sampler's progress callback), the seconds
since the start, the current RSS and the peak RSS (GB). The README's "Memory" paragraph quotes its output on the
full Fashion-MNIST training set (experiments/results/sample_60k_memory.txt).

Usage:
  python experiments/sample_memory.py                        # all 60,000 Fashion-MNIST images
  python experiments/sample_memory.py --limit 2000 --keep-bytes 0
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from elsjax import data, sampler, scales

MNIST_RESNET_CIRCULAR = scales.resolve("MNIST_ResNet_circular")


def rss_gb() -> tuple[float, float]:
    """(current, peak) resident set size in GB (Linux)."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * resource.getpagesize() / 2**30
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--limit", type=int, default=0, help="training images (0: all)")
    parser.add_argument("--keep-bytes", type=int, default=None, help="see sampler.sample_machine (default: its own)")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="6 synthetic 16x16 images (for tests)")
    args = parser.parse_args(argv)
    if args.tiny:
        codes = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 1))
        images, args.dataset = (codes * np.float32(2 / 255) - 1).astype(np.float32), "synthetic"
    else:
        images = data.load(args.dataset, limit=args.limit or None).images
    seeds = np.random.default_rng(args.seed).normal(size=(1,) + images.shape[1:]).astype(np.float32)
    start = time.perf_counter()

    def progress(phase, done, total, k):
        current, peak = rss_gb()
        print(
            f"{time.perf_counter() - start:7.1f} s  {phase:6s} step {done:2d}/{total}  k={k:2d}  "
            f"RSS {current:.2f} GB  peak {peak:.2f} GB",
            flush=True,
        )

    out = sampler.sample_machine(
        "els", seeds, images, MNIST_RESNET_CIRCULAR, keep_bytes=args.keep_bytes, progress=progress
    )
    assert np.all(np.isfinite(np.asarray(out)))
    current, peak = rss_gb()
    print(f"N={len(images)} ({args.dataset}): {time.perf_counter() - start:.1f} s, peak RSS {peak:.2f} GB")
    return peak


if __name__ == "__main__":
    main()
