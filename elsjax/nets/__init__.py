"""Trained baselines as pure functions: build a net from a plain-dict spec, apply it as ``eps_fn``.

A net is two things: a static ``graphdef`` (its structure; hashable) and ``params`` (an ``nnx.State`` pytree of
arrays). :class:`NetEpsFn` wraps a graphdef into the ``eps_fn(params, x, t, y)`` (an :class:`elsjax.sampler.EpsFn`) that :func:`elsjax.sampler.sample_loop`
takes, so networks and score machines share one sampling loop. Equal specs give equal graphdefs, hence equal
``NetEpsFn`` objects and one compilation.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from elsjax import nets
    >>> spec = nets.spec("resnet", channels=1, width=8, num_layers=2, emb_dim=8)
    >>> eps_fn, params = nets.build(spec, key=jax.random.key(0))
    >>> eps_fn(params, jnp.zeros((2, 8, 8, 1)), jnp.array([0.5, 0.5]), None).shape
    (2, 8, 8, 1)
    >>> nets.param_count(nets.build(nets.spec("resnet", channels=1), key=jax.random.key(0))[1])  # the paper's
    4009473
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import nnx

from elsjax import paper
from elsjax.nets.resnet import PADDINGS, MinimalResNet
from elsjax.nets.unet import MinimalUNet
from elsjax.nets.unet_sa import SelfAttentionUNet

__all__ = [
    "ARCHITECTURES",
    "MinimalResNet",
    "MinimalUNet",
    "SelfAttentionUNet",
    "spec",
    "build",
    "abstract_params",
    "NetEpsFn",
    "param_count",
]

ARCHITECTURES = {"resnet": MinimalResNet, "unet": MinimalUNet, "unet_sa": SelfAttentionUNet}


# emb_dim per unit of width where the architecture ties the two (the default when only width is given).
_EMB_PER_WIDTH = {"resnet": 1, "unet_sa": 4}


def spec(arch: str, *, channels: int, num_classes: int = 0, **settings) -> dict:
    """A complete, JSON-serialisable architecture description (saved with every checkpoint).

    Args:
      arch: ``"resnet"``, ``"unet"`` or ``"unet_sa"`` (the paper's UNet with self-attention).
      channels: image channels.
      num_classes: 0 (unconditional) or the number of classes.
      **settings: ``width``, ``num_layers`` (ResNet blocks / UNet levels), ``emb_dim``, ``kernel_size``,
        ``last_kernel_size``, ``padding`` (``"zeros"`` or ``"circular"``; the UNets are zero-padded only). Missing
        ones are the paper's (:data:`elsjax.paper.NETS`), except that ``emb_dim`` follows ``width`` where the
        architecture ties them: the ResNet's equals ``width`` (its blocks add the embedding to the feature maps),
        the UNet+SA's is ``4 width`` (the layout's); ``emb_dim=0`` means that default too.

    Raises:
      ValueError: an unknown architecture, setting or padding.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    unknown = set(settings) - set(paper.NETS[arch])
    if unknown:
        raise ValueError(f"arch: unknown setting(s) {sorted(unknown)} for {arch}")
    settings = {key: value for key, value in settings.items() if not (key == "emb_dim" and not value)}
    if arch in _EMB_PER_WIDTH and "emb_dim" not in settings and "width" in settings:
        settings["emb_dim"] = _EMB_PER_WIDTH[arch] * int(settings["width"])
    out = {"arch": arch, "channels": int(channels), "num_classes": int(num_classes), **paper.NETS[arch], **settings}
    if out["padding"] not in PADDINGS:
        raise ValueError(f"padding: expected one of {sorted(PADDINGS)}, got {out['padding']!r}")
    if arch != "resnet" and out["padding"] != "zeros":
        raise ValueError(f"padding: the {arch} is zero-padded only (as in the reference)")
    for key in ("channels", "width", "num_layers", "emb_dim", "kernel_size", "last_kernel_size"):
        if int(out[key]) < 1:
            raise ValueError(f"{key}: expected a positive integer, got {out[key]}")
    return out


def _module(spec: dict, rngs: nnx.Rngs) -> nnx.Module:
    s = dict(spec)
    arch = s.pop("arch")
    channels = s.pop("channels")
    layers = s.pop("num_layers")
    if arch == "resnet":
        return MinimalResNet(channels, num_layers=layers, rngs=rngs, **s)
    s.pop("padding")
    return ARCHITECTURES[arch](channels, num_levels=layers, rngs=rngs, **s)


@dataclasses.dataclass(frozen=True)
class NetEpsFn:
    """The :class:`elsjax.sampler.EpsFn` of a Flax net with structure ``graphdef``: ``params`` are its weights.

    Hashable, so usable as a static argument of :func:`elsjax.sampler.sample_loop` and the training step.
    """

    graphdef: Any

    def __call__(self, params, x, t, y=None):
        return nnx.merge(self.graphdef, params)(x, t, y)


def build(spec: dict, *, key) -> tuple[NetEpsFn, nnx.State]:
    """Initialises a net (PyTorch's default initialisation). Returns ``(eps_fn, params)``."""
    graphdef, params = nnx.split(_module(spec, nnx.Rngs(params=key)))
    return NetEpsFn(graphdef), params


def abstract_params(spec: dict) -> tuple[NetEpsFn, nnx.State]:
    """Like :func:`build` but with ``jax.ShapeDtypeStruct`` leaves (no computation): a restore target."""
    graphdef, params = nnx.split(nnx.eval_shape(lambda: _module(spec, nnx.Rngs(params=0))))
    return NetEpsFn(graphdef), params


def param_count(params) -> int:
    """Number of scalar parameters."""
    return int(sum(x.size for x in jax.tree.leaves(params)))
