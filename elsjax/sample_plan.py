"""The host side of a machine sample: the plan of segments, dictionaries and programs, and the builds.

:func:`machine_steps` maps a k schedule to the sampler's grid; :func:`plan` groups the steps into segments of one k,
chooses the dictionaries built ahead of time, and (for padded programs) the buckets of k that share one compiled
program; :class:`Run` walks a plan, building, padding, keeping and freeing dictionaries, for
:func:`elsjax.sampler.sample_machine` and its variants.

Padded programs (docs/performance.md): a patch machine's k sets its key length ``C k^2`` and its table shapes,
so without padding each distinct k of a schedule compiles its own sampling program (up to 12 for a published
schedule). With ``padded=True`` the distinct k are split in at most two buckets, and every machine of a bucket is
padded (:meth:`elsjax.denoisers.PatchDenoiser.pad`) to the shape of the bucket's largest: keys and queries with
zeros to ``C k_max^2`` values, tables to shared group, query and chunk counts, the patch size itself passed as data.
One program per bucket serves every k in it, with the same results to float32 rounding. The split is the one of
least padded work, ``sum over steps of positions(k) * (C k_bucket^2 + 2)``: the key length of a bucket is that of
its largest k (not a power of two, which would pad every bucket further), and two buckets keep the smallest k
(the most steps of a published schedule) from paying for the largest.

Example:
    >>> p = plan("els", (10, 28, 28, 1), [3, 3, 5, 5, 7, 9, 11, 13, 15, 15], padded=True)
    >>> p.buckets
    ((3, 5, 7), (9, 11, 13, 15))
"""

from __future__ import annotations

import concurrent.futures
import functools
import gc
import itertools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from elsjax import denoisers, noise, patches, sharding
from elsjax.progress import Phase

__all__ = [
    "CONVENTIONS", "KEEP_BYTES", "PADDED_PROGRAMS", "default_keep_bytes", "default_padded", "machine_steps", "Segment",
    "SamplePlan", "plan", "program_buckets", "Builder", "Run",
]  # fmt: skip

CONVENTIONS = ("reference", "corrected")

# On CPU, dictionaries needed again later in a non-monotone k schedule are kept up to this many bytes in all;
# beyond it they are rebuilt (about a build's time) so that peak memory stays near one dictionary (full 60k
# Fashion-MNIST: the k = 7, 9 and 11 dictionaries take 2-3.5 GB each). Accelerators keep up to a quarter of the
# device's memory.
KEEP_BYTES = 2 << 30

# Padded programs, per backend (docs/performance.md): on CPU a padded key costs its zeros' flops and compiling is
# cheap, so each k keeps its exact program; accelerators compile far longer than a 19-step sample evaluates.
PADDED_PROGRAMS = {"cpu": False}


def default_keep_bytes() -> int:
    """How many bytes of dictionaries :func:`sample_machine` keeps for reuse on the default backend."""
    if jax.default_backend() == "cpu":
        return KEEP_BYTES
    stats = jax.devices()[0].memory_stats() or {}
    return int(stats.get("bytes_limit", 4 * KEEP_BYTES)) // 4


def default_padded() -> bool:
    """Whether :func:`elsjax.sampler.sample_machine` pads patch machines to shared programs on the default backend."""
    return PADDED_PROGRAMS.get(jax.default_backend(), True)


