"""Patch provenance (docs/maths.md §11): which training patches each pixel's posterior draws on, and how sharply.

Every machine's clean estimate is, per pixel, a softmax-weighted mean over a dictionary of training patches (or
images). :func:`provenance` returns, per pixel, the ``top`` heaviest dictionary entries mapped back to where they
come from (training image, centre row and column in it, class) with their posterior weights and occurrence counts,
and the posterior entropy; :func:`sample_provenance` records the same along a sampling trajectory, with the clean
estimate of every recorded step. Both run the denoisers' provenance path (``Denoiser.posterior``, the
:class:`~elsjax.posterior.TopEntries` accumulator), which computes the mean, the top entries and the entropy in one
pass over the dictionary. Any registered denoiser that streams a dictionary has provenance.

Conventions (docs/maths.md §11):

* ``weight`` is the posterior weight of a *distinct* dictionary entry; a deduplicated entry stands for ``count``
  identical patches, and ``image`` / ``position`` give one of them, the first in (image, row, column) order.
* ``position`` is where the pixel's value comes from: the centre of the patch in its training image (IS and LS:
  the query pixel itself, since their values are taken at the same position).
* ``entropy`` is in nats over dictionary occurrences: ``-sum_i p_i log p_i + sum_i p_i log c_i``.
* Slots past a pixel's number of distinct entries are empty: ``image = -1``, ``weight = 0``, ``count = 0``.

:func:`explain` is also the package's ``elsjax.explain``.

Example:
    >>> import numpy as np, elsjax
    >>> train = np.random.default_rng(0).uniform(-1, 1, (5, 8, 8, 1)).astype(np.float32)
    >>> p = elsjax.explain("els", train[:1], 0.01, train=train, k=3, top=2)   # a training image, small t
    >>> int(p.image[0, 4, 4, 0]), p.position[0, 4, 4, 0].tolist(), round(float(p.weight[0, 4, 4, 0]), 3)
    (0, [4, 4], 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from elsjax import checks, denoisers, sampler

__all__ = [
    "Provenance", "StepProvenance", "explain", "sample_provenance", "locate", "mosaic",
    "distinct_sources", "occurrences",
]  # fmt: skip


class Provenance(NamedTuple):
    """Per image and pixel, the heaviest dictionary entries of the posterior and where they come from.

    Attributes:
      image: ``[B, H, W, top]`` int64, the training image of each entry's representative occurrence (an index
        into ``train``; -1 for an empty slot).
      position: ``[B, H, W, top, 2]`` int64, its (row, column) in that image: the centre of the patch.
      weight: ``[B, H, W, top]`` float32, the posterior weight of each entry, descending (sum <= 1).
      count: ``[B, H, W, top]`` int64, how many times the entry's patch occurs in the dictionary.
      label: ``[B, H, W, top]`` int64, the class of ``image`` (-1 without labels or for an empty slot).
      entropy: ``[B, H, W]`` float32, the posterior entropy in nats over dictionary occurrences.
      mean: ``[B, H, W, C]`` float32, the posterior mean (the machine's clean estimate).
    """

    image: np.ndarray
    position: np.ndarray
    weight: np.ndarray
    count: np.ndarray
    label: np.ndarray
    entropy: np.ndarray
    mean: np.ndarray


class StepProvenance(NamedTuple):
    """One recorded step of :func:`sample_provenance`: its index, time, patch size, input ``x`` and provenance."""

    step: int
    t: float
    k: int
    x: np.ndarray
    provenance: Provenance


def _check_top(top, denoiser, shapes, k) -> int:
    top = checks.integer("top", top, 1)
    fewest = min(denoiser.fewest_occurrences(s, k) for s in shapes)
    if top > fewest:
        raise ValueError(
            f"top: asked for {top} entries but some pixel's posterior has only {fewest} dictionary occurrences "
            f"({denoiser.name!r} machine, {min(s[0] for s in shapes)} training images{'' if len(shapes) == 1 else ' in a class'})"
        )
    return top


def locate(
    kind, post: denoisers.Posterior, tables, *, k: int, members=None, labels=None, num_images=None
) -> Provenance:
    """Maps a :class:`~elsjax.denoisers.Posterior`'s entries to training images, positions, counts and classes.

    Args:
      kind: the denoiser (a registered name or class).
      post: from ``Denoiser.posterior`` (host or device arrays).
      tables: the denoiser's :meth:`~elsjax.denoisers.Denoiser.occurrence_tables` of the images it was built on.
      k: the denoiser's patch size (0 for IS).
      members: ``[N_class]`` the global training index of each image the denoiser was built on (None: identity).
      labels: ``[N]`` global training labels, or None.
      num_images: how many images the denoiser was built on (default: ``len(members)``).

    Returns:
      The :class:`Provenance`.
    """
    entry = np.asarray(post.entry, np.int64)
    weight = np.asarray(post.weight, np.float32)
    n = num_images if num_images is not None else (len(members) if members is not None else np.iinfo(np.int64).max)
    where = denoisers.get(kind).locate(entry, tables, k, n)
    valid, image = where.valid, where.image
    if members is not None:
        image = np.where(valid, np.asarray(members)[np.where(valid, image, 0)], -1)
    label = np.full(entry.shape, -1, np.int64)
    if labels is not None:
        label = np.where(valid, np.asarray(labels)[np.where(valid, image, 0)], -1)
    return Provenance(
        image=image.astype(np.int64),
        position=np.stack([where.row, where.col], axis=-1).astype(np.int64),
        weight=np.where(valid, weight, 0.0).astype(np.float32),
        count=where.count,
        label=label.astype(np.int64),
        entropy=np.asarray(post.entropy, np.float32),
        mean=np.asarray(post.mean, np.float32),
    )


def check_steps(steps: Sequence[int] | None, num_scales: int) -> list[int] | None:
    """Recorded step indices, sorted and distinct, each below the number of steps (``num_scales - 1``)."""
    if steps is None:
        return None
    steps = sorted({checks.integer("steps", s) for s in steps})
    if steps and steps[-1] >= num_scales - 1:
        raise ValueError(f"steps: step indices run from 0 to {num_scales - 2} ({num_scales} scales), got {steps[-1]}")
    return steps


def _concat(parts, batch: int) -> Provenance:
    """Class groups' provenances put back in the caller's batch order."""
    out = []
    for field in Provenance._fields:
        first = getattr(parts[0][1], field)
        arr = np.zeros((batch,) + first.shape[1:], first.dtype)
        for index, prov in parts:
            arr[index] = getattr(prov, field)
        out.append(arr)
    return Provenance(*out)


def explain(kind, x, t, *, train, k: int | None = None, labels=None, y=None, top: int = 8) -> Provenance:
    """The posterior's provenance at a batch of noisy images: per pixel, the ``top`` heaviest training patches.

    Args:
      kind: a registered denoiser that streams a dictionary (``"ideal"``, ``"ls"``, ``"els"``, ``"bbels"``, ...).
      x: noisy images ``[B, H, W, C]``.
      t: a time in [:data:`elsjax.noise.MIN_TIME`, 1], a float or one per image ``[B]``.
      train: training images ``[N, H, W, C]`` in [-1, 1].
      k: odd patch size >= 3 (not used by ``"ideal"``).
      labels: training labels ``[N]`` (needed for ``y``; also fills ``Provenance.label``).
      y: class per image ``[B]`` (class-conditional machines), or None.
      top: entries kept per pixel, between 1 and the fewest dictionary occurrences of a pixel
        (:meth:`~elsjax.denoisers.Denoiser.fewest_occurrences`).

    Returns:
      A :class:`Provenance` of NumPy arrays; ``image`` indexes ``train`` (also for class-conditional machines).

    Raises:
      ValueError: a bad argument, named (as :func:`elsjax.score`, and ``top``).

    Example:
      >>> import numpy as np
      >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 6, 6, 1)).astype(np.float32)
      >>> p = explain("ideal", train[2:3], 1e-3, train=train, top=2)
      >>> p.image[0, 0, 0].tolist(), p.weight[0, 0, 0].round(3).tolist(), round(float(p.entropy[0, 0, 0]), 3)
      ([2, 3], [1.0, 0.0], 0.0)
    """
    denoiser = denoisers.get(kind)
    train = checks.train_images(train)
    x = checks.images("x", x, train.shape[1:])
    t = checks.times(t, x.shape[0])
    k = denoiser.check_k("k", k, train.shape[1:])
    groups = checks.class_members(x.shape[0], train, labels, y)
    top = _check_top(top, denoiser, [(len(members),) + train.shape[1:] for _, members in groups], k)
    parts = []
    for index, members in groups:
        images = train[members]
        machine = denoisers.build(denoiser, images, k)
        post = machine.posterior(x[index], t[index], top=top)
        tables = denoiser.occurrence_tables(images, k)
        parts.append((index, locate(denoiser, post, tables, k=k, members=members, labels=labels)))
    return _concat(parts, x.shape[0])


def sample_provenance(
    kind: str,
    seeds,
    *,
    train,
    scales: Sequence[int],
    labels=None,
    y=None,
    top: int = 8,
    steps: Sequence[int] | None = None,
    convention: str = "reference",
    chunk_size: int | None = None,
    progress=None,
):
    """Samples as :func:`elsjax.sample` does and records the provenance of the recorded steps on the way.

    Args:
      kind, seeds, train, scales, labels, y, convention, chunk_size, progress: as for :func:`elsjax.sample`.
      top: entries kept per pixel (see :func:`provenance`).
      steps: indices of the steps to record on the machine grid (0 = the first, t = (n - 1) / n); default all.

    Returns:
      ``(samples [B, H, W, C] np.ndarray, [StepProvenance, ...])`` in step order. The samples equal
      ``elsjax.sample``'s to float32 rounding (the recorded steps' means come from the provenance path).

    Example:
      >>> import numpy as np
      >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 6, 6, 1)).astype(np.float32)
      >>> seeds = np.random.default_rng(1).normal(size=(1, 6, 6, 1)).astype(np.float32)
      >>> out, rec = sample_provenance("bbels", seeds, train=train, scales=[3, 3, 3], top=2)
      >>> [(r.step, round(r.t, 3), r.k) for r in rec], rec[-1].provenance.image.shape
      ([(0, 0.667, 3), (1, 0.333, 3)], (1, 6, 6, 2))
    """
    denoiser = denoisers.get(kind)
    train, seeds, scales = checks.sampling_args(denoiser, seeds, train, scales, convention, sampler.CONVENTIONS)
    steps = check_steps(steps, len(scales))
    groups = checks.class_members(seeds.shape[0], train, labels, y)
    ks = sorted(set(scales)) if denoiser.takes_k else [None]
    shapes = [(len(m),) + train.shape[1:] for _, m in groups]
    top = min(_check_top(top, denoiser, shapes, k) for k in ks)
    samples = np.zeros(seeds.shape, np.float32)
    per_step: dict[int, list] = {}
    for index, members in groups:
        images = train[members]
        out, records = sampler.sample_posteriors(
            denoiser, seeds[index], images, scales, top=top, steps=steps, convention=convention,
            chunk_size=chunk_size, progress=progress,
        )  # fmt: skip
        samples[index] = np.asarray(out)
        tables = {}
        for rec in records:
            if rec.k not in tables:
                tables[rec.k] = denoiser.occurrence_tables(images, rec.k or None)
            prov = locate(denoiser, rec.posterior, tables[rec.k], k=rec.k, members=members, labels=labels)
            per_step.setdefault(rec.step, []).append((rec, index, prov))
    result = []
    for step in sorted(per_step):
        parts = per_step[step]
        x = np.zeros(seeds.shape, np.float32)
        for rec, index, _ in parts:
            x[index] = rec.x
        rec = parts[0][0]
        prov = _concat([(index, p) for _, index, p in parts], seeds.shape[0])
        result.append(StepProvenance(step, rec.t, rec.k, x, prov))
    return samples, result


def mosaic(prov: Provenance, train):
    """Each pixel replaced by the centre value of its heaviest entry: ``train[image, row, col]``, ``[B, H, W, C]``
    (0 where a pixel has no entry). ``train`` is the array ``Provenance.image`` indexes.

    Example:
      >>> import numpy as np
      >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 6, 6, 1)).astype(np.float32)
      >>> p = explain("bbels", train[1:2], 1e-3, train=train, k=3, top=1)
      >>> bool(np.allclose(mosaic(p, train), train[1:2]))
      True
    """
    train = np.asarray(train, np.float32)
    image, row, col = prov.image[..., 0], prov.position[..., 0, 0], prov.position[..., 0, 1]
    valid = image >= 0
    out = train[np.where(valid, image, 0), np.where(valid, row, 0), np.where(valid, col, 0)]
    return np.where(valid[..., None], out, 0.0).astype(np.float32)


def distinct_sources(prov: Provenance) -> np.ndarray:
    """``[B]``: how many distinct training images supply some pixel's heaviest entry, per image."""
    return np.array([np.unique(img[img >= 0]).size for img in prov.image[..., 0]], np.int64)


