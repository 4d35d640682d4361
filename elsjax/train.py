"""Training the baselines (SPEC 4.5): eps-MSE, AdamW with an exponentially decaying learning rate, no EMA.

The core is a few pure functions. :func:`train_step` is one jit-compiled optimiser step whose batch and noise are
*functions of the step number*: the epoch's permutation comes from ``fold_in(data_key, epoch)`` and the step's
times and noise from ``fold_in(noise_key, step)``. A run resumed at step ``s`` from a checkpoint therefore
replays exactly the batches and noise an uninterrupted run would have seen, and ends with the same weights.

Per step (as the reference): ``t = U{0..999} / 1000`` per image, ``eps ~ N(0, I)``, ``x_t = a_t x_0 + b_t eps``,
``loss = mean((eps_fn(params, x_t, t, y) - eps)^2)``. Batches are shuffled each epoch and the last partial batch
of an epoch is kept: it is padded to the batch size and masked, so every step has one shape and one compilation.

:func:`train` is the whole job on a run directory (config, checkpoints, resume, loss curve, sample grid).

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

import csv
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from elsjax import config as config_lib
from elsjax import schedule

__all__ = [
    "TrainState",
    "optimizer",
    "init",
    "batch_indices",
    "loss_fn",
    "train_step",
    "run_keys",
    "train",
    "NUM_TRAIN_TIMES",
    "RESUMABLE_FIELDS",
]

NUM_TRAIN_TIMES = 1000  # t = U{0..999} / 1000: t = 1 is never seen in training (SPEC 2.2)

# Fields that may change between a run and its resumption (they do not change the weights of a given step).
RESUMABLE_FIELDS = frozenset(
    {"num_steps", "progress", "out_dir", "checkpoint_every_s", "checkpoint_every_steps", "keep_checkpoints",
     "log_every", "n_samples", "sample_steps", "sample_seed", "png_scale", "cache"}
)  # fmt: skip


class TrainState(NamedTuple):
    """Everything that changes during training; keys and data order are derived from ``step``."""

    step: jax.Array  # int32 scalar: optimiser steps done
    params: Any
    opt_state: Any


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


def init(params, tx) -> TrainState:
    """The state at step 0."""
    return TrainState(jnp.int32(0), params, tx.init(params))


def run_keys(seed: int):
    """``(init_key, data_key, noise_key)``, all derived from ``jax.random.key(seed)``."""
    root = jax.random.key(seed)
    return tuple(jax.random.fold_in(root, i) for i in range(3))


def batch_indices(step, *, num_images: int, batch_size: int, key):
    """Indices ``[batch_size]`` and validity mask of step ``step``'s batch.

    Epoch ``e = step // ceil(N / B)`` uses the permutation ``permutation(fold_in(key, e), N)``; the epoch's last
    batch may be partial: its missing rows repeat the first indices and are masked out.

    Example:
      >>> idx, mask = batch_indices(2, num_images=5, batch_size=2, key=jax.random.key(0))
      >>> idx.shape, mask.tolist()
      ((2,), [True, False])
    """
    steps_per_epoch = -(-num_images // batch_size)
    epoch, within = jnp.divmod(jnp.asarray(step, jnp.int32), steps_per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_images)
    perm = jnp.concatenate([perm, perm[:batch_size]])  # room for the partial last batch
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
    a, b = schedule.signal_noise_std(t)
    x_t = a[:, None, None, None] * x0 + b[:, None, None, None] * eps
    sq = jnp.mean((eps_fn(params, x_t, t, y) - eps) ** 2, axis=(1, 2, 3))
    return jnp.sum(jnp.where(mask, sq, 0.0)) / jnp.sum(mask)


@functools.partial(jax.jit, static_argnames=("eps_fn", "tx", "batch_size"))
def train_step(state: TrainState, images, labels, *, eps_fn, tx, batch_size: int, key):
    """One optimiser step on the batch of step ``state.step``.

    Args:
      state: the current state.
      images: the whole training set ``[N, H, W, C]`` in [-1, 1].
      labels: ``[N]`` int labels for a class-conditional net, or None.
      eps_fn: the net (static, hashable; e.g. :class:`elsjax.nets.EpsFn`).
      tx: the optax optimiser (static).
      batch_size: images per step (static).
      key: the run's key; the data order uses ``fold_in(key, 0)``, the noise ``fold_in(key, 1)``.

    Returns:
      ``(new_state, loss)``.
    """
    data_key, noise_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    idx, mask = batch_indices(state.step, num_images=images.shape[0], batch_size=batch_size, key=data_key)
    y = None if labels is None else labels[idx]
    loss, grads = jax.value_and_grad(loss_fn)(
        state.params, eps_fn, images[idx], y, mask, key=jax.random.fold_in(noise_key, state.step)
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), loss


# ----------------------------------------------------------------------------------------------------------------
# The whole job on a run directory.


def _validate(cfg):
    from elsjax import data, nets

    data.canonical_name(cfg.dataset)  # ValueError naming the argument for an unknown dataset
    if cfg.arch not in nets.ARCHITECTURES:
        raise ValueError(f"arch: unknown architecture {cfg.arch!r}; expected one of {sorted(nets.ARCHITECTURES)}")
    for key in ("batch_size", "num_steps", "log_every", "keep_checkpoints", "sample_steps", "png_scale"):
        if cfg[key] < 1:
            raise ValueError(f"{key}: expected a positive integer, got {cfg[key]}")
    for key in ("limit", "n_samples", "checkpoint_every_steps"):
        if cfg[key] < 0:
            raise ValueError(f"{key}: expected a non-negative integer, got {cfg[key]}")
    if not cfg.learning_rate > 0 or not 0 < cfg.lr_decay <= 1:
        raise ValueError(f"learning_rate, lr_decay: expected lr > 0 and 0 < decay <= 1, got {cfg.learning_rate}, {cfg.lr_decay}")


def check_run_dir(out_dir: Path, cfg) -> bool:
    """True if ``out_dir`` holds a run of the same config (to resume); False if it is new or empty.

    Raises:
      ValueError: ``out_dir`` holds something else, or a run of a different config.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir: {out_dir} exists and is not a directory")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return False
    saved_path = out_dir / "config.json"
    if not saved_path.is_file():
        raise ValueError(f"out_dir: {out_dir} is not empty and holds no training run (no config.json); choose another")
    saved = json.loads(saved_path.read_text())
    current = cfg.to_dict()
    differ = sorted(k for k in set(saved) | set(current) if k not in RESUMABLE_FIELDS and saved.get(k) != current.get(k))
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {current.get(k)!r} now" for k in differ)
        raise ValueError(f"out_dir: {out_dir} holds a run of a different config ({detail}); choose another out_dir")
    return True


