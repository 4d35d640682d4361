"""Orbax checkpoints of a network and its optimiser, tagged with the architecture they belong to.

A checkpoint directory (an ``orbax.checkpoint.CheckpointManager`` root) holds one sub-directory per saved step,
each with three items: ``params`` (the net), ``train`` (step and optimiser state) and ``meta`` (JSON: the
architecture :func:`elsjax.nets.spec`, the step, anything else the caller adds); a net trained with an exponential
moving average of its weights (``ema_decay > 0``) has a fourth, ``ema`` (the averaged weights, the structure of
``params``), which :func:`load_net` loads with ``weights="ema"``. Orbax writes each step into a
temporary directory and renames it when complete, and deletes old steps only after a newer one is complete, so a
run killed mid-save never loses the previous checkpoint.

Saving records a content checksum of each array tree in ``meta["checksums"]`` (sha256 of every array's dtype,
shape and bytes, in the tree's flattening order), and loading recomputes it: a flipped byte in a data file, which
orbax itself reads back as a silently different weight, is a ``ValueError`` naming the step folder, the tree and
the array. A checkpoint whose metadata records no checksums is refused the same way.

Loading checks the architecture before touching any array: a checkpoint of another architecture is a
``ValueError`` naming the differing settings, and an unreadable or corrupted one is a ``ValueError`` too. The
loading functions accept either a checkpoint root or an ``elsjax train`` run directory (its ``checkpoints/``).

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

import hashlib
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = [
    "save", "latest_step", "steps", "read_meta", "restore", "restore_ema", "load_net", "check_spec", "tree_checksum",
    "WEIGHTS", "has_ema",
]  # fmt: skip

RUN_SUBDIR = "checkpoints"  # where `elsjax train` keeps the checkpoint root inside a run directory
# Which weights of a net to load: the optimiser's (the paper's), or their exponential moving average.
WEIGHTS = ("raw", "ema")


def _manager(directory, keep: int | None = None, create: bool = False, keep_period: int | None = None):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, keep_period=keep_period, create=create)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _path_name(path) -> str:
    """``"blocks/0/conv/kernel"`` for a tree path (dict keys, attribute names and indices joined by ``/``)."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def _host_array(leaf) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)  # typed PRNG keys have no host representation of their own
    return np.asarray(jax.device_get(leaf))  # tobytes() below is C order whatever the layout


def _array_digest(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype.str}{list(array.shape)}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def tree_checksum(tree) -> dict:
    """A content checksum of a pytree of arrays: ``{"sha256": ..., "arrays": [[path, dtype, shape, sha256], ...]}``.

    Each array's sha256 covers its dtype, shape and bytes; the tree's covers the arrays' in the tree's flattening
    order (the order a restore onto a target of the same structure yields).

    Example:
      >>> import numpy as np
      >>> c = tree_checksum({"w": np.zeros(2, np.float32)})
      >>> c["arrays"][0][:3], len(c["sha256"])
      (['w', 'float32', [2]], 64)
    """
    arrays = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = _host_array(leaf)
        arrays.append([_path_name(path), str(array.dtype), list(array.shape), _array_digest(array)])
    total = hashlib.sha256("\n".join(a[3] for a in arrays).encode()).hexdigest()
    return {"sha256": total, "arrays": arrays}


def save(
    directory,
    step: int,
    params,
    train_state: Any = None,
    *,
    spec: dict,
    meta: dict | None = None,
    keep: int | None = None,
    keep_period: int | None = None,
    ema: Any = None,
) -> None:
    """Saves ``params`` (and optionally ``train_state``, any pytree of arrays) as step ``step``, synchronously.

    Args:
      directory: the checkpoint root (created if missing).
      step: the step number (the sub-directory's name).
      params: the net's parameters.
      train_state: optimiser state and counters to resume training from (omitted: an inference-only checkpoint).
      spec: the architecture (:func:`elsjax.nets.spec`), recorded so that loading into another one fails clearly.
      meta: extra JSON-serialisable information (the training config, the loss). ``meta["checksums"]`` is set
        to the :func:`tree_checksum` of ``params`` and ``train_state``, which loading verifies.
      keep: keep at most this many steps (the oldest are deleted after this one is complete); None keeps all.
      keep_period: never delete a step that is a multiple of this (the periodic checkpoints a study evaluates
        survive the extra ones saved on a timer or at an interruption); None protects none.
      ema: the exponential moving average of the weights (the structure of ``params``), saved as the item ``ema``
        with its checksum beside the others; None (no EMA) saves exactly what a checkpoint without it holds.
    """
    import orbax.checkpoint as ocp

    checksums = {"params": tree_checksum(params)}
    if train_state is not None:
        checksums["train"] = tree_checksum(train_state)
    if ema is not None:
        checksums["ema"] = tree_checksum(ema)
    items = {
        "params": ocp.args.StandardSave(params),
        "meta": ocp.args.JsonSave({**(meta or {}), "spec": spec, "step": int(step), "checksums": checksums}),
    }
    if train_state is not None:
        items["train"] = ocp.args.StandardSave(train_state)
    if ema is not None:
        items["ema"] = ocp.args.StandardSave(ema)
    with _manager(directory, keep, create=True, keep_period=keep_period) as manager:
        manager.save(int(step), args=ocp.args.Composite(**items), force=True)
        manager.wait_until_finished()


