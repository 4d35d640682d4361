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