def _write_losses(path: Path, losses, lr0: float, decay: float) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss", "learning_rate"])
        for i, loss in enumerate(losses):
            writer.writerow([i + 1, f"{loss:.6g}", f"{lr0 * decay**i:.6g}"])


def train(cfg, out_dir=None, *, log=print) -> dict:
    """Trains (or resumes) the net described by a :func:`elsjax.config.train_config` in a run directory.

    Writes ``config.json``, ``checkpoints/`` (orbax, every ``checkpoint_every_s`` seconds and at the end, and on
    Ctrl-C or SIGTERM), ``loss.csv`` and ``loss.png``, ``samples.png`` and ``samples.npz`` (drawn by the trained
    net from fixed seeds with :func:`elsjax.sampler.sample_net`) and ``record.json``. A directory holding a run of
    the same config (up to :data:`RESUMABLE_FIELDS`) is resumed from its newest checkpoint; a different config is
    refused.

    Returns:
      The record written to ``record.json``.
    """
    from tqdm.auto import tqdm

    from elsjax import checkpoint, data, images, interrupts, nets, sampler
    from elsjax import seeds as seeds_lib
    from elsjax.commands.sample import sample_grid, versions

    start_time = time.perf_counter()
    _validate(cfg)
    out_dir = Path(cfg.out_dir if out_dir is None else out_dir)
    resuming = check_run_dir(out_dir, cfg)
    ckpt_dir = out_dir / "checkpoints"

    dataset = data.load(cfg.dataset, **config_lib.data_options(cfg))
    spec = nets.spec(
        cfg.arch, channels=dataset.images.shape[-1], num_classes=dataset.num_classes if cfg.conditional else 0,
        width=cfg.width, num_layers=cfg.num_layers, emb_dim=cfg.emb_dim, kernel_size=cfg.kernel_size,
        last_kernel_size=cfg.last_kernel_size, padding=cfg.padding,
    )  # fmt: skip
    init_key, _, run_key = run_keys(cfg.seed)
    eps_fn, params = nets.build(spec, key=init_key)
    tx = optimizer(cfg.learning_rate, cfg.lr_decay, cfg.weight_decay)
    state = init(params, tx)
    losses: list[float] = []
    start_step = checkpoint.latest_step(ckpt_dir) if resuming else None
    if start_step is not None:
        params, (step, opt_state), meta = checkpoint.restore(
            ckpt_dir, state.params, (state.step, state.opt_state), spec=spec
        )
        state = TrainState(jnp.asarray(step, jnp.int32), params, opt_state)
        losses = list(meta.get("losses", []))[: int(step)]
        log(f"resuming {out_dir} from step {int(step)} (checkpoint {ckpt_dir / str(int(step))})")
    elif resuming:
        log(f"{out_dir} holds this config but no checkpoint: starting from step 0")
    loaded_time = time.perf_counter()

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    x_train = jnp.asarray(dataset.images)
    y_train = jnp.asarray(dataset.labels, jnp.int32) if cfg.conditional else None
    ckpt_meta = {"config": cfg.to_dict(), "data": dataset.describe()}

    guard = interrupts.SignalGuard()  # SIGTERM (sent by schedulers before a kill) acts as Ctrl-C

    def save_checkpoint():
        with guard.deferred():  # a signal during a save waits for it: no half-written step folder
            checkpoint.save(
                ckpt_dir, int(state.step), state.params, (state.step, state.opt_state), spec=spec,
                meta={**ckpt_meta, "losses": losses}, keep=cfg.keep_checkpoints,
            )  # fmt: skip

    first = int(state.step)
    bar = tqdm(total=cfg.num_steps, initial=first, unit="step", desc="training", disable=not cfg.progress, file=sys.stderr)
    pending, last_save, train_time = [], time.perf_counter(), 0.0
    guard.install()
    try:
        for step in range(first, cfg.num_steps):
            t0 = time.perf_counter()
            state, loss = train_step(state, x_train, y_train, eps_fn=eps_fn, tx=tx, batch_size=cfg.batch_size, key=run_key)
            pending.append(loss)
            done = step + 1
            by_steps = cfg.checkpoint_every_steps and done % cfg.checkpoint_every_steps == 0
            save_now = by_steps or time.perf_counter() - last_save >= cfg.checkpoint_every_s
            if save_now or len(pending) >= cfg.log_every or done == cfg.num_steps:
                losses.extend(np.asarray(jnp.stack(pending)).tolist())  # one device-to-host copy per log period
                bar.update(len(pending))
                bar.set_postfix(loss=f"{np.mean(losses[-len(pending):]):.4f}")
                pending = []
            train_time += time.perf_counter() - t0
            if save_now:
                save_checkpoint()
                last_save = time.perf_counter()
        if checkpoint.latest_step(ckpt_dir) != int(state.step):
            save_checkpoint()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the guard
        if pending:
            losses.extend(np.asarray(jnp.stack(pending)).tolist())
        if int(state.step) > first:
            if checkpoint.latest_step(ckpt_dir) != int(state.step):  # not already saved by the interrupted save
                save_checkpoint()
            log(f"interrupted: saved step {int(state.step)} in {ckpt_dir}; run the same command to resume")
        raise
    finally:
        bar.close()
        guard.restore()
    trained_time = time.perf_counter()

    _write_losses(out_dir / "loss.csv", losses, cfg.learning_rate, cfg.lr_decay)
    if losses:
        images.save_png(out_dir / "loss.png", images.line_plot(losses, title=f"{cfg.arch} on {dataset.name}: eps-MSE per step"))
    samples_record = None
    if cfg.n_samples:
        seeds = seeds_lib.noise(cfg.sample_seed, cfg.n_samples, dataset.images.shape[1:])
        y = seeds_lib.classes(cfg.n_samples, dataset.num_classes) if cfg.conditional else None
        samples = np.asarray(sampler.sample_net(eps_fn, state.params, seeds, num_steps=cfg.sample_steps, y=y))
        images.save_png(out_dir / "samples.png", sample_grid(seeds, samples), scale=cfg.png_scale)
        np.savez(out_dir / "samples.npz", samples=samples, seeds=seeds,
                 labels=np.full(cfg.n_samples, -1, np.int32) if y is None else y, prng_seed=np.int64(cfg.sample_seed))  # fmt: skip
        samples_record = {"n": cfg.n_samples, "steps": cfg.sample_steps, "seed": cfg.sample_seed,
                          "labels": None if y is None else y.tolist()}  # fmt: skip
    steps_run = int(state.step) - first
    window = losses[-min(len(losses), max(1, cfg.log_every)) :]
    record = {
        "command": "elsjax train",
        "argv": sys.argv,
        "config": cfg.to_dict(),
        "spec": spec,
        "param_count": nets.param_count(state.params),
        "data": dataset.describe(),
        "steps": int(state.step),
        "resumed_from": start_step,
        "final_loss": float(np.mean(window)) if window else None,
        "final_loss_window": len(window),
        "samples": samples_record,
        "versions": versions(),
        "timings": {
            "setup_s": round(loaded_time - start_time, 3),
            "train_s": round(train_time, 3),
            "steps_run": steps_run,
            "steps_per_s": round(steps_run / train_time, 3) if train_time else None,
            "total_s": round(time.perf_counter() - start_time, 3),
            "post_s": round(time.perf_counter() - trained_time, 3),
        },
    }
    (out_dir / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