def machine_steps(scales: Sequence[int], convention: str = "reference"):
    """The machine sampler's grid and the k used at each step.

    Args:
      scales: the calibrated schedule (length n, 20 in the paper); entry j belongs to ``t = (j + 1) / n``.
      convention: ``"reference"`` (``scales[i]`` at ``t = i / n``, as the authors' sampler does) or
        ``"corrected"`` (``scales[i - 1]``).

    Returns:
      ``(grid [n - 1, 2] float32, ks [n - 1] int)``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    n = len(scales)
    shift = 0 if convention == "reference" else 1
    ks = np.array([int(scales[i - shift]) for i in range(n - 1, 0, -1)], np.int64)
    return noise.time_grid(n, start=n - 1), ks


class Segment(NamedTuple):
    """Consecutive steps of the machine grid that share one patch size: ``steps start ... start + length - 1``."""

    k: int
    start: int
    length: int


class SamplePlan(NamedTuple):
    """The host side of a machine sample: what to build, in what order, within what memory.

    Attributes:
      grid: ``[steps, 2]`` float32 ``(t, t_prev)`` of every step (:func:`machine_steps`).
      segments: the steps grouped by patch size, in order (k = 0 for a denoiser without a patch size).
      prefetch: the distinct k built before the first step, in order of first use: those whose upper bound of
        dictionary bytes (every patch distinct) fits in ``keep_bytes`` together.
      keep_bytes: bytes of dictionaries kept for reuse by later segments (measured, not bounded, as they are built).
      buckets: the distinct k grouped by compiled program, ascending (each k alone without padded programs).
    """

    grid: np.ndarray
    segments: tuple[Segment, ...]
    prefetch: tuple[int, ...]
    keep_bytes: int
    buckets: tuple[tuple[int, ...], ...]


def plan(
    kind, shape, scales: Sequence[int], *, convention: str = "reference", keep_bytes: int | None = None, itemsize=4,
    padded: bool = False,
) -> SamplePlan:  # fmt: skip
    """The :class:`SamplePlan` of a sample of ``kind`` from training images of ``shape = (N, H, W, C)``.

    ``itemsize``: bytes per stored pixel (1 for 8-bit data). ``padded``: group the k in buckets that share one
    program (:func:`program_buckets`; a denoiser that cannot be padded keeps one per k). See
    :func:`elsjax.sampler.sample_machine` for the rest.

    Example:
      >>> p = plan("els", (10, 8, 8, 1), [3, 3, 5, 3, 3])
      >>> [tuple(s) for s in p.segments], p.prefetch
      ([(3, 0, 2), (5, 2, 1), (3, 3, 1)], (3, 5))
    """
    denoiser = denoisers.get(kind)
    grid, ks = machine_steps(scales, convention)
    if not denoiser.takes_k:
        ks = np.zeros_like(ks)  # no patch size: one segment
    segments, start = [], 0
    for k, run in itertools.groupby(ks):
        length = len(list(run))
        segments.append(Segment(int(k), start, length))
        start += length
    keep_bytes = default_keep_bytes() if keep_bytes is None else keep_bytes
    prefetch, budget = [], keep_bytes
    for k in dict.fromkeys(s.k for s in segments):
        budget -= denoiser.memory_bound(tuple(shape), k, itemsize)
        if budget < 0:
            break
        prefetch.append(k)
    ks = [s.k for s in segments for _ in range(s.length)]
    buckets = program_buckets(denoiser, shape, ks) if padded else tuple((k,) for k in sorted(set(ks)))
    return SamplePlan(grid, tuple(segments), tuple(prefetch), keep_bytes, buckets)


def program_buckets(kind, shape, ks: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The distinct k of steps ``ks`` in at most two buckets of consecutive k, each one padded program: the split
    of least padded work, ``sum over steps of positions(k) * (C k_bucket^2 + 2)`` (``k_bucket`` the bucket's
    largest k). Denoisers that cannot be padded, and schedules whose k have different numbers of tables (bbELS
    with k > H), keep one bucket per k.

    Example:
      >>> program_buckets("els", (10, 28, 28, 1), [15, 13, 11, 9, 9, 7, 5, 5, 3, 3])
      ((3, 5, 7, 9), (11, 13, 15))
    """
    denoiser = denoisers.get(kind)
    distinct = sorted(set(int(k) for k in ks))
    h, w, c = shape[1:]
    alone = tuple((k,) for k in distinct)
    if not issubclass(denoiser, denoisers.PatchDenoiser) or len({len(denoiser.regions(h, w, k)) for k in distinct}) > 1:
        return alone
    steps = np.bincount(np.asarray(ks, np.int64))

    def work(bucket):
        width = c * bucket[-1] ** 2 + 2
        return sum(int(steps[k]) * denoiser.positions(h, w, k) * width for k in bucket)

    splits = [(distinct[: i + 1], distinct[i + 1 :]) for i in range(len(distinct))]
    low, high = min(splits, key=lambda s: sum(work(b) for b in s if b))
    return tuple(tuple(b) for b in (low, high) if b)


