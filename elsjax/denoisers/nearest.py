"""The nearest training image (docs/maths.md §12.3): the training image closest to ``x / a_t``, as a posterior mean.

``argmin_n ||x / a - phi_n||^2 = argmax_n -||x - a phi_n||^2 / (2 b^2)``: the entry IS's posterior puts its largest
weight on, so nearest is IS at zero temperature and IS tends to it as t -> 0. It streams IS's dictionary of whole
training images (:func:`elsjax.patches.ideal_dictionary`) through the same kernel, keeping the running best logit
and its entry (ties: the earlier entry) instead of a softmax, then reads that entry's image. Its provenance is the
hard posterior: weight 1 on the nearest image, 0 on the next ones (listed in order of their logits), entropy
``log c`` for an image that occurs ``c`` times.

On a mesh IS's dictionary is split over ``"entries"`` as IS's is; each device reads its own best entry's image,
and :func:`elsjax.shardedkernel.argmax_across` keeps the image of the device with the largest logit (ties: the
first device, whose entries come first), so the result is the one-device result bit for bit unless two logits
are within float32 rounding of each other.

Example:
    >>> import numpy as np
    >>> from elsjax import denoisers
    >>> train = np.random.default_rng(0).uniform(-1, 1, (5, 4, 4, 1)).astype(np.float32)
    >>> d = denoisers.build("nearest", train)
    >>> bool((np.asarray(d.denoise(0.9 * train[3:4], 0.5)) == train[3]).all())
    True
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from elsjax import noise, posterior, shardedkernel
from elsjax.denoisers._base import register
from elsjax.denoisers.ideal import Ideal
from elsjax.patches import decode

__all__ = ["Nearest", "ArgMax", "ArgMaxState"]


class ArgMaxState(NamedTuple):
    """The best logit ``[Q]`` seen so far and its entry ``[Q]`` (int32, -1 before any)."""

    max: jax.Array
    index: jax.Array


@dataclasses.dataclass(frozen=True)
class ArgMax:
    """An :class:`~elsjax.posterior.Accumulator` that keeps each query's largest logit and its dictionary index
    (ties: the earlier index); ``finalize`` returns the index ``[Q]``."""

    def init(self, num_queries: int, num_values: int) -> ArgMaxState:
        return ArgMaxState(jnp.full((num_queries,), -jnp.inf, jnp.float32), jnp.full((num_queries,), -1, jnp.int32))

    def update(self, state: ArgMaxState, chunk: posterior.Chunk) -> ArgMaxState:
        where = jnp.argmax(chunk.logits, axis=-1)  # the first of equal maxima
        best = jnp.take_along_axis(chunk.logits, where[:, None], axis=-1)[:, 0]
        better = best > state.max
        index = (chunk.offset + where).astype(jnp.int32)
        return ArgMaxState(jnp.where(better, best, state.max), jnp.where(better, index, state.index))

    def merge(self, a: ArgMaxState, b: ArgMaxState) -> ArgMaxState:
        better = (b.max > a.max) | ((b.max == a.max) & (b.index < a.index) & (b.index >= 0))
        return ArgMaxState(jnp.where(better, b.max, a.max), jnp.where(better, b.index, a.index))

    def finalize(self, state: ArgMaxState):
        return state.index


ARGMAX = ArgMax()


@register("nearest")
@dataclasses.dataclass(frozen=True)
class Nearest(Ideal):
    """The nearest training image to ``x / a_t`` (IS's dictionary, IS's logits, the argmax instead of the softmax).

    On a mesh ``combine`` is :func:`elsjax.shardedkernel.argmax_across`, applied to each device's best logit and
    the image it read."""

    # The devices' best entries merge by their logits, not as softmax states.
    merge_across = staticmethod(shardedkernel.argmax_across)

    def accumulate(self, x, t, accumulator, combine=None):
        a, b = noise.signal_noise_std(t)
        n, h, w, _ = x.shape
        table = self.tables[0]
        queries = posterior.augment_queries(x.reshape(n, -1), a, b)
        top = isinstance(accumulator, posterior.TopEntries)
        state = posterior.stream(queries, table, accumulator=accumulator if top else ARGMAX)
        values = table.values.reshape(-1, table.values.shape[-1])
        if not top:
            mean = decode(values[ARGMAX.finalize(state)])
            return (mean if combine is None else combine(state.max, mean)).reshape(x.shape)
        _, _, entry, _ = accumulator.finalize(state)
        index = entry[:, 0]
        mean = decode(values[index]).reshape(x.shape)
        weight = jnp.zeros(entry.shape, jnp.float32).at[:, 0].set(1.0)
        log_count = table.aux.reshape(-1, 2)[index, 1]  # a duplicated image spreads its weight over its copies
        spread = lambda v: jnp.broadcast_to(v[:, None, None], (n, h, w) + v.shape[1:])
        return mean, spread(weight), spread(entry), spread(log_count)
