"""The training job: trains (or resumes) a convolutional diffusion net in a run directory.

Outputs in ``out_dir``: ``config.json``, ``checkpoints/`` (orbax, every ``checkpoint_every_s`` seconds, every
``checkpoint_every_steps`` steps, at the end, and on Ctrl-C or SIGTERM), ``loss.csv`` and ``loss.png``, ``samples.png`` and
``samples.npz`` (the trained net's DDIM samples from fixed seeds, seeds above samples; with ``ema_decay > 0`` also
``samples_ema.png`` and ``samples_ema.npz`` from the EMA weights, which every checkpoint holds too), ``record.json``
(versions, timings, final loss). Running the same config again resumes from the newest checkpoint, and the
resumed run ends with the weights an uninterrupted one would have (:mod:`elsjax.train`).

Example (the CPU-scale MNIST preset)::

    elsjax train --config experiments/configs/train_mnist_resnet_cpu.py
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from elsjax import atomic, checkpoint, data, images, interrupts, nets, runs, sampler, seeds
from elsjax import config as config_lib
from elsjax.train import TrainState, check_ema_decay, init, optimizer, run_keys, train_step

__all__ = ["run", "check", "RESUMABLE_FIELDS"]

# Fields that may change between a run and its resumption (they do not change the weights of a given step).
RESUMABLE_FIELDS = frozenset(
    {"num_steps", "progress", "out_dir", "checkpoint_every_s", "checkpoint_every_steps", "keep_checkpoints",
     "log_every", "n_samples", "sample_steps", "sample_seed", "png_scale", "cache"}
)  # fmt: skip


def check(cfg) -> None:
    """The checks of a train config's fields (each failure a ``ValueError`` naming the field)."""
    data.canonical_name(cfg.dataset)  # ValueError naming the argument for an unknown dataset
    if cfg.arch not in nets.ARCHITECTURES:
        raise ValueError(f"arch: unknown architecture {cfg.arch!r}; expected one of {sorted(nets.ARCHITECTURES)}")
    for key in ("batch_size", "num_steps", "log_every", "keep_checkpoints", "sample_steps", "png_scale"):
        if cfg[key] < 1:
            raise ValueError(f"{key}: expected a positive integer, got {cfg[key]}")
    for key in ("limit", "n_samples", "checkpoint_every_steps", "emb_dim"):
        if cfg[key] < 0:
            raise ValueError(f"{key}: expected a non-negative integer, got {cfg[key]}")
    nets.spec(cfg.arch, channels=1, width=cfg.width, num_layers=cfg.num_layers, emb_dim=cfg.emb_dim,
              kernel_size=cfg.kernel_size, last_kernel_size=cfg.last_kernel_size, padding=cfg.padding)  # fmt: skip
    if not cfg.learning_rate > 0 or not 0 < cfg.lr_decay <= 1:
        raise ValueError(
            f"learning_rate, lr_decay: expected lr > 0 and 0 < decay <= 1, got {cfg.learning_rate}, {cfg.lr_decay}"
        )
    check_ema_decay(cfg.ema_decay, cfg.ema_debias)


def _write_losses(path: Path, losses, lr0: float, decay: float) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["step", "loss", "learning_rate"])
    for i, loss in enumerate(losses):
        writer.writerow([i + 1, f"{loss:.6g}", f"{lr0 * decay**i:.6g}"])
    atomic.write_text(path, text.getvalue())


def net_spec(cfg, dataset) -> dict:
    """The architecture spec a train config describes, for a dataset's channels and classes."""
    return nets.spec(
        cfg.arch, channels=dataset.images.shape[-1], num_classes=dataset.num_classes if cfg.conditional else 0,
        width=cfg.width, num_layers=cfg.num_layers, emb_dim=cfg.emb_dim, kernel_size=cfg.kernel_size,
        last_kernel_size=cfg.last_kernel_size, padding=cfg.padding,
    )  # fmt: skip


class _Start(NamedTuple):
    """What training starts from: the data, the net, and its state (a checkpoint's when resuming)."""

    dataset: data.Dataset
    spec: dict
    eps_fn: Callable
    tx: Any  # the optax optimiser
    run_key: Any  # the PRNG key of the steps' noise and batches
    state: TrainState
    losses: list[float]  # the loss of every step done, extended as training goes on
    resumed_from: int | None  # the checkpoint's step, or None for a fresh start