def _has_steps(directory: Path) -> bool:
    return any(p.is_dir() and p.name.isdigit() for p in directory.iterdir())


def _root(directory) -> Path:
    """The checkpoint root: ``directory`` itself, or ``directory/checkpoints`` for an ``elsjax train`` run directory."""
    path = Path(directory)
    inner = path / RUN_SUBDIR
    if inner.is_dir() and not _has_steps(path):
        return inner
    return path


def _step_folders(root: Path) -> list[int]:
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()) if root.is_dir() else []


def steps(directory) -> list[int]:
    """The step folders in ``directory`` (a checkpoint root or a run directory), oldest first; [] if none.

    Example:
      >>> import tempfile, pathlib
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> for step in (1200, 300):
      ...     (root / "checkpoints" / str(step)).mkdir(parents=True)
      >>> steps(root)
      [300, 1200]
    """
    return _step_folders(_root(directory))


def latest_step(directory) -> int | None:
    """The newest complete step in ``directory`` (a checkpoint root or a run directory), or None if it holds none."""
    directory = _root(directory)
    if not directory.is_dir():
        return None
    with _manager(directory) as manager:
        return manager.latest_step()


def _unreadable(directory, step, err) -> ValueError:
    return ValueError(
        f"checkpoint: {Path(directory) / str(step)} is corrupted or unreadable ({type(err).__name__}: {err})"
    )


def _resolve_step(directory: Path, step):
    if step is None:
        step = latest_step(directory)
        if step is None:
            raise ValueError(
                f"checkpoint: no checkpoint in {directory} (expected step folders such as {directory}/1000/, "
                f"or an elsjax train run directory holding {RUN_SUBDIR}/)"
            )
        return step
    if not (directory / str(int(step))).is_dir():
        raise ValueError(f"checkpoint: {directory} has no step {step} (steps there: {_step_folders(directory)})")
    return int(step)


