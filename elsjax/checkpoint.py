"""Orbax checkpoints of a network and its optimiser, tagged with the architecture they belong to.

A checkpoint directory (an ``orbax.checkpoint.CheckpointManager`` root) holds one sub-directory per saved step,
each with three items: ``params`` (the net), ``train`` (step and optimiser state) and ``meta`` (JSON: the
architecture :func:`elsjax.nets.spec`, the step, anything else the caller adds). Orbax writes each step into a
temporary directory and renames it when complete, and deletes old steps only after a newer one is complete, so a
run killed mid-save never loses the previous checkpoint.

Loading checks the architecture before touching any array: a checkpoint of another architecture is a
``ValueError`` naming the differing settings, and an unreadable or corrupted one is a ``ValueError`` too.

Example:
    >>> import tempfile, jax
    >>> from elsjax import checkpoint, nets
    >>> spec = nets.spec("resnet", channels=1, width=8, num_layers=1, emb_dim=8)
    >>> eps_fn, params = nets.build(spec, key=jax.random.key(0))
    >>> root = tempfile.mkdtemp()
    >>> checkpoint.save(root, 7, params, spec=spec)
    >>> eps_fn2, params2, meta = checkpoint.load_net(root)
    >>> meta["step"], eps_fn2 == eps_fn
    (7, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax

__all__ = ["save", "latest_step", "read_meta", "restore", "load_net", "check_spec"]


def _manager(directory, keep: int | None = None, create: bool = False):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save(directory, step: int, params, train_state: Any = None, *, spec: dict, meta: dict | None = None, keep: int | None = None) -> None:
    """Saves ``params`` (and optionally ``train_state``, any pytree of arrays) as step ``step``, synchronously.

    Args:
      directory: the checkpoint root (created if missing).
      step: the step number (the sub-directory's name).
      params: the net's parameters.
      train_state: optimiser state and counters to resume training from (omitted: an inference-only checkpoint).
      spec: the architecture (:func:`elsjax.nets.spec`), recorded so that loading into another one fails clearly.
      meta: extra JSON-serialisable information (the training config, the loss).
      keep: keep at most this many steps (the oldest are deleted after this one is complete); None keeps all.
    """
    import orbax.checkpoint as ocp

    items = {
        "params": ocp.args.StandardSave(params),
        "meta": ocp.args.JsonSave({**(meta or {}), "spec": spec, "step": int(step)}),
    }
    if train_state is not None:
        items["train"] = ocp.args.StandardSave(train_state)
    with _manager(directory, keep, create=True) as manager:
        manager.save(int(step), args=ocp.args.Composite(**items), force=True)
        manager.wait_until_finished()


def latest_step(directory) -> int | None:
    """The newest complete step in ``directory``, or None if it holds none."""
    if not Path(directory).is_dir():
        return None
    with _manager(directory) as manager:
        return manager.latest_step()


def _unreadable(directory, step, err) -> ValueError:
    return ValueError(
        f"checkpoint: {Path(directory) / str(step)} is corrupted or unreadable ({type(err).__name__}: {err})"
    )


def _resolve_step(directory, step):
    step = latest_step(directory) if step is None else step
    if step is None:
        raise ValueError(f"checkpoint: no checkpoint in {directory}")
    return step


def read_meta(directory, step: int | None = None) -> dict:
    """The ``meta`` item of ``step`` (default: the newest) without loading any array.

    Raises:
      ValueError: no checkpoint, or its metadata cannot be read.
    """
    import orbax.checkpoint as ocp

    step = _resolve_step(directory, step)
    try:
        with _manager(directory) as manager:
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as err:  # orbax raises many types for a damaged directory; all mean the same here
        raise _unreadable(directory, step, err) from err
    if not isinstance(meta, dict) or "spec" not in meta:
        raise _unreadable(directory, step, KeyError("spec"))
    return meta


def check_spec(saved: dict, expected: dict, directory="") -> None:
    """Raises ``ValueError`` naming the settings where a checkpoint's architecture differs from ``expected``."""
    if dict(saved) != dict(expected):
        diff = {k: (saved.get(k), expected.get(k)) for k in sorted(set(saved) | set(expected)) if saved.get(k) != expected.get(k)}
        detail = ", ".join(f"{k}: saved {a!r}, expected {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"checkpoint: {directory} holds a different architecture ({detail})")


def restore(directory, params_target, train_target: Any = None, *, spec: dict, step: int | None = None):
    """Restores ``(params, train_state, meta)`` of ``step`` (default: the newest) onto the given targets.

    Args:
      directory: the checkpoint root.
      params_target: a pytree with the expected structure (arrays or ``jax.ShapeDtypeStruct``).
      train_target: the same for the training state; None skips it (and returns None for it).
      spec: the expected architecture; a checkpoint of another one is refused before any array is read.
      step: which step; default the newest.

    Raises:
      ValueError: no checkpoint, another architecture, or a corrupted checkpoint.
    """
    import orbax.checkpoint as ocp

    step = _resolve_step(directory, step)
    meta = read_meta(directory, step)
    check_spec(meta["spec"], spec, directory)
    items = {"params": ocp.args.StandardRestore(params_target)}
    if train_target is not None:
        items["train"] = ocp.args.StandardRestore(train_target)
    try:
        with _manager(directory) as manager:
            restored = manager.restore(step, args=ocp.args.Composite(**items))
        params = restored.params
        train_state = restored.train if train_target is not None else None
        jax.block_until_ready((params, train_state))
    except Exception as err:
        raise _unreadable(directory, step, err) from err
    return params, train_state, meta


def load_net(directory, step: int | None = None):
    """A trained net from its checkpoint alone: ``(eps_fn, params, meta)``, ready for
    :func:`elsjax.sampler.sample_net`. The architecture comes from the checkpoint's metadata."""
    from elsjax import nets

    meta = read_meta(directory, step)
    eps_fn, target = nets.abstract_params(meta["spec"])
    params, _, meta = restore(directory, target, spec=meta["spec"], step=meta["step"])
    return eps_fn, params, meta