@runs.job
def run(cfg, *, log=print) -> dict:
    """Trains (or resumes) the net described by a :func:`elsjax.config.train_config` in ``cfg.out_dir``.

    A directory holding a run of the same config (up to :data:`RESUMABLE_FIELDS`) is resumed from its newest
    checkpoint; anything else non-empty is refused (:class:`elsjax.runs.RunDirError`).

    Returns:
      The record written to ``record.json``.
    """
    clock = runs.Stopwatch()
    check(cfg)
    out_dir = Path(cfg.out_dir)
    resuming = runs.start_run(  # locked, config.json written: before the data and the net
        out_dir, cfg, resumable=True, resumable_fields=RESUMABLE_FIELDS, kind="training run",
        defaults=config_lib.train_config(),
    ).resuming  # fmt: skip
    start = _start(cfg, out_dir, resuming=resuming, log=log)
    clock.lap("setup")
    state = _train(cfg, start, out_dir / "checkpoints", clock=clock, log=log)
    losses = start.losses
    samples_record = _write_outputs(cfg, out_dir, start, state)
    clock.lap("post")
    steps_run = int(state.step) - int(start.state.step)
    window = losses[-min(len(losses), max(1, cfg.log_every)) :]
    timings = clock.laps()
    timings["steps_run"] = steps_run
    timings["steps_per_s"] = round(steps_run / timings["train_s"], 3) if timings.get("train_s") else None
    record = {
        "command": "elsjax train",
        "spec": start.spec,
        "param_count": nets.param_count(state.params),
        "data": start.dataset.describe(),
        "steps": int(state.step),
        "resumed_from": start.resumed_from,
        "final_loss": float(np.mean(window)) if window else None,
        "final_loss_window": len(window),
        "samples": samples_record,
    }
    return runs.write_record(out_dir, record, config=cfg, timings=timings)


def _start(cfg, out_dir: Path, *, resuming: bool, log) -> _Start:
    """Loads the data and builds the net and optimiser; when ``resuming``, restores the newest checkpoint."""
    ckpt_dir = out_dir / "checkpoints"
    dataset = data.load(cfg.dataset, **config_lib.data_options(cfg))
    spec = net_spec(cfg, dataset)
    init_key, _, run_key = run_keys(cfg.seed)
    eps_fn, params = nets.build(spec, key=init_key)
    tx = optimizer(cfg.learning_rate, cfg.lr_decay, cfg.weight_decay)
    state = init(params, tx, ema=float(cfg.ema_decay) > 0)
    losses: list[float] = []
    start_step = checkpoint.latest_step(ckpt_dir) if resuming else None
    if start_step is not None:
        params, (step, opt_state), meta = checkpoint.restore(
            ckpt_dir, state.params, (state.step, state.opt_state), spec=spec
        )
        ema = None if state.ema is None else checkpoint.restore_ema(ckpt_dir, state.ema, spec=spec, step=int(step))
        state = TrainState(jnp.asarray(step, jnp.int32), params, opt_state, ema)
        losses = list(meta.get("losses", []))[: int(step)]
        log(f"resuming {out_dir} from step {int(step)} (checkpoint {ckpt_dir / str(int(step))})")
    elif resuming:
        log(f"{out_dir} holds this config but no checkpoint: starting from step 0")
    return _Start(dataset, spec, eps_fn, tx, run_key, state, losses, start_step)


