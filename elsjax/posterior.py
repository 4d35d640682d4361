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

Provenance (docs/maths.md §11) is a separate, opt-in path through the same scan: :func:`stream_provenance` carries a
:class:`ProvenanceState` (the softmax state plus the top-m entries by logit and two more running sums for the
posterior entropy) and so returns the posterior mean, the m heaviest entries with their weights, and the entropy
in one pass over the dictionary. The default :func:`stream` is untouched by it.

Example:
    >>> import jax.numpy as jnp
    >>> from elsjax import patches, posterior
    >>> keys = jnp.array([[0.0], [1.0]])
    >>> d = patches.make_dictionary(keys, keys)
    >>> q = posterior.augment_queries(jnp.array([[1.0]]), jnp.ones(1), jnp.ones(1))
    >>> mean = posterior.finalize(posterior.stream(q, d))  # weights e^{-1/2} and e^0 on values 0 and 1
    >>> round(float(mean[0, 0]), 4)
    0.6225
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

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
    "augment_queries",
    "stream",
    "QUERY_BLOCK",
    "default_query_block",
    "ProvenanceState",
    "init_provenance",
    "update_provenance",
    "merge_provenance",
    "finalize_provenance",
    "stream_provenance",
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


def _rescale(old_max, new_max):
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
    scale = _rescale(state.max, new_max)
    p = jnp.exp(logits - new_max[:, None])
    return SoftmaxState(
        max=new_max,
        num=state.num * scale[:, None] + weighted_sum(p),
        den=state.den * scale + jnp.sum(p, axis=-1),
    )


def merge(a: SoftmaxState, b: SoftmaxState) -> SoftmaxState:
    """Combines the states of two disjoint parts of a dictionary (exact, associative, commutative)."""
    m = jnp.maximum(a.max, b.max)
    sa, sb = _rescale(a.max, m), _rescale(b.max, m)
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