def occurrences(kind: str, train, *, k: int | None = None, pixel, image: int, position) -> np.ndarray:
    """Every place where the patch reported for ``pixel`` at ``(image, position)`` occurs in that pixel's dictionary.

    A deduplicated entry stands for ``count`` identical training patches; :func:`explain` reports the first. This
    lists them all, by direct comparison of the patches (bit for bit, as the deduplication compares them).

    Args:
      kind: the denoiser (a registered name or class).
      train: the training images the machine was built on (for a class-conditional machine: the class's images,
        and ``image`` an index into them).
      k: the patch size (not used by ``"ideal"``).
      pixel: ``(row, col)`` of the query pixel (which dictionary: bbELS border pixels have their own).
      image: the reported training image.
      position: the reported ``(row, col)`` in it.

    Returns:
      ``[count, 3]`` int64 ``(image, row, col)`` in (image, row, column) order; the first row is the reported one.

    Example:
      >>> import numpy as np
      >>> train = -np.ones((3, 6, 6, 1), np.float32)       # blank images: one patch, everywhere
      >>> occurrences("els", train, k=3, pixel=(2, 2), image=0, position=(1, 1)).shape   # 3 images x 4 x 4 centres
      (48, 3)
    """
    denoiser = denoisers.get(kind)
    train = checks.train_images(train)
    k = denoiser.check_k("k", k, train.shape[1:])
    return denoiser.occurrences(train, k, pixel, image, position)