def read_meta(directory, step: int | None = None) -> dict:
    """The ``meta`` item of ``step`` (default: the newest) without loading any array.

    Args:
      directory: a checkpoint root, or an ``elsjax train`` run directory (its ``checkpoints/`` is used).
      step: which step; default the newest.

    Raises:
      ValueError: no checkpoint, or its metadata cannot be read.
    """
    import orbax.checkpoint as ocp

    directory = _root(directory)
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
        diff = {
            k: (saved.get(k), expected.get(k))
            for k in sorted(set(saved) | set(expected))
            if saved.get(k) != expected.get(k)
        }
        detail = ", ".join(f"{k}: saved {a!r}, expected {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"checkpoint: {directory} holds a different architecture ({detail})")


def _verify(step_dir: Path, item: str, recorded: dict, tree) -> None:
    """Raises ``ValueError`` naming ``step_dir/item`` and the first array whose content differs from ``recorded``."""
    arrays = recorded.get("arrays", [])
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    where = step_dir / item
    if len(leaves) != len(arrays):
        raise ValueError(
            f"checkpoint: {where} holds {len(leaves)} arrays but its recorded checksum lists {len(arrays)}; "
            "the checkpoint or its metadata is corrupted"
        )
    for (_, leaf), (name, dtype, shape, digest) in zip(leaves, arrays):
        array = _host_array(leaf)
        if str(array.dtype) != dtype:  # restored onto a target of another dtype: compare the saved values
            array = array.astype(dtype)
        if list(array.shape) != list(shape) or _array_digest(array) != digest:
            raise ValueError(
                f"checkpoint: {where} is corrupted: array {name!r} ({dtype} {list(shape)}) does not match the "
                f"sha256 recorded when step {step_dir.name} was saved; its data files under {where} have changed "
                "since. Restore the checkpoint from an intact copy"
            )


def _check_contents(directory: Path, step: int, meta: dict, trees: dict) -> None:
    recorded = meta.get("checksums")
    if not isinstance(recorded, dict):
        raise ValueError(
            f"checkpoint: {directory / str(step)} has no content checksums in its metadata, so its arrays cannot be "
            "verified; only verify=False (for forensics) loads it"
        )
    for item, tree in trees.items():
        if item not in recorded:
            raise ValueError(
                f"checkpoint: {directory / str(step)} records no checksum for {item!r}; its metadata is damaged"
            )
        _verify(directory / str(step), item, recorded[item], tree)


def _restore_items(directory, targets: dict, *, spec: dict, step, verify: bool):
    """Restores the items named in ``targets`` (item name -> target pytree) of ``step``: ``(trees, meta)``."""
    import orbax.checkpoint as ocp

    directory = _root(directory)
    step = _resolve_step(directory, step)
    meta = read_meta(directory, step)
    check_spec(meta["spec"], spec, directory)
    try:
        with _manager(directory) as manager:
            restored = manager.restore(
                step, args=ocp.args.Composite(**{k: ocp.args.StandardRestore(t) for k, t in targets.items()})
            )
        trees = {k: restored[k] for k in targets}
        jax.block_until_ready(trees)
    except Exception as err:
        raise _unreadable(directory, step, err) from err
    if verify:
        _check_contents(directory, step, meta, trees)
    return trees, meta


def restore(
    directory, params_target, train_target: Any = None, *, spec: dict, step: int | None = None, verify: bool = True
):
    """Restores ``(params, train_state, meta)`` of ``step`` (default: the newest) onto the given targets.

    Args:
      directory: the checkpoint root, or an ``elsjax train`` run directory (its ``checkpoints/`` is used).
      params_target: a pytree with the expected structure (arrays or ``jax.ShapeDtypeStruct``).
      train_target: the same for the training state; None skips it (and returns None for it).
      spec: the expected architecture; a checkpoint of another one is refused before any array is read.
      step: which step; default the newest.
      verify: compare the restored arrays with the checksums recorded at save time (False: for forensics only).

    Raises:
      ValueError: no checkpoint, another architecture, or a corrupted checkpoint (unreadable, or arrays that
        differ from the checksums recorded when it was saved).
    """
    targets = {"params": params_target}
    if train_target is not None:
        targets["train"] = train_target
    trees, meta = _restore_items(directory, targets, spec=spec, step=step, verify=verify)
    return trees["params"], trees.get("train"), meta


def has_ema(directory, step: int | None = None) -> bool:
    """Whether step ``step`` (default: the newest) holds EMA weights (a net trained with ``ema_decay > 0``)."""
    directory = _root(directory)
    return (directory / str(_resolve_step(directory, step)) / "ema").is_dir()


def _no_ema(directory, step) -> ValueError:
    directory = _root(directory)
    return ValueError(
        f"checkpoint: {directory / str(step)} holds no EMA weights (its net was trained with ema_decay 0); "
        "load its raw weights (weights='raw', net_weights=raw) or train with ema_decay > 0"
    )


def restore_ema(directory, target, *, spec: dict, step: int | None = None, verify: bool = True):
    """The EMA weights of ``step`` (default: the newest), restored onto ``target`` (the structure of ``params``).

    Raises:
      ValueError: as :func:`restore`, and a checkpoint that holds no EMA weights.
    """
    step = _resolve_step(_root(directory), step)
    if not has_ema(directory, step):
        raise _no_ema(directory, step)
    trees, _ = _restore_items(directory, {"ema": target}, spec=spec, step=step, verify=verify)
    return trees["ema"]


def load_net(directory, step: int | None = None, *, weights: str = "raw", verify: bool = True):
    """A trained net from its checkpoint alone: ``(eps_fn, params, meta)``, ready for
    :func:`elsjax.sampler.sample_net`. The architecture comes from the checkpoint's metadata.

    Args:
      directory: the checkpoint root, or an ``elsjax train`` run directory (its ``checkpoints/`` is used).
      step: which step; default the newest.
      weights: ``"raw"`` (the optimiser's weights, the paper's procedure) or ``"ema"`` (their exponential moving
        average, saved by a run with ``ema_decay > 0``). The returned ``meta["weights"]`` says which.
      verify: compare the parameters with the checksum recorded at save time (False: for forensics only).

    Raises:
      ValueError: no checkpoint, a corrupted one (the message names the step folder and the array), an unknown
        ``weights``, or ``weights="ema"`` for a checkpoint without EMA weights.
    """
    from elsjax import nets

    if weights not in WEIGHTS:
        raise ValueError(f"weights: expected one of {list(WEIGHTS)}, got {weights!r}")
    meta = read_meta(directory, step)
    if weights == "ema" and not has_ema(directory, meta["step"]):
        raise _no_ema(directory, meta["step"])
    eps_fn, target = nets.abstract_params(meta["spec"])
    if jax.process_count() > 1:
        # In a multi-process run (docs/scale_out.md) every process restores the whole net onto its own first device;
        # without a target sharding orbax would restore onto the saving process's device (another process's here).
        local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=local), target)
    if weights == "ema":
        params = restore_ema(directory, target, spec=meta["spec"], step=meta["step"], verify=verify)
    else:
        params, _, meta = restore(directory, target, spec=meta["spec"], step=meta["step"], verify=verify)
    return eps_fn, params, {**meta, "weights": weights}