def stream(
    queries_aug, dictionary: PatchDictionary, state: SoftmaxState | None = None, *, query_block: int | None = -1
) -> SoftmaxState:
    """Streams one (ungrouped) dictionary past augmented queries ``[Q, D + 2]``.

    Args:
      queries_aug: from :func:`augment_queries`.
      dictionary: a :class:`PatchDictionary` with ``keys [n_chunks, chunk, D]`` (float32 or uint8 codes).
      state: a state to continue from (default: empty).
      query_block: queries per pass over the dictionary (-1: the backend's default, :data:`QUERY_BLOCK`; None: all
        at once). Blocking changes results only by float32 rounding (the matmul may tile differently).

    Returns:
      The :class:`SoftmaxState` after every chunk.
    """
    num_queries = queries_aug.shape[0]
    if state is None:
        state = init_state(num_queries, dictionary.values.shape[-1])
    block = default_query_block() if query_block == -1 else query_block
    if block is None or num_queries <= block:
        return _stream_block(queries_aug, dictionary, state)
    # A batch of images streams the dictionary once per block: each block's [block x chunk] logits stay in cache,
    # which on CPU is faster than one pass with [Q x chunk] blocks (measured by experiments/bench.py).
    n_blocks = -(-num_queries // block)
    pad = n_blocks * block - num_queries
    blocked = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape((n_blocks, block) + a.shape[1:])
    out = lax.map(
        lambda qs: _stream_block(qs[0], dictionary, qs[1]), (blocked(queries_aug), tuple(map(blocked, state)))
    )
    return SoftmaxState(*(a.reshape((-1,) + a.shape[2:])[:num_queries] for a in out))


def _stream_block(queries_aug, dictionary: PatchDictionary, state: SoftmaxState) -> SoftmaxState:
    def body(carry, chunk):
        keys, aux, values = chunk
        keys_aug = jnp.concatenate([decode(keys), aux], axis=-1)  # [chunk, D + 2]: decoded one chunk at a time
        logits = jnp.matmul(queries_aug, keys_aug.T, precision=PRECISION)
        return update(carry, logits, lambda p: jnp.matmul(p, decode(values), precision=PRECISION)), None

    state, _ = lax.scan(body, SoftmaxState(*state), (dictionary.keys, dictionary.aux, dictionary.values))
    return state


# ------------------------------------------------------------------------------------------------------------------
# Provenance: the top-m entries and the entropy, in the same pass (docs/maths.md §11). Opt-in; stream() is unchanged.


class ProvenanceState(NamedTuple):
    """:class:`SoftmaxState` plus what provenance needs, for ``Q`` queries and the ``m`` heaviest entries.

    Attributes:
      softmax: the :class:`SoftmaxState` (the posterior mean, computed exactly as by :func:`stream`).
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


def init_provenance(num_queries: int, num_values: int, top: int) -> ProvenanceState:
    """The empty provenance state: no entry seen yet."""
    return ProvenanceState(
        softmax=init_state(num_queries, num_values),
        rel=jnp.zeros((num_queries,), jnp.float32),
        logc=jnp.zeros((num_queries,), jnp.float32),
        top_logit=jnp.full((num_queries, top), -jnp.inf, jnp.float32),
        top_index=jnp.full((num_queries, top), -1, jnp.int32),
    )


def _top(logits, index, top: int):
    """The ``top`` largest of ``logits [Q, n]`` with their ``index [Q, n]`` (ties: the earlier column first)."""
    values, where = lax.top_k(logits, top)
    return values, jnp.take_along_axis(index, where, axis=-1)


def _shifted(rel, den, old_max, new_max):
    # sum exp(l - new) (l - new) from sum exp(l - old) (l - old) = rel and sum exp(l - old) = den.
    scale = _rescale(old_max, new_max)
    shift = jnp.where(jnp.isneginf(old_max), 0.0, old_max - new_max)
    return scale * (rel + shift * den)


def update_provenance(
    state: ProvenanceState, logits, log_counts, weighted_sum: Callable[[jax.Array], jax.Array], offset
) -> ProvenanceState:
    """Folds one chunk into a :class:`ProvenanceState` (the softmax part exactly as :func:`update`).

    Args:
      state: the current state.
      logits: ``[Q, M_chunk]``.
      log_counts: ``[M_chunk]`` (or ``[Q, M_chunk]``) log of each entry's number of occurrences; padding entries
        (``PAD_LOG_WEIGHT``) may carry anything finite, they get weight 0.
      weighted_sum: as for :func:`update`.
      offset: the dictionary index of the chunk's first entry (an int32 scalar, may be traced).

    Returns:
      The new state.
    """
    old = state.softmax
    new_max = jnp.maximum(old.max, jnp.max(logits, axis=-1))  # the softmax part: as update(), with p computed once
    scale = _rescale(old.max, new_max)
    z = logits - new_max[:, None]
    p = jnp.exp(z)
    soft = SoftmaxState(
        max=new_max, num=old.num * scale[:, None] + weighted_sum(p), den=old.den * scale + jnp.sum(p, axis=-1)
    )
    rel = _shifted(state.rel, old.den, old.max, new_max) + jnp.sum(p * z, axis=-1)
    logc = state.logc * scale + jnp.sum(p * log_counts, axis=-1)
    top = state.top_logit.shape[-1]
    chunk_logit, chunk_index = _chunk_top(logits, top)
    both_logits = jnp.concatenate([state.top_logit, chunk_logit], axis=-1)
    both_index = jnp.concatenate([state.top_index, offset + chunk_index], axis=-1)
    top_logit, top_index = _top(both_logits, both_index, top)
    return ProvenanceState(soft, rel, logc, top_logit, top_index)


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


def merge_provenance(a: ProvenanceState, b: ProvenanceState) -> ProvenanceState:
    """Combines the provenance states of two disjoint parts of a dictionary (indices already global)."""
    soft = merge(a.softmax, b.softmax)
    m = soft.max
    rel = _shifted(a.rel, a.softmax.den, a.softmax.max, m) + _shifted(b.rel, b.softmax.den, b.softmax.max, m)
    logc = a.logc * _rescale(a.softmax.max, m) + b.logc * _rescale(b.softmax.max, m)
    top = a.top_logit.shape[-1]
    top_logit, top_index = _top(
        jnp.concatenate([a.top_logit, b.top_logit], -1), jnp.concatenate([a.top_index, b.top_index], -1), top
    )
    return ProvenanceState(soft, rel, logc, top_logit, top_index)


def finalize_provenance(state: ProvenanceState):
    """``(mean [Q, V], top_weight [Q, m], top_index [Q, m], entropy [Q])`` (docs/maths.md §11).

    ``top_weight`` is each entry's posterior weight ``exp(logit - max) / den`` (0 for empty slots). ``entropy`` is
    in nats over dictionary *occurrences*: ``-sum_i p_i log p_i + sum_i p_i log c_i`` for distinct entries i of
    weight p_i and count c_i (a deduplicated entry spreads its weight evenly over its c_i occurrences).
    """
    soft = state.softmax
    weight = jnp.where(
        jnp.isneginf(state.top_logit), 0.0, jnp.exp(state.top_logit - soft.max[:, None]) / soft.den[:, None]
    )
    entropy = jnp.log(soft.den) - state.rel / soft.den + state.logc / soft.den
    return finalize(soft), weight, state.top_index, jnp.maximum(entropy, 0.0)


def stream_provenance(
    queries_aug, dictionary: PatchDictionary, top: int, *, query_block: int | None = -1
) -> ProvenanceState:
    """:func:`stream` that also keeps the ``top`` heaviest entries and the entropy sums (one pass).

    Args:
      queries_aug: from :func:`augment_queries`, ``[Q, D + 2]``.
      dictionary: an (ungrouped) :class:`PatchDictionary`.
      top: how many entries to keep per query (static; at most the dictionary's size, padding included).
      query_block: as for :func:`stream`.

    Returns:
      The :class:`ProvenanceState` after every chunk; :func:`finalize_provenance` reads it.

    Example:
      >>> import jax.numpy as jnp
      >>> from elsjax import patches
      >>> keys = jnp.array([[0.0], [1.0], [1.0]])          # 1.0 occurs twice: one entry of count 2
      >>> d = patches.make_dictionary(keys, keys)
      >>> q = augment_queries(jnp.array([[1.0]]), jnp.ones(1), jnp.ones(1))
      >>> mean, weight, index, entropy = finalize_provenance(stream_provenance(q, d, 2))
      >>> index.tolist(), [round(float(w), 4) for w in weight[0]]      # 2 / (2 + e^{-1/2}), e^{-1/2} / (...)
      ([[1, 0]], [0.7673, 0.2327])
      >>> round(float(entropy[0]), 4)    # over the 3 occurrences: weights 0.3837, 0.3837, 0.2327
      1.0744
    """
    num_queries = queries_aug.shape[0]
    state = init_provenance(num_queries, dictionary.values.shape[-1], top)
    block = default_query_block() if query_block == -1 else query_block
    if block is None or num_queries <= block:
        return _stream_provenance_block(queries_aug, dictionary, state)
    n_blocks = -(-num_queries // block)
    pad = n_blocks * block - num_queries
    blocked = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape((n_blocks, block) + a.shape[1:])
    out = lax.map(
        lambda qs: _stream_provenance_block(qs[0], dictionary, qs[1]),
        (blocked(queries_aug), jax.tree.map(blocked, state)),
    )
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:])[:num_queries], out)


def _stream_provenance_block(queries_aug, dictionary: PatchDictionary, state: ProvenanceState) -> ProvenanceState:
    chunk = dictionary.keys.shape[-2]

    def body(carry, item):
        i, (keys, aux, values) = item
        keys_aug = jnp.concatenate([decode(keys), aux], axis=-1)
        logits = jnp.matmul(queries_aug, keys_aug.T, precision=PRECISION)
        weighted = lambda p: jnp.matmul(p, decode(values), precision=PRECISION)
        return update_provenance(carry, logits, aux[:, 1], weighted, i * chunk), None

    n_chunks = dictionary.keys.shape[0]
    items = (jnp.arange(n_chunks, dtype=jnp.int32), (dictionary.keys, dictionary.aux, dictionary.values))
    state, _ = lax.scan(body, state, items)
    return state