class Builder:
    """Builds a plan's denoisers (ahead of time where the plan says), compiles each one's program on a background
    thread while the next is built, and frees what no later segment needs (or what exceeds the plan's memory).

    With padded programs (a plan whose buckets hold several k) a denoiser is padded to its bucket's shape when taken
    (the compact one is what is kept), and programs compile at their first use, one per bucket.
    """

    def __init__(self, denoiser, images, plan: SamplePlan, x, report, build_options, warm):
        self.denoiser, self.images, self.plan, self.x = denoiser, images, plan, x
        self.report, self.options, self.warm = report, build_options, warm
        self.built, self.compiling, self.shapes = {}, {}, {}
        self.padded = any(len(b) > 1 for b in plan.buckets)
        concrete = not isinstance(x, jax.core.Tracer)
        # Ahead of time only with concrete inputs: a traced x cannot be compiled for.
        self.ahead = concurrent.futures.ThreadPoolExecutor(1) if concrete and not self.padded else None
        self.total = len(plan.grid)
        if concrete:
            for k in plan.prefetch:
                self._build(k, 0)

    def _build(self, k: int, done: int) -> None:
        self.report(Phase.BUILD, done, self.total, k)
        self.built[k] = denoisers.build(self.denoiser, self.images, k or None, **self.options)
        self.report(Phase.BUILT, done, self.total, k)
        if self.ahead is not None:
            self.compiling[k] = self.ahead.submit(self.warm, self.built[k])

    def take(self, segment: Segment):
        """The denoiser of ``segment``, compiled; kept for a later segment while the memory allows."""
        k = segment.k
        if k not in self.built:
            self._build(k, segment.start)
        if k in self.compiling:
            self.compiling.pop(k).result()
        machine = self.built.pop(k)
        later = {s.k for s in self.plan.segments if s.start > segment.start}
        if k in later and nbytes(machine) + sum(map(nbytes, self.built.values())) <= self.plan.keep_bytes:
            self.built[k] = machine
        bucket = next(b for b in self.plan.buckets if k in b)
        if len(bucket) == 1:
            return machine
        if bucket not in self.shapes:
            self.shapes[bucket] = self._bucket_shape(bucket, machine)
        return machine.pad(self.shapes[bucket])

    def _bucket_shape(self, bucket, machine):
        """The padded shape of a bucket: the built machines' own shapes, and for the others the bound of their
        tables (every patch distinct), rounded to shared shapes when the build options ask for them."""
        own = [machine.padded_shape()] + [self.built[k].padded_shape() for k in bucket if k in self.built]
        shape = functools.reduce(lambda a, b: a.union(b), own)
        chunks = [table[2] for table in shape.tables]
        knobs = {key: v for key, v in self.options.items() if key in self.denoiser.knobs}
        bounds = [
            self.denoiser.shape_bound(np.shape(self.images), k, chunks, **knobs)
            for k in bucket if k not in self.built and k != machine.k
        ]  # fmt: skip
        shape = functools.reduce(lambda a, b: a.union(b), bounds, shape)
        bits = self.options.get("shape_bits")
        if bits is not None:
            tables = tuple((g, q, c, patches.bucket(n, bits)) for g, q, c, n in shape.tables)
            shape = shape._replace(tables=tables)
        return shape

    def release(self, k: int) -> None:
        if k not in self.built:
            # Some reference cycle (not traced) keeps the dictionary's host buffers alive until the cyclic garbage
            # collector runs; without this the next build overlapped the last dictionary (measured +1x at N=20000).
            gc.collect()

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.shutdown()


class Run:
    """One machine sample on the host side: the plan, the builds, the seeds' placement, the release of dictionaries.

    Iterating yields ``(segment, denoiser)`` in order; the caller runs the segment on the device and sets ``x``.
    :meth:`result` is the final ``x``, clipped to the training pixels' range and without the mesh's padding.
    ``padded``: padded programs (None: :func:`default_padded`; never with a mesh).
    """

    def __init__(self, kind, seeds, images, scales, *, convention, chunk_size, progress, keep_bytes, mesh, cache,
                 shape_bits, knobs, warm, padded=None):  # fmt: skip
        self.report = progress or (lambda *args: None)
        denoiser = denoisers.get(kind)
        self.mesh = sharding.check_mesh(mesh)
        if self.mesh is None:
            self.lo, self.hi = float(np.min(images)), float(np.max(images))
        else:
            self.lo, self.hi = sharding.global_range(images)
        itemsize = 1 if patches.encode_8bit(images) is not None else 4
        padded = (default_padded() if padded is None else padded) and self.mesh is None
        self.plan = plan(
            denoiser, np.shape(images), scales, convention=convention, keep_bytes=keep_bytes, itemsize=itemsize,
            padded=padded,
        )  # fmt: skip
        self.batch = np.shape(seeds)[0]
        self.x = jnp.asarray(seeds, jnp.float32)
        if self.mesh is not None:
            self.x = sharding.put_batch(self.x, self.mesh)  # split over "seeds"
        options = dict(chunk_size=chunk_size, mesh=self.mesh, cache=cache, shape_bits=shape_bits, **(knobs or {}))
        x0, grid = self.x, self.plan.grid
        self.builder = Builder(denoiser, images, self.plan, self.x, self.report, options, lambda m: warm(m, x0, grid))

    def __iter__(self):
        try:
            for segment in self.plan.segments:
                yield segment, self.builder.take(segment)
                # Dispatch is asynchronous: without waiting, the next dictionary would be built while this segment
                # still runs and holds its own, so every dictionary of the schedule stayed alive (60k: 16 GB).
                if not isinstance(self.x, jax.core.Tracer):
                    self.x = jax.block_until_ready(self.x)
                self.builder.release(segment.k)
                self.report(Phase.SAMPLE, segment.start + segment.length, self.builder.total, segment.k)
        finally:
            self.builder.close()

    def padded_grid(self, start: int, length: int) -> np.ndarray:
        """Rows ``start:start + length`` of the grid, padded with zeros to its full length: one compiled program per
        denoiser shape, whatever the segment's length."""
        grid = np.zeros_like(self.plan.grid)
        grid[:length] = self.plan.grid[start : start + length]
        return grid

    def result(self):
        x = jnp.clip(self.x, self.lo, self.hi)
        return x if self.mesh is None else x[: self.batch]


def nbytes(tree) -> int:
    """Bytes of a pytree's arrays."""
    return sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(tree))
