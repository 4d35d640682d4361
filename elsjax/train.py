"""Training the baselines (docs/maths.md §9.4): eps-MSE, AdamW with an exponentially decaying learning rate, and
optionally an exponential moving average (EMA) of the weights (not the paper's procedure; off by default).

The core is a few pure functions. :func:`train_step` is one jit-compiled optimiser step whose batch and noise are
*functions of the step number*: the epoch's permutation comes from ``fold_in(data_key, epoch)`` and the step's
times and noise from ``fold_in(noise_key, step)``. A run resumed at step ``s`` from a checkpoint therefore
replays exactly the batches and noise an uninterrupted run would have seen, and ends with the same weights.

Per step (as the reference): ``t = U{0..999} / 1000`` per image, ``eps ~ N(0, I)``, ``x_t = a_t x_0 + b_t eps``,
``loss = mean((eps_fn(params, x_t, t, y) - eps)^2)``. Batches are shuffled each epoch and the last partial batch
of an epoch is kept: it is padded to the batch size and masked, so every step has one shape and one compilation.

With ``ema_decay = d > 0`` the state also carries EMA weights, updated inside the jitted step after every optimiser
step: ``ema <- d ema + (1 - d) params`` (starting from the initial weights, which keep a share ``d^t`` of it after
``t`` steps). With ``ema_debias`` the decay of step ``t`` (1, 2, ...) is ``d (1 - d^(t-1)) / (1 - d^t)``, so that
the EMA is the normalised average ``sum_s d^(t-s) params_s / sum_s d^(t-s)`` of the weights after steps 1..t,
with no share of the initial weights (optax's ``ema(debias=True)``, kept in its debiased form). With ``d = 0`` (the
paper's procedure) the state carries none and the step computes exactly what it did before the option existed.

The whole job on a run directory (config, checkpoints, resume, loss curve, sample grid) is
:func:`elsjax.jobs.train.run`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from elsjax import nets, train
    >>> eps_fn, params = nets.build(nets.spec("resnet", channels=1, width=8, num_layers=1, emb_dim=8), key=jax.random.key(0))
    >>> tx = train.optimizer()
    >>> state = train.init(params, tx)
    >>> images = jnp.zeros((10, 8, 8, 1))
    >>> state, loss = train.train_step(state, images, None, eps_fn=eps_fn, tx=tx, batch_size=4, key=jax.random.key(1))
    >>> int(state.step), loss.shape
    (1, ())
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from elsjax import noise

__all__ = [
    "TrainState",
    "optimizer",
    "init",
    "batch_indices",
    "loss_fn",
    "train_step",
    "run_keys",
    "check_ema_decay",
    "ema_decay_at",
    "NUM_TRAIN_TIMES",
]

NUM_TRAIN_TIMES = 1000  # t = U{0..999} / 1000: t = 1 is never seen in training (docs/maths.md §2.2)


class TrainState(NamedTuple):
    """Everything that changes during training; keys and data order are derived from ``step``."""

    step: jax.Array  # int32 scalar: optimiser steps done
    params: Any
    opt_state: Any
    ema: Any = None  # the EMA of params (ema_decay > 0), or None (no leaves: the state of a run without EMA)


def optimizer(learning_rate: float = 1e-4, lr_decay: float = 0.999965, weight_decay: float = 0.0):
    """AdamW (betas 0.9/0.999, eps 1e-8) with the learning rate multiplied by ``lr_decay`` after every step.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = optimizer(learning_rate=0.1)
      >>> updates, _ = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2))
      >>> [round(float(u), 4) for u in updates]  # Adam's first step is -lr * sign(grad)
      [-0.1, -0.1]
    """
    lr = optax.exponential_decay(learning_rate, transition_steps=1, decay_rate=lr_decay)
    return optax.adamw(lr, weight_decay=weight_decay)


def check_ema_decay(ema_decay: float, debias: bool = False) -> float:
    """``ema_decay`` if it is 0 (no EMA) or in (0, 1), and not 0 with ``debias``; else a one-line ``ValueError``.

    Example:
      >>> check_ema_decay(0.999)
      0.999
    """
    if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay: expected 0 (no EMA) or a decay in (0, 1) such as 0.999, got {ema_decay!r}")
    if debias and ema_decay == 0:
        raise ValueError("ema_debias: debiases an EMA of the weights; set ema_decay > 0 as well (such as 0.999)")
    return float(ema_decay)


def init(params, tx, *, ema: bool = False) -> TrainState:
    """The state at step 0; with ``ema`` the EMA weights start as a copy of ``params``."""
    return TrainState(jnp.int32(0), params, tx.init(params), jax.tree.map(jnp.array, params) if ema else None)


def run_keys(seed: int):
    """``(init_key, data_key, noise_key)``, all derived from ``jax.random.key(seed)``."""
    root = jax.random.key(seed)
    return tuple(jax.random.fold_in(root, i) for i in range(3))


def batch_indices(step, *, num_images: int, batch_size: int, key):
    """Indices ``[batch_size]`` and validity mask of step ``step``'s batch.

    Epoch ``e = step // ceil(N / B)`` uses the permutation ``permutation(fold_in(key, e), N)``; the epoch's last
    batch may be partial: its missing rows repeat the first indices and are masked out (with fewer images than a
    batch, every batch is that partial one).

    Example:
      >>> idx, mask = batch_indices(2, num_images=5, batch_size=2, key=jax.random.key(0))
      >>> idx.shape, mask.tolist()
      ((2,), [True, False])
    """
    steps_per_epoch = -(-num_images // batch_size)
    epoch, within = jnp.divmod(jnp.asarray(step, jnp.int32), steps_per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_images)
    room = jnp.tile(perm, -(-batch_size // num_images))[:batch_size]  # room for the partial last batch
    perm = jnp.concatenate([perm, room])
    start = within * batch_size
    idx = jax.lax.dynamic_slice_in_dim(perm, start, batch_size)
    return idx, start + jnp.arange(batch_size) < num_images


def loss_fn(params, eps_fn, x0, y, mask, *, key):
    """The eps-MSE on one batch: mean over the valid images' elements of ``(eps_hat - eps)^2``.

    Args:
      params: the net's parameters.
      eps_fn: ``eps_fn(params, x, t, y)``.
      x0: clean images ``[B, H, W, C]``.
      y: labels ``[B]`` or None.
      mask: ``[B]`` bool, the images that count.
      key: draws ``t`` and ``eps``.
    """
    t_key, eps_key = jax.random.split(key)
    t = jax.random.randint(t_key, (x0.shape[0],), 0, NUM_TRAIN_TIMES).astype(jnp.float32) / NUM_TRAIN_TIMES
    eps = jax.random.normal(eps_key, x0.shape, x0.dtype)
    a, b = noise.signal_noise_std(t)
    x_t = a[:, None, None, None] * x0 + b[:, None, None, None] * eps
    sq = jnp.mean((eps_fn(params, x_t, t, y) - eps) ** 2, axis=(1, 2, 3))
    return jnp.sum(jnp.where(mask, sq, 0.0)) / jnp.sum(mask)


def ema_decay_at(step, ema_decay: float, debias: bool = False):
    """The EMA's decay at step ``step`` (1, 2, ...; the count after the update): ``ema_decay``, or with ``debias``
    ``d (1 - d^(step-1)) / (1 - d^step)`` (0 at step 1: the average of the weights visited, none of the initial ones).

    Example:
      >>> [round(float(ema_decay_at(t, 0.5, debias=True)), 4) for t in (1, 2, 3)]
      [0.0, 0.3333, 0.4286]
    """
    if not debias:
        return ema_decay
    t = jnp.asarray(step, jnp.float32)
    return ema_decay * (1.0 - ema_decay ** (t - 1.0)) / (1.0 - ema_decay**t)


@functools.partial(jax.jit, static_argnames=("eps_fn", "tx", "batch_size", "ema_decay", "ema_debias"))
def train_step(
    state: TrainState, images, labels, *, eps_fn, tx, batch_size: int, key, ema_decay: float = 0.0,
    ema_debias: bool = False,
):  # fmt: skip
    """One optimiser step on the batch of step ``state.step``.

    Args:
      state: the current state.
      images: the whole training set ``[N, H, W, C]`` in [-1, 1].
      labels: ``[N]`` int labels for a class-conditional net, or None.
      eps_fn: the net (static, hashable; e.g. :class:`elsjax.nets.NetEpsFn`).
      tx: the optax optimiser (static).
      batch_size: images per step (static).
      key: the run's key; the data order uses ``fold_in(key, 0)``, the noise ``fold_in(key, 1)``.
      ema_decay: the EMA's decay d (static): 0 for a state without EMA, else in (0, 1) for a state with one
        (:func:`init` with ``ema=True``); then ``ema <- d ema + (1 - d) new_params``.
      ema_debias: with an EMA, the step's decay is :func:`ema_decay_at` (static): the average carries no share of
        the initial weights.

    Returns:
      ``(new_state, loss)``.
    """
    check_ema_decay(ema_decay, ema_debias)
    if (state.ema is None) != (ema_decay == 0):
        raise ValueError(
            f"ema_decay: {ema_decay} does not fit a state {'without' if state.ema is None else 'with'} EMA weights "
            "(init(..., ema=True) goes with ema_decay > 0)"
        )
    data_key, noise_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    idx, mask = batch_indices(state.step, num_images=images.shape[0], batch_size=batch_size, key=data_key)
    y = None if labels is None else labels[idx]
    loss, grads = jax.value_and_grad(loss_fn)(
        state.params, eps_fn, images[idx], y, mask, key=jax.random.fold_in(noise_key, state.step)
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    step = state.step + 1  # traced in the order the step had before the EMA existed: the same program without it
    params = optax.apply_updates(state.params, updates)
    ema = state.ema
    if ema is not None:
        d = ema_decay_at(step, ema_decay, ema_debias)
        ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)
    return TrainState(step, params, opt_state, ema), loss
