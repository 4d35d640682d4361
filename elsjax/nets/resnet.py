"""``MinimalResNet``, the paper's "ResNet" (docs/maths.md §9.2): a stack of same-size residual convolutions.

``up`` (C -> width) -> L residual blocks ``h <- h + ReLU(conv_i(h + e_i))`` -> ``h + e_L`` -> ``down`` (width -> C),
with ``e_i = ReLU(GroupNorm(8)(Linear(emb)))`` one small MLP per block plus one for the output. No normalisation on
feature maps; zero or circular padding everywhere. With kernel 3 the receptive field is ``1 + 2 (L + 2)`` pixels
wide: 17 at the paper's ``L = 6``.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from elsjax.nets.resnet import MinimalResNet
    >>> net = MinimalResNet(1, width=8, num_layers=2, emb_dim=8, rngs=nnx.Rngs(0))
    >>> net(jnp.zeros((2, 8, 8, 1)), jnp.array([0.1, 0.9])).shape
    (2, 8, 8, 1)
"""

from __future__ import annotations

import jax
from flax import nnx

from elsjax.nets.embedding import Conv, Embedding, Linear

__all__ = ["MinimalResNet", "PADDINGS"]

# The reference's padding_mode names -> Flax's (circular = wrap-pad, then a VALID conv).
PADDINGS = {"zeros": "SAME", "circular": "CIRCULAR"}


class MinimalResNet(nnx.Module):
    """Predicts eps from ``(x [B, H, W, C], t [B], y [B] or None)``.

    Args:
      channels: image channels C.
      width: feature channels (256 in the paper).
      num_layers: residual blocks L (6 in the paper).
      emb_dim: embedding width E (256 in the paper; the blocks add it to width-channel maps, so E = width).
      kernel_size: kernel of ``up`` and the blocks (3).
      last_kernel_size: kernel of ``down`` (3).
      padding: ``"zeros"`` or ``"circular"``.
      num_classes: 0 for an unconditional net, else the number of classes.
      rngs: initialisation keys.
    """

    def __init__(
        self,
        channels: int,
        *,
        width: int = 256,
        num_layers: int = 6,
        emb_dim: int = 256,
        kernel_size: int = 3,
        last_kernel_size: int = 3,
        padding: str = "zeros",
        num_classes: int = 0,
        rngs: nnx.Rngs,
    ):
        if padding not in PADDINGS:
            raise ValueError(f"padding: expected one of {sorted(PADDINGS)}, got {padding!r}")
        if emb_dim != width:
            raise ValueError(
                f"emb_dim: the ResNet adds the embedding to its feature maps, so it must equal width ({width}), got {emb_dim}"
            )
        mode = PADDINGS[padding]
        self.embed = Embedding(emb_dim, num_classes, rngs=rngs)
        self.up = Conv(channels, width, kernel_size, padding=mode, rngs=rngs)
        self.mlps = nnx.List([_EmbeddingMLP(emb_dim, width, rngs=rngs) for _ in range(num_layers + 1)])
        self.convs = nnx.List([Conv(width, width, kernel_size, padding=mode, rngs=rngs) for _ in range(num_layers)])
        self.down = Conv(width, channels, last_kernel_size, padding=mode, rngs=rngs)

    def __call__(self, x, t, y=None):
        emb = self.embed(t, y)
        h = self.up(x)
        for mlp, conv in zip(self.mlps, self.convs):
            h = h + jax.nn.relu(conv(h + mlp(emb)[:, None, None, :]))
        return self.down(h + self.mlps[-1](emb)[:, None, None, :])


class _EmbeddingMLP(nnx.Module):
    """``ReLU(GroupNorm(8 groups, eps 1e-5, affine)(Linear(emb)))`` on the ``[B, E]`` embedding vector."""

    def __init__(self, emb_dim: int, width: int, *, rngs: nnx.Rngs):
        self.linear = Linear(emb_dim, width, rngs=rngs)
        self.norm = nnx.GroupNorm(width, num_groups=min(8, width), epsilon=1e-5, rngs=rngs)

    def __call__(self, emb):
        return jax.nn.relu(self.norm(self.linear(emb)))
