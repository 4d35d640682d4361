"""The one streaming-softmax kernel behind every score machine (docs/maths.md §4.1, §5).

Each machine asks the same question of a dictionary: for every query q, the softmax-weighted mean of the
dictionary's values, with

    logit(psi | q) = -||q - a psi||^2 / (2 b^2) + log_weight(psi).

The ``||q||^2`` term is the same for every entry, so it cancels in the softmax; what remains is linear in the
*augmented* key ``[psi, ||psi||^2, log_weight]`` (see :mod:`elsjax.patches`; ``log_weight`` is the log of how often
a deduplicated patch occurs):

    logit = [a/b^2 * q, -a^2 / (2 b^2), 1] . [psi, ||psi||^2, log_weight] + const(q),

so one matrix product per chunk gives the logits. The dictionary is streamed chunk by chunk inside ``lax.scan``
with an online softmax (running max, numerator, denominator), never forming the [queries x dictionary] matrix.
Chunks are combined with sums (the intended maths), not the reference's per-chunk mean.

The partial result :class:`SoftmaxState` merges exactly with :func:`merge`, so a dictionary can be split across
devices and the pieces combined afterwards.

What the scan keeps is an :class:`Accumulator` (``init``/``update``/``merge``/``finalize`` over a pytree state, the
way optax writes transformations). Two implement it: :data:`MEAN` (:class:`PosteriorMean`, the online softmax, the
default) and :class:`TopEntries` (provenance, docs/maths.md §11: the softmax state plus the top-m entries by logit
and two running sums for the posterior entropy), which returns the posterior mean, the m heaviest entries with
their weights, and the entropy in one pass over the dictionary.

Example:
    >>> import jax.numpy as jnp
    >>> from elsjax import patches, posterior
    >>> keys = jnp.array([[0.0], [1.0]])
    >>> d = patches.make_dictionary(keys, keys)
    >>> q = posterior.augment_queries(jnp.array([[1.0]]), jnp.ones(1), jnp.ones(1))
    >>> mean = posterior.MEAN.finalize(posterior.stream(q, d))  # weights e^{-1/2} and e^0 on values 0 and 1
    >>> round(float(mean[0, 0]), 4)
    0.6225
    >>> mean, weight, index, entropy = posterior.TopEntries(1).finalize(
    ...     posterior.stream(q, d, accumulator=posterior.TopEntries(1)))
    >>> index.tolist(), round(float(weight[0, 0]), 4)
    ([[1]], 0.6225)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
from jax import lax

from elsjax.patches import PatchDictionary, decode

__all__ = [
    "SoftmaxState",
    "init_state",
    "update",
    "merge",
    "finalize",
    "rescale",
    "augment_queries",
    "Chunk",
    "Accumulator",
    "PosteriorMean",
    "MEAN",
    "TopEntries",
    "TopState",
    "stream",
    "QUERY_BLOCK",
    "default_query_block",
]

# Full float32 matrix products on every backend: TF32/bf16 passes change the softmax completely at small t.
PRECISION = lax.Precision.HIGHEST

# Queries per pass over the dictionary, per backend. On CPU a [1024 x chunk] logits block stays near the caches
# (one 32x32 image); a batch of 16 images in one pass was 1.5x slower per image. Accelerators take all at once.
QUERY_BLOCK = {"cpu": 1024}


class SoftmaxState(NamedTuple):
    """Partial online-softmax sums for ``Q`` queries.

    Attributes:
      max: ``[Q]`` running maximum logit (``-inf`` before any entry is seen).
      num: ``[Q, V]`` sum of ``exp(logit - max) * value``.
      den: ``[Q]`` sum of ``exp(logit - max)``.
    """

    max: jax.Array
    num: jax.Array
    den: jax.Array


def init_state(num_queries: int, num_values: int) -> SoftmaxState:
    """The empty state: no entry seen yet."""
    return SoftmaxState(
        max=jnp.full((num_queries,), -jnp.inf, jnp.float32),
        num=jnp.zeros((num_queries, num_values), jnp.float32),
        den=jnp.zeros((num_queries,), jnp.float32),
    )


def rescale(old_max, new_max):
    # exp(old - new), with an empty state (old = -inf) contributing exactly 0 even when new is also -inf.
    return jnp.where(jnp.isneginf(old_max), 0.0, jnp.exp(old_max - new_max))


def update(state: SoftmaxState, logits, weighted_sum: Callable[[jax.Array], jax.Array]) -> SoftmaxState:
    """Folds one chunk of logits into the state.

    Args:
      state: the current :class:`SoftmaxState`.
      logits: ``[Q, M_chunk]``.
      weighted_sum: maps unnormalised weights ``p [Q, M_chunk]`` to ``sum_m p[q, m] * value(q, m)``, ``[Q, V]``.
        For a shared dictionary this is ``p @ values``; the LS machine's values differ per query pixel.

    Returns:
      The new state.
    """
    new_max = jnp.maximum(state.max, jnp.max(logits, axis=-1))
    scale = rescale(state.max, new_max)
    p = jnp.exp(logits - new_max[:, None])
    return SoftmaxState(
        max=new_max,
        num=state.num * scale[:, None] + weighted_sum(p),
        den=state.den * scale + jnp.sum(p, axis=-1),
    )


def merge(a: SoftmaxState, b: SoftmaxState) -> SoftmaxState:
    """Combines the states of two disjoint parts of a dictionary (exact, associative, commutative)."""
    m = jnp.maximum(a.max, b.max)
    sa, sb = rescale(a.max, m), rescale(b.max, m)
    return SoftmaxState(max=m, num=a.num * sa[:, None] + b.num * sb[:, None], den=a.den * sa + b.den * sb)


def finalize(state: SoftmaxState):
    """The posterior mean ``num / den``, ``[Q, V]``."""
    return state.num / state.den[:, None]


def augment_queries(queries, a, b):
    """Maps raw queries ``[Q, D]`` to ``[a/b^2 q, -a^2/(2 b^2), 1]``, ``[Q, D + 2]``.

    ``a`` and ``b`` are per query (``[Q]``), so queries from seeds at different t share one matrix product.
    """
    a = jnp.asarray(a, jnp.float32)[:, None]
    inv_var = 1.0 / jnp.square(jnp.asarray(b, jnp.float32))[:, None]
    ones = jnp.ones_like(a)
    return jnp.concatenate([a * inv_var * queries, -0.5 * a * a * inv_var, ones], axis=-1)


def default_query_block() -> int | None:
    """Queries per block for the default backend (None: all queries in one block)."""
    return QUERY_BLOCK.get(jax.default_backend())


def rescale_rel(rel, den, old_max, new_max):
    """``sum exp(l - new) (l - new)`` from ``rel = sum exp(l - old) (l - old)`` and ``den = sum exp(l - old)``."""
    shift = jnp.where(jnp.isneginf(old_max), 0.0, old_max - new_max)
    return rescale(old_max, new_max) * (rel + shift * den)


# ------------------------------------------------------------------------------------------------------------------
# The accumulator protocol, and its two implementations.


class Chunk(NamedTuple):
    """One streamed chunk of a dictionary, as an :class:`Accumulator` sees it.

    Attributes:
      logits: ``[Q, M_chunk]``.
      weighted_sum: maps unnormalised weights ``p [Q, M_chunk]`` to ``sum_m p[q, m] * value(q, m)``, ``[Q, V]``.
        For a shared dictionary this is ``p @ values``; the LS machine's values differ per query pixel.
      log_counts: ``[M_chunk]`` (or ``[Q, M_chunk]``) log of each entry's number of occurrences; padding entries
        (``PAD_LOG_WEIGHT``) may carry anything finite: their weight is 0.
      offset: the dictionary index of the chunk's first entry (an int32 scalar, may be traced).
    """

    logits: jax.Array
    weighted_sum: Callable[[jax.Array], jax.Array]
    log_counts: jax.Array
    offset: jax.Array


class Accumulator(Protocol):
    """What :func:`stream` folds a dictionary into: ``init``/``update``/``merge``/``finalize`` over a pytree state.

    ``merge`` is exact, associative and commutative, so a dictionary split into parts (across devices, or streamed
    in pieces) gives the state of the whole. Implementations are frozen dataclasses: hashable, static under ``jit``.
    What an implementation does not read of a :class:`Chunk` is never computed in its compiled program.
    """

    def init(self, num_queries: int, num_values: int): ...

    def update(self, state, chunk: Chunk): ...

    def merge(self, a, b): ...

    def finalize(self, state): ...


@dataclasses.dataclass(frozen=True)
class PosteriorMean:
    """The online softmax: state a :class:`SoftmaxState`, result the posterior mean ``[Q, V]``."""

    def init(self, num_queries: int, num_values: int) -> SoftmaxState:
        return init_state(num_queries, num_values)

    def update(self, state: SoftmaxState, chunk: Chunk) -> SoftmaxState:
        return update(state, chunk.logits, chunk.weighted_sum)

    def merge(self, a: SoftmaxState, b: SoftmaxState) -> SoftmaxState:
        return merge(a, b)

    def finalize(self, state: SoftmaxState):
        return finalize(state)


MEAN = PosteriorMean()  # the default accumulator: every score, sample and calibration uses it


class TopState(NamedTuple):
    """:class:`SoftmaxState` plus what provenance needs, for ``Q`` queries and the ``m`` heaviest entries.

    Attributes:
      softmax: the :class:`SoftmaxState` (the posterior mean, computed exactly as by :data:`MEAN`).
      rel: ``[Q]`` sum of ``exp(logit - max) * (logit - max)`` (relative to the running max: no cancellation).
      logc: ``[Q]`` sum of ``exp(logit - max) * log count``, the count term of the entropy over occurrences.
      top_logit: ``[Q, m]`` the m largest logits seen, descending (``-inf`` for empty slots).
      top_index: ``[Q, m]`` int32 their entries' indices in the dictionary (``chunk * chunk_size + position``;
        -1 for empty slots).
    """

    softmax: SoftmaxState
    rel: jax.Array
    logc: jax.Array
    top_logit: jax.Array
    top_index: jax.Array


@dataclasses.dataclass(frozen=True)
class TopEntries:
    """Provenance (docs/maths.md §11): the posterior mean, the ``top`` heaviest entries and the entropy.

    ``finalize`` gives ``(mean [Q, V], top_weight [Q, m], top_index [Q, m], entropy [Q])``: each kept entry's
    posterior weight ``exp(logit - max) / den`` (0 for empty slots), and the entropy in nats over dictionary
    *occurrences*, ``-sum_i p_i log p_i + sum_i p_i log c_i`` for distinct entries i of weight p_i and count c_i (a
    deduplicated entry spreads its weight evenly over its c_i occurrences).

    Example:
      >>> import jax.numpy as jnp
      >>> from elsjax import patches
      >>> keys = jnp.array([[0.0], [1.0], [1.0]])          # 1.0 occurs twice: one entry of count 2
      >>> d = patches.make_dictionary(keys, keys)
      >>> q = augment_queries(jnp.array([[1.0]]), jnp.ones(1), jnp.ones(1))
      >>> acc = TopEntries(2)
      >>> mean, weight, index, entropy = acc.finalize(stream(q, d, accumulator=acc))
      >>> index.tolist(), [round(float(w), 4) for w in weight[0]]      # 2 / (2 + e^{-1/2}), e^{-1/2} / (...)
      ([[1, 0]], [0.7673, 0.2327])
      >>> round(float(entropy[0]), 4)    # over the 3 occurrences: weights 0.3837, 0.3837, 0.2327
      1.0744
    """

    top: int

    def init(self, num_queries: int, num_values: int) -> TopState:
        return TopState(
            softmax=init_state(num_queries, num_values),
            rel=jnp.zeros((num_queries,), jnp.float32),
            logc=jnp.zeros((num_queries,), jnp.float32),
            top_logit=jnp.full((num_queries, self.top), -jnp.inf, jnp.float32),
            top_index=jnp.full((num_queries, self.top), -1, jnp.int32),
        )

    def update(self, state: TopState, chunk: Chunk) -> TopState:
        old, logits = state.softmax, chunk.logits
        new_max = jnp.maximum(old.max, jnp.max(logits, axis=-1))  # the softmax part as update(), p computed once
        scale = rescale(old.max, new_max)
        z = logits - new_max[:, None]
        p = jnp.exp(z)
        soft = SoftmaxState(
            max=new_max,
            num=old.num * scale[:, None] + chunk.weighted_sum(p),
            den=old.den * scale + jnp.sum(p, axis=-1),
        )
        rel = rescale_rel(state.rel, old.den, old.max, new_max) + jnp.sum(p * z, axis=-1)
        logc = state.logc * scale + jnp.sum(p * chunk.log_counts, axis=-1)
        chunk_logit, chunk_index = _chunk_top(logits, self.top)
        top_logit, top_index = _top(
            jnp.concatenate([state.top_logit, chunk_logit], axis=-1),
            jnp.concatenate([state.top_index, chunk.offset + chunk_index], axis=-1),
            self.top,
        )
        return TopState(soft, rel, logc, top_logit, top_index)

    def merge(self, a: TopState, b: TopState) -> TopState:
        soft = merge(a.softmax, b.softmax)
        m = soft.max
        rel = rescale_rel(a.rel, a.softmax.den, a.softmax.max, m) + rescale_rel(b.rel, b.softmax.den, b.softmax.max, m)
        logc = a.logc * rescale(a.softmax.max, m) + b.logc * rescale(b.softmax.max, m)
        top_logit, top_index = _top(
            jnp.concatenate([a.top_logit, b.top_logit], -1), jnp.concatenate([a.top_index, b.top_index], -1), self.top
        )
        return TopState(soft, rel, logc, top_logit, top_index)

    def finalize(self, state: TopState):
        soft = state.softmax
        weight = jnp.where(
            jnp.isneginf(state.top_logit), 0.0, jnp.exp(state.top_logit - soft.max[:, None]) / soft.den[:, None]
        )
        entropy = jnp.log(soft.den) - state.rel / soft.den + state.logc / soft.den
        return finalize(soft), weight, state.top_index, jnp.maximum(entropy, 0.0)


def _top(logits, index, top: int):
    """The ``top`` largest of ``logits [Q, n]`` with their ``index [Q, n]`` (ties: the earlier column first)."""
    values, where = lax.top_k(logits, top)
    return values, jnp.take_along_axis(index, where, axis=-1)


# Entries per block of the two-level selection in _chunk_top (about sqrt(chunk / top) for chunks of 1024 and top 8).
TOP_BLOCK = 16


def _chunk_top(logits, top: int):
    """Candidates for the ``top`` largest of each row of ``logits [Q, n]``: ``(values [Q, c], columns [Q, c])``.

    Exact, and cheaper than sorting the chunk: the row is cut into blocks of ``g`` entries; each of the ``top``
    largest entries lies in a block whose maximum is among the ``top`` largest block maxima (a block holding one of
    them has a maximum at least as large), so the candidates are the entries of those ``top`` blocks, ``top * g``
    of them. Rows too short for that are returned whole.
    """
    q, n = logits.shape
    g = next((g for g in (TOP_BLOCK, 8, 4, 2) if n % g == 0 and n // g >= top and top * g < n), None)
    if g is None:
        return logits, jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), logits.shape)
    blocks = logits.reshape(q, n // g, g)
    _, best = lax.top_k(jnp.max(blocks, axis=-1), top)  # [Q, top] block numbers
    values = jnp.take_along_axis(blocks, best[:, :, None], axis=1).reshape(q, top * g)
    columns = (best[:, :, None] * g + jnp.arange(g, dtype=jnp.int32)).reshape(q, top * g)
    return values, columns.astype(jnp.int32)


# ------------------------------------------------------------------------------------------------------------------
# The one streaming kernel.


def stream(
    queries_aug,
    dictionary: PatchDictionary,
    state=None,
    *,
    accumulator: Accumulator = MEAN,
    query_block: int | None = -1,
    num_chunks=None,
):
    """Streams one (ungrouped) dictionary past augmented queries ``[Q, D + 2]`` into an accumulator's state.

    Args:
      queries_aug: from :func:`augment_queries`.
      dictionary: a :class:`PatchDictionary` with ``keys [n_chunks, chunk, D]`` (float32 or uint8 codes).
      state: a state of ``accumulator`` to continue from (default: empty).
      accumulator: what to keep (:data:`MEAN`, the posterior mean; :class:`TopEntries` for provenance).
      query_block: queries per pass over the dictionary (-1: the backend's default, :data:`QUERY_BLOCK`; None: all
        at once). Blocking changes results only by float32 rounding (the matmul may tile differently).
      num_chunks: stream only the first ``num_chunks`` chunks (an int32 scalar, may be traced; None: all). A
        dictionary padded to a shared shape (docs/performance.md, padded programs) streams only its own chunks.

    Returns:
      The accumulator's state after every chunk (``accumulator.finalize`` reads it).
    """
    num_queries = queries_aug.shape[0]
    if state is None:
        state = accumulator.init(num_queries, dictionary.values.shape[-1])
    block = default_query_block() if query_block == -1 else query_block
    if block is None or num_queries <= block:
        return _stream_block(queries_aug, dictionary, state, accumulator, num_chunks)
    # A batch of images streams the dictionary once per block: each block's [block x chunk] logits stay in cache,
    # which on CPU is faster than one pass with [Q x chunk] blocks (measured by experiments/bench.py).
    n_blocks = -(-num_queries // block)
    pad = n_blocks * block - num_queries
    blocked = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape((n_blocks, block) + a.shape[1:])
    out = lax.map(
        lambda qs: _stream_block(qs[0], dictionary, qs[1], accumulator, num_chunks),
        (blocked(queries_aug), jax.tree.map(blocked, state)),
    )
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:])[:num_queries], out)


def _stream_block(queries_aug, dictionary: PatchDictionary, state, accumulator: Accumulator, num_chunks=None):
    chunk_size = dictionary.keys.shape[-2]

    def fold(carry, i, keys, aux, values):
        keys_aug = jnp.concatenate([decode(keys), aux], axis=-1)  # [chunk, D + 2]: decoded one chunk at a time
        logits = jnp.matmul(queries_aug, keys_aug.T, precision=PRECISION)
        weighted_sum = lambda p: jnp.matmul(p, decode(values), precision=PRECISION)
        return accumulator.update(carry, Chunk(logits, weighted_sum, aux[:, 1], i * chunk_size))

    tables = (dictionary.keys, dictionary.aux, dictionary.values)
    if num_chunks is None:
        n_chunks = dictionary.keys.shape[0]
        items = (jnp.arange(n_chunks, dtype=jnp.int32), tables)
        state, _ = lax.scan(lambda carry, item: (fold(carry, item[0], *item[1]), None), state, items)
        return state
    # A traced trip count lowers to a while loop: the chunks past num_chunks (shape padding) cost nothing.
    take = lambda i: [lax.dynamic_index_in_dim(a, i, keepdims=False) for a in tables]
    return lax.fori_loop(0, num_chunks, lambda i, carry: fold(carry, i, *take(i)), state)