def _train(cfg, start: _Start, ckpt_dir: Path, *, clock: runs.Stopwatch, log) -> TrainState:
    """Trains from ``start`` to step ``cfg.num_steps``, adding each step's loss to ``start.losses``; returns the final
    state.

    Checkpoints every ``checkpoint_every_steps`` steps, every ``checkpoint_every_s`` seconds and at the end; on Ctrl-C
    or SIGTERM saves the step reached and re-raises. Adds the laps ``train`` and ``checkpoint`` to ``clock``.
    """
    from tqdm.auto import tqdm

    dataset, spec, state, losses = start.dataset, start.spec, start.state, start.losses
    x_train = jnp.asarray(dataset.images)
    y_train = jnp.asarray(dataset.labels, jnp.int32) if cfg.conditional else None
    ckpt_meta = {"config": cfg.to_dict(), "data": dataset.describe()}
    ema_decay = float(cfg.ema_decay)

    guard = interrupts.SignalGuard()  # SIGTERM (sent by schedulers before a kill) acts as Ctrl-C

    def save_checkpoint():
        with guard.deferred():  # a signal during a save waits for it: no half-written step folder
            checkpoint.save(
                ckpt_dir, int(state.step), state.params, (state.step, state.opt_state), spec=spec,
                meta={**ckpt_meta, "losses": losses}, keep=cfg.keep_checkpoints,
                keep_period=cfg.checkpoint_every_steps or None, ema=state.ema,
            )  # fmt: skip

    first = int(state.step)
    bar = tqdm(
        total=cfg.num_steps, initial=first, unit="step", desc="training", disable=not cfg.progress, file=sys.stderr
    )
    pending, last_save = [], clock.elapsed()
    guard.install()
    try:
        for step in range(first, cfg.num_steps):
            guard.check()  # a signal whose exception was dropped (raised inside a gc callback) stops here
            state, loss = train_step(
                state, x_train, y_train, eps_fn=start.eps_fn, tx=start.tx, batch_size=cfg.batch_size,
                key=start.run_key, ema_decay=ema_decay, ema_debias=bool(cfg.ema_debias),
            )  # fmt: skip
            pending.append(loss)
            done = step + 1
            by_steps = cfg.checkpoint_every_steps and done % cfg.checkpoint_every_steps == 0
            save_now = by_steps or clock.elapsed() - last_save >= cfg.checkpoint_every_s
            if save_now or len(pending) >= cfg.log_every or done == cfg.num_steps:
                losses.extend(np.asarray(jnp.stack(pending)).tolist())  # one device-to-host copy per log period
                bar.update(len(pending))
                bar.set_postfix(loss=f"{np.mean(losses[-len(pending) :]):.4f}")
                pending = []
            if save_now:
                clock.lap("train")
                save_checkpoint()
                clock.lap("checkpoint")
                last_save = clock.elapsed()
        clock.lap("train")
        if checkpoint.latest_step(ckpt_dir) != int(state.step):
            save_checkpoint()
        clock.lap("checkpoint")
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
    return state


def _write_outputs(cfg, out_dir: Path, start: _Start, state: TrainState) -> dict | None:
    """Writes ``loss.csv``, ``loss.png`` and the trained net's samples (also from the EMA weights, if any); returns
    the record's ``samples`` (None without samples)."""
    dataset, eps_fn, losses = start.dataset, start.eps_fn, start.losses
    _write_losses(out_dir / "loss.csv", losses, cfg.learning_rate, cfg.lr_decay)
    if losses:
        images.save_png(
            out_dir / "loss.png", images.line_plot(losses, title=f"{cfg.arch} on {dataset.name}: eps-MSE per step")
        )
    if not cfg.n_samples:
        return None
    noise = seeds.noise(cfg.sample_seed, cfg.n_samples, dataset.images.shape[1:])
    y = seeds.classes(cfg.n_samples, dataset.num_classes) if cfg.conditional else None
    samples = np.asarray(sampler.sample_net(eps_fn, state.params, noise, num_steps=cfg.sample_steps, y=y))
    runs.save_samples(out_dir, noise, samples, labels=y, prng_seed=cfg.sample_seed, png_scale=cfg.png_scale)
    if state.ema is not None:
        samples = np.asarray(sampler.sample_net(eps_fn, state.ema, noise, num_steps=cfg.sample_steps, y=y))
        runs.save_samples(out_dir, noise, samples, labels=y, prng_seed=cfg.sample_seed, png_scale=cfg.png_scale,
                          name="samples_ema")  # fmt: skip
    return {"n": cfg.n_samples, "steps": cfg.sample_steps, "seed": cfg.sample_seed,
            "labels": None if y is None else y.tolist()}  # fmt: skip
