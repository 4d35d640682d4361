"""Time and class embedding shared by the trained baselines (docs/maths.md §9.1).

With ``E`` the embedding width and ``h = E / 2``: frequencies ``f_j = 10000^(-j / (h - 1))`` and
``emb(t) = [sin(t f), cos(t f)]``, with ``t`` in [0, 1] **not rescaled** (the reference's choice: the arguments
stay below 1 rad, so most features are nearly linear in t). A conditional net adds a learned class vector.

Example:
    >>> import jax.numpy as jnp
    >>> from elsjax.nets import embedding
    >>> e = embedding.sinusoidal(jnp.array([0.0, 0.5]), 8)
    >>> e.shape, e[0].tolist()
    ((2, 8), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["sinusoidal", "torch_uniform", "Embedding", "Linear", "Conv", "ConvTranspose"]


def sinusoidal(t, dim: int):
    """``[sin(t f_0..f_{h-1}), cos(t f_0..f_{h-1})]`` for ``t [B]``, float32 ``[B, dim]`` (``dim`` even, >= 4)."""
    if dim % 2 or dim < 4:
        raise ValueError(f"emb_dim: expected an even number >= 4, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
    args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def torch_uniform(fan_in: int):
    """PyTorch's default init for Linear/Conv weights and biases: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    (kaiming-uniform with ``a = sqrt(5)`` reduces to this bound; mirroring it keeps the training dynamics of the
    reference, which Flax's lecun-normal/zeros defaults would change.)
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def Linear(d_in: int, d_out: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """``nnx.Linear`` initialised as ``torch.nn.Linear``."""
    init = torch_uniform(d_in)
    return nnx.Linear(d_in, d_out, kernel_init=init, bias_init=init, rngs=rngs)


def Conv(c_in: int, c_out: int, k: int, *, padding: str = "SAME", rngs: nnx.Rngs) -> nnx.Conv:
    """``nnx.Conv`` (k x k, stride 1) initialised as ``torch.nn.Conv2d``; ``padding`` ``"SAME"`` or ``"CIRCULAR"``."""
    init = torch_uniform(c_in * k * k)
    return nnx.Conv(c_in, c_out, (k, k), padding=padding, kernel_init=init, bias_init=init, rngs=rngs)


def ConvTranspose(c_in: int, c_out: int, *, rngs: nnx.Rngs) -> nnx.ConvTranspose:
    """2x2, stride-2 transposed conv initialised as ``torch.nn.ConvTranspose2d`` (whose fan-in is ``c_out * 4``)."""
    init = torch_uniform(c_out * 4)
    return nnx.ConvTranspose(
        c_in, c_out, (2, 2), strides=(2, 2), padding="VALID", kernel_init=init, bias_init=init, rngs=rngs
    )


class Embedding(nnx.Module):
    """``emb(t) (+ class vector[y])``: the sinusoidal time embedding plus, if ``num_classes > 0``, a learned
    ``N(0, 1)``-initialised class embedding (``torch.nn.Embedding``)."""

    def __init__(self, dim: int, num_classes: int = 0, *, rngs: nnx.Rngs):
        sinusoidal(jnp.zeros((1,)), dim)  # validates dim
        self.dim = dim
        self.classes = (
            nnx.Embed(num_classes, dim, embedding_init=jax.nn.initializers.normal(1.0), rngs=rngs)
            if num_classes
            else None
        )

    def __call__(self, t, y=None):
        emb = sinusoidal(t, self.dim)
        if self.classes is not None:
            if y is None:
                raise ValueError("y: this network is class-conditional; pass one label per image")
            emb = emb + self.classes(jnp.asarray(y, jnp.int32))
        return emb
