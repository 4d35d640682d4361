"""``MinimalUNet``, the paper's "UNet" (docs/maths.md §9.3): an encoder-decoder with skip connections, no normalisation.

Feature widths ``width * 2^i`` for ``i < num_levels`` ([64, 128, 256] in the paper). Each ``UBlock(in -> out)`` adds
``Linear(ReLU(emb))`` to its input channels, then conv -> ReLU -> conv -> ReLU, with **no residual connection**
(the reference's code, although the paper says otherwise). Down-sampling by 2x2 max-pooling, up-sampling by 2x2
stride-2 transposed convolutions, skips concatenated as ``[skip, up]``. The image side must be divisible by
``2^(num_levels - 1)``. The receptive field covers the whole 32x32 image.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from elsjax.nets.unet import MinimalUNet
    >>> net = MinimalUNet(1, width=4, num_levels=2, emb_dim=8, rngs=nnx.Rngs(0))
    >>> net(jnp.zeros((2, 8, 8, 1)), jnp.array([0.1, 0.9])).shape
    (2, 8, 8, 1)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from elsjax.nets.embedding import Conv, ConvTranspose, Embedding, Linear

__all__ = ["MinimalUNet"]


class MinimalUNet(nnx.Module):
    """Predicts eps from ``(x [B, H, W, C], t [B], y [B] or None)``.

    Args:
      channels: image channels C.
      width: channels of the first level (64 in the paper); level i has ``width * 2^i``.
      num_levels: levels including the bottleneck (3 in the paper).
      emb_dim: embedding width E (256 in the paper).
      kernel_size: kernel of the block convolutions (3).
      last_kernel_size: kernel of the output convolution (3).
      num_classes: 0 for an unconditional net, else the number of classes.
      rngs: initialisation keys.
    """

    def __init__(
        self,
        channels: int,
        *,
        width: int = 64,
        num_levels: int = 3,
        emb_dim: int = 256,
        kernel_size: int = 3,
        last_kernel_size: int = 3,
        num_classes: int = 0,
        rngs: nnx.Rngs,
    ):
        if num_levels < 1:
            raise ValueError(f"num_layers: the UNet needs at least one level, got {num_levels}")
        sizes = [width * 2**i for i in range(num_levels)]
        self.num_levels = num_levels
        self.embed = Embedding(emb_dim, num_classes, rngs=rngs)
        ins = [channels] + sizes[:-1]
        self.encoder = nnx.List([_UBlock(i, o, emb_dim, kernel_size, rngs=rngs) for i, o in zip(ins, sizes)])
        self.ups = nnx.List([ConvTranspose(sizes[i + 1], sizes[i], rngs=rngs) for i in reversed(range(num_levels - 1))])
        self.decoder = nnx.List(
            [_UBlock(2 * sizes[i], sizes[i], emb_dim, kernel_size, rngs=rngs) for i in reversed(range(num_levels - 1))]
        )
        self.out_proj = Linear(emb_dim, sizes[0], rngs=rngs)
        self.out = Conv(sizes[0], channels, last_kernel_size, rngs=rngs)

    def __call__(self, x, t, y=None):
        factor = 2 ** (self.num_levels - 1)
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(f"x: image side {x.shape[1:3]} must be divisible by {factor} for {self.num_levels} levels")
        emb = self.embed(t, y)
        skips = []
        h = x
        for level, block in enumerate(self.encoder):
            h = block(h, emb)
            if level < self.num_levels - 1:
                skips.append(h)
                h = nnx.max_pool(h, (2, 2), strides=(2, 2))
        for up, block in zip(self.ups, self.decoder):
            h = block(jnp.concatenate([skips.pop(), up(h)], axis=-1), emb)
        return self.out(h + self.out_proj(jax.nn.relu(emb))[:, None, None, :])


class _UBlock(nnx.Module):
    """``x + Linear(ReLU(emb))`` -> conv -> ReLU -> conv -> ReLU (no residual, as in the reference)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, kernel_size: int, *, rngs: nnx.Rngs):
        self.proj = Linear(emb_dim, c_in, rngs=rngs)
        self.conv1 = Conv(c_in, c_out, kernel_size, rngs=rngs)
        self.conv2 = Conv(c_out, c_out, kernel_size, rngs=rngs)

    def __call__(self, x, emb):
        h = x + self.proj(jax.nn.relu(emb))[:, None, None, :]
        return jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(h))))
