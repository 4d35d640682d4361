"""The trained net a calibration or an evaluation studies, and the training set its machines are built on.

The paper's machines are built on the net's own training set; a checkpoint written by ``elsjax train`` records
the config it was trained with, so the same images are loaded again from it (:func:`load`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import ml_collections

from elsjax import checkpoint, data
from elsjax import config as config_lib

__all__ = ["NetAndData", "load", "check_given"]


class NetAndData(NamedTuple):
    """A net and its data: ``eps_fn``, ``params``, the checkpoint's ``meta``, the training ``dataset``."""

    eps_fn: Any
    params: Any
    meta: dict
    dataset: data.Dataset

    @property
    def conditional(self) -> bool:
        return int(self.meta["spec"].get("num_classes", 0)) > 0

    @property
    def padding(self) -> str:
        return self.meta["spec"].get("padding", "zeros")

    def describe(self, path) -> dict:
        """What a record says about the net: where it is, its architecture, its training budget."""
        train_cfg = self.meta.get("config") or {}
        return {
            "path": str(path),
            "step": int(self.meta["step"]),
            "spec": self.meta["spec"],
            "train_steps": train_cfg.get("num_steps"),
            "batch_size": train_cfg.get("batch_size"),
            "conditional": self.conditional,
            "weights": self.meta.get("weights", "raw"),
            "ema_decay": train_cfg.get("ema_decay", 0.0),
        }

    def part_tag(self, cfg) -> dict:
        """What a job's parts (:mod:`elsjax.parts`) record of this net and its data, from the job's config: the
        net's path and step, the training set's ``limit``, and the weights unless raw."""
        tag = {"net": str(cfg.net), "net_step": int(self.meta["step"]), "limit": cfg.limit}
        if cfg.net_weights != "raw":  # (parts saved before the field existed are the raw weights')
            tag["net_weights"] = cfg.net_weights
        return tag


def check_given(net, step: int = 0) -> None:
    """The cheap checks of :func:`load`, before a job starts: a net is named, exists, and the step is valid."""
    from pathlib import Path

    if not net:
        raise ValueError("net: give the trained net (a checkpoint folder or an `elsjax train` run directory)")
    if not Path(net).exists():
        raise ValueError(f"net: {net} does not exist (give a checkpoint folder or an `elsjax train` run directory)")
    if step < 0:
        raise ValueError(f"net_step: expected 0 (the newest checkpoint) or a step, got {step}")


def load(net, *, step: int = 0, limit: int = 0, weights: str = "raw") -> NetAndData:
    """Loads a net (checkpoint folder or ``elsjax train`` run directory) and its training set.

    Args:
      net: the checkpoint or run directory.
      step: which checkpoint step (0: the newest).
      limit: 0 for the net's own training subset; N for the first N images of the net's split instead.
      weights: ``"raw"`` or ``"ema"`` (:func:`elsjax.checkpoint.load_net`).

    Raises:
      ValueError: no net given, no checkpoint there, a corrupted one, or a checkpoint with no recorded config.
    """
    if not net:
        raise ValueError("net: give the trained net (a checkpoint folder or an `elsjax train` run directory)")
    if step < 0:
        raise ValueError(f"net_step: expected 0 (the newest checkpoint) or a step, got {step}")
    eps_fn, params, meta = checkpoint.load_net(net, step or None, weights=weights)
    train_cfg = meta.get("config")
    if not train_cfg or "dataset" not in train_cfg:
        raise ValueError(f"net: the checkpoint in {net} records no training config, so its training set is unknown")
    if limit < 0:
        raise ValueError(f"limit: expected 0 (the net's training set) or a positive integer, got {limit}")
    cfg = ml_collections.ConfigDict(train_cfg)
    if limit:
        cfg.limit = limit
    dataset = data.load(cfg.dataset, **config_lib.data_options(cfg))
    return NetAndData(eps_fn, params, meta, dataset)
