"""``SelfAttentionUNet``, the paper's "UNet+SA" (docs/maths.md §9.5): the DDPM-style UNet with self-attention.

The paper's UNet+SA rows use the class-conditional CIFAR-10 ``UNet`` of VSehwag/minimal-diffusion (an improved /
guided-diffusion UNet). This is that layout, written here in Flax NNX, with every width proportional to ``width``
(64 in the paper) so that narrower copies train on a CPU:

* time embedding: the sinusoidal embedding of the integer timestep ``1000 t`` (``t = U{0..999}/1000`` in training,
  docs/maths.md §9.4, so the timesteps the layout was made for), ``width`` features ordered ``[cos, sin]`` with
  frequencies ``10000^(-j / (width/2))``, then ``Linear(width, E) -> SiLU -> Linear(E, E)`` with ``E = 4 width``
  (256); a conditional net adds a learned ``N(0, 1)`` class vector of ``E`` features;
* ``num_levels`` levels (4 in the paper) of channel multipliers ``1, 2, 2, 2`` (64, 128, 128, 128), each with 3
  residual blocks; self-attention after every residual block of every level but the coarsest (at 32, 16 and 8 px
  on a 32x32 image) and in the middle block (residual block, attention, residual block);
* encoder: a ``kernel_size`` convolution ``C -> width``, then per level 3 x (residual block [+ attention]) and,
  between levels, a residual block that down-samples (2x2 average pooling inside it); every output is kept as a skip;
* decoder: per level, coarsest first, 4 x (concatenate ``[h, skip]``, residual block [+ attention]), then, between
  levels, a residual block that up-samples (nearest neighbour);
* output: ``GroupNorm -> SiLU -> conv (last_kernel_size) -> C``;
* residual block (scale-shift conditioning): ``h = conv(SiLU(GN(x)))``; ``(s, b) = Linear(SiLU(emb))``;
  ``h = conv(SiLU(GN(h) (1 + s) + b))``; output ``skip(x) + h``, ``skip`` the identity or a 1x1 convolution when
  the channels change; the up/down-sampling blocks resample both paths after the first ``SiLU(GN(.))``;
* attention: ``x + proj(MHA(GN(x)))`` over the ``H W`` positions, q, k, v from one 1x1 projection (split into q, k,
  v first, then into heads), heads of ``width`` channels (64 in the paper: 1 head at 64 channels, 2 at 128),
  softmax of ``q.k / sqrt(head channels)``;
* group normalisation with ``width / 2`` groups (32 in the paper), eps 1e-5, affine.

Initialisation as PyTorch's defaults (:func:`elsjax.nets.embedding.torch_uniform`), with the reference's zeroed
layers: the second convolution of each residual block, each attention's output projection and the output
convolution start at zero (so the untrained net predicts 0). Differences from minimal-diffusion's training, which
elsjax does not reproduce: its dropout of 0.1 (elsjax's training step has no dropout; the layout has no parameters
for it), its EMA (available as ``ema_decay``) and its discrete schedule (elsjax trains every net with the paper's
recipe, docs/maths.md §9.4). At the paper's width the net has 14,419,651 parameters on CIFAR-10 (C = 3,
class-conditional), as minimal-diffusion's ``UNet(32, 3, 3, num_classes=10)``, and 14,414,785 with C = 1,
unconditional.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from elsjax.nets.unet_sa import SelfAttentionUNet
    >>> net = SelfAttentionUNet(1, width=2, num_levels=1, emb_dim=8, rngs=nnx.Rngs(0))  # tiny: one level
    >>> net(jnp.zeros((2, 4, 4, 1)), jnp.array([0.1, 0.9])).shape
    (2, 4, 4, 1)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from elsjax.nets.embedding import Conv, Linear

__all__ = ["SelfAttentionUNet", "RES_BLOCKS", "timestep_embedding", "attention"]

RES_BLOCKS = 3  # residual blocks per level (the decoder has one more, for the skip of the level's resampling)
TIMESTEPS = 1000  # the layout embeds integer timesteps 0..999: t in [0, 1] enters as 1000 t
QUERY_BLOCK = 128  # queries per block of the CPU attention (:func:`attention`)


def timestep_embedding(t, dim: int):
    """``[cos(1000 t f), sin(1000 t f)]`` with ``f_j = 10000^(-j / (dim/2))``, float32 ``[B, dim]`` (``dim`` even).

    Example:
      >>> timestep_embedding(jnp.array([0.0]), 4).tolist()
      [[1.0, 1.0, 0.0, 0.0]]
    """
    if dim % 2 or dim < 2:
        raise ValueError(f"width: the timestep embedding needs an even width, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    args = TIMESTEPS * jnp.asarray(t, jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def _attend(q, k, v):
    """``softmax(q k^T / sqrt(D)) v`` for ``[B, T, H, D]`` queries, keys and values (heads apart)."""
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (q.shape[-1] ** -0.5)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)


def attention(q, k, v):
    """Multi-head self-attention of ``[B, T, H, D]`` queries, keys and values: ``softmax(q k^T / sqrt(D)) v``.

    On a CPU with more than :data:`QUERY_BLOCK` positions it runs image by image and, within an image, block by block
    of queries against all keys, each block's weights recomputed in the backward pass rather than stored: the same
    values, about 4x faster on XLA:CPU at 32x32 (the whole ``[B, H, 1024, 1024]`` weights of a batch are too large
    for its caches), where the 32-px attention dominates a training step. Elsewhere, all at once.
    """
    b, t, h, d = q.shape
    if jax.default_backend() != "cpu" or t <= QUERY_BLOCK or t % QUERY_BLOCK:
        return _attend(q, k, v)
    block = jax.checkpoint(_attend)

    def image(qkv):
        qi, ki, vi = (z[None] for z in qkv)
        blocks = qi.reshape(1, t // QUERY_BLOCK, QUERY_BLOCK, h, d).transpose(1, 0, 2, 3, 4)
        return jax.lax.map(lambda qb: block(qb, ki, vi), blocks).reshape(t, h, d)

    return jax.lax.map(image, (q, k, v))


def _zero(module):
    """The reference's ``zero_module``: a layer whose kernel and bias start at zero."""
    module.kernel[...] = jnp.zeros_like(module.kernel[...])
    module.bias[...] = jnp.zeros_like(module.bias[...])
    return module


def _norm(channels: int, groups: int, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(channels, num_groups=groups, epsilon=1e-5, rngs=rngs)


def _resample(h, mode: str | None):
    if mode == "down":
        return nnx.avg_pool(h, (2, 2), strides=(2, 2))
    if mode == "up":
        return jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
    return h


class _ResBlock(nnx.Module):
    """``skip(x) + conv2(SiLU(GN2(h) (1 + s) + b))``, ``h = conv1(SiLU(GN1(x)))``; optionally down/up-sampling."""

    def __init__(self, c_in, c_out, emb_dim, kernel_size, groups, *, resample=None, rngs):
        self.resample = resample
        self.norm1 = _norm(c_in, groups, rngs)
        self.conv1 = Conv(c_in, c_out, kernel_size, rngs=rngs)
        self.emb = Linear(emb_dim, 2 * c_out, rngs=rngs)
        self.norm2 = _norm(c_out, groups, rngs)
        self.conv2 = _zero(Conv(c_out, c_out, kernel_size, rngs=rngs))
        self.skip = Conv(c_in, c_out, 1, rngs=rngs) if c_in != c_out else None

    def __call__(self, x, emb):
        h = _resample(jax.nn.silu(self.norm1(x)), self.resample)
        x = _resample(x, self.resample)
        h = self.conv1(h)
        scale, shift = jnp.split(self.emb(jax.nn.silu(emb))[:, None, None, :], 2, axis=-1)
        h = self.conv2(jax.nn.silu(self.norm2(h) * (1 + scale) + shift))
        return (x if self.skip is None else self.skip(x)) + h


class _Attention(nnx.Module):
    """``x + proj(multi-head self-attention(GN(x)))`` over the image's positions."""

    def __init__(self, channels, head_channels, groups, *, rngs):
        if channels % head_channels:
            raise ValueError(f"width: {channels} channels do not split into heads of {head_channels}")
        self.heads = channels // head_channels
        self.norm = _norm(channels, groups, rngs)
        self.qkv = Linear(channels, 3 * channels, rngs=rngs)  # the reference's 1x1 Conv1d
        self.proj = _zero(Linear(channels, channels, rngs=rngs))

    def __call__(self, x):
        b, height, width, c = x.shape
        q, k, v = jnp.split(self.qkv(self.norm(x)).reshape(b, height * width, 3 * c), 3, axis=-1)
        heads = [z.reshape(b, height * width, self.heads, c // self.heads) for z in (q, k, v)]
        h = attention(*heads).reshape(b, height, width, c)
        return x + self.proj(h)


class _Step(nnx.Module):
    """A residual block, then attention (if any), then another residual block (if any: the middle block's second,
    or the up-sampling one that ends a decoder level)."""

    def __init__(self, res, attn=None, after=None):
        self.res, self.attn, self.after = res, attn, after

    def __call__(self, h, emb):
        h = self.res(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        return h if self.after is None else self.after(h, emb)


class SelfAttentionUNet(nnx.Module):
    """Predicts eps from ``(x [B, H, W, C], t [B], y [B] or None)``.

    Args:
      channels: image channels C.
      width: base channels (64 in the paper); levels have ``width * (1, 2, 2, 2, ...)``, attention heads ``width``
        channels, group norms ``width / 2`` groups; an even number.
      num_levels: resolution levels (4 in the paper: 32, 16, 8 and 4 px on a 32x32 image); attention at all but the
        coarsest.
      emb_dim: embedding width E (``4 width``: 256 in the paper).
      kernel_size: kernel of the input and residual-block convolutions (3).
      last_kernel_size: kernel of the output convolution (3).
      num_classes: 0 for an unconditional net, else the number of classes.
      rngs: initialisation keys.
    """

    def __init__(
        self,
        channels: int,
        *,
        width: int = 64,
        num_levels: int = 4,
        emb_dim: int = 256,
        kernel_size: int = 3,
        last_kernel_size: int = 3,
        num_classes: int = 0,
        rngs: nnx.Rngs,
    ):
        if num_levels < 1:
            raise ValueError(f"num_layers: the UNet+SA needs at least one level, got {num_levels}")
        if width % 2:
            raise ValueError(
                f"width: the UNet+SA needs an even width (its group norms have width/2 groups), got {width}"
            )
        self.width, self.num_levels = width, num_levels
        groups, heads = width // 2, width
        sizes = [width * (1 if i == 0 else 2) for i in range(num_levels)]
        attends = [i < num_levels - 1 for i in range(num_levels)]

        def res(c_in, c_out, resample=None):
            return _ResBlock(c_in, c_out, emb_dim, kernel_size, groups, resample=resample, rngs=rngs)

        def attn(c, on=True):
            return _Attention(c, heads, groups, rngs=rngs) if on else None

        self.time1 = Linear(width, emb_dim, rngs=rngs)
        self.time2 = Linear(emb_dim, emb_dim, rngs=rngs)
        self.classes = (
            nnx.Embed(num_classes, emb_dim, embedding_init=jax.nn.initializers.normal(1.0), rngs=rngs)
            if num_classes
            else None
        )
        self.input = Conv(channels, width, kernel_size, rngs=rngs)
        encoder, skips, ch = [], [width], width
        for level, size in enumerate(sizes):
            for _ in range(RES_BLOCKS):
                encoder.append(_Step(res(ch, size), attn(size, attends[level])))
                ch = size
                skips.append(ch)
            if level < num_levels - 1:
                encoder.append(_Step(res(ch, ch, "down")))
                skips.append(ch)
        self.encoder = nnx.List(encoder)
        self.middle = _Step(res(ch, ch), attn(ch), res(ch, ch))
        decoder = []
        for level in reversed(range(num_levels)):
            for i in range(RES_BLOCKS + 1):
                c_in = ch + skips.pop()
                ch = sizes[level]
                up = res(ch, ch, "up") if level and i == RES_BLOCKS else None
                decoder.append(_Step(res(c_in, ch), attn(ch, attends[level]), up))
        self.decoder = nnx.List(decoder)
        self.out_norm = _norm(ch, groups, rngs)
        self.out = _zero(Conv(ch, channels, last_kernel_size, rngs=rngs))

    def __call__(self, x, t, y=None):
        factor = 2 ** (self.num_levels - 1)
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(f"x: image side {x.shape[1:3]} must be divisible by {factor} for {self.num_levels} levels")
        emb = self.time2(jax.nn.silu(self.time1(timestep_embedding(t, self.width))))
        if self.classes is not None:
            if y is None:
                raise ValueError("y: this network is class-conditional; pass one label per image")
            emb = emb + self.classes(jnp.asarray(y, jnp.int32))
        h = self.input(x)
        skips = [h]
        for step in self.encoder:
            h = step(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for step in self.decoder:
            h = step(jnp.concatenate([h, skips.pop()], axis=-1), emb)
        return self.out(jax.nn.silu(self.out_norm(h)))
