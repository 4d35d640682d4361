"""Niedoba et al.'s patch set posterior composite with square crops, PSPC-Square (docs/maths.md §12.5).

As the authors define it: every k x k crop that lies inside the image (top-left corner ``(i, j)``,
``0 <= i <= H - k``, ``0 <= j <= W - k``; no padding) has its own posterior over the training images' crops at the
**same position**,

    w_n(i, j) = softmax_n( -||x[crop_ij] - a phi_n[crop_ij]||^2 / (2 b^2) ),   (all channels of the crop)

and the composite at pixel p is the average, over the crops that contain p, of their posterior means at p:

    mu(p) = (1 / |C(p)|) sum_{crop in C(p)} sum_n w_n(crop) phi_n(p).

At ``k = H = W`` there is one crop, the whole image: PSPC is IS. The crop size k is any integer from 1 to
``min(H, W)`` (the authors' schedules use even sizes too).

elsjax computes it exactly in two streamed passes over chunks of training images, with no [crops x pixels] state:
the first keeps each crop's online log-sum-exp (running max and sum), the second adds, per training image, its
normalised crop weights ``exp(l - lse)`` summed over the crops that cover each pixel (a transposed box sum) times
the image, and those sums themselves (which add up to ``|C(p)|``). The crop distances are exact box sums of the
squared differences (no expansion), as LS's.

On a mesh the training images are split over ``"entries"`` (:class:`~elsjax.denoisers._tables.OnMesh`). Both
passes keep softmax states, merged exactly across the devices after each pass: the first pass's (no values) gives
every device the whole set's log-sum-exp of each crop; the second pass's has a common maximum of 0 (the weights
are normalised), so the merge is the sum of the devices' numerators and denominators.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
from jax import lax

from elsjax import noise, posterior, sharding
from elsjax.denoisers._base import register, static
from elsjax.denoisers._field import no_provenance
from elsjax.denoisers._tables import OnMesh
from elsjax.denoisers.local import Local

__all__ = ["PatchSetComposite", "crop_sums", "cover_sums"]

IMAGE_CHUNK = 64


def _box(v, k: int, pad: int):
    """k-long sums along each of the last two axes in turn (separable), each axis padded by ``pad`` zeros."""
    nd = v.ndim
    for axis in (nd - 2, nd - 1):
        window, pads = [1] * nd, [(0, 0)] * nd
        window[axis], pads[axis] = k, (pad, pad)
        v = lax.reduce_window(v, 0.0, lax.add, window, [1] * nd, pads)
    return v


def crop_sums(v, k: int):
    """Sums over every k x k crop inside the last two axes (valid windows): ``[..., H - k + 1, W - k + 1]``."""
    return _box(v, k, 0)


def cover_sums(u, k: int):
    """The adjoint of :func:`crop_sums`: at each pixel, the sum of ``u [..., L_h, L_w]`` over the crops that cover
    it, ``[..., L_h + k - 1, L_w + k - 1]``."""
    return _box(u, k, k - 1)


@register("pspc")
@dataclasses.dataclass(frozen=True)
class PatchSetComposite(OnMesh):
    """PSPC-Square: per-crop posteriors over the training crops at the same position, averaged per pixel.

    Attributes:
      tables: ``(ImageStack,)``, the training images in chunks.
      k: the crop size.
      image_shape: ``(H, W, C)``.
      mesh: None (one device), or the ``jax.sharding.Mesh`` the training images are split over.
    """

    tables: tuple
    k: int = static()
    image_shape: tuple[int, int, int] = static()
    mesh: Any = static(default=None)

    @classmethod
    def check_k(cls, name, k, image_shape):
        h, w = image_shape[:2]
        if k is None:
            raise ValueError(f"{name}: the {cls.name!r} denoiser needs a crop size k (1 <= k <= {min(h, w)})")
        if isinstance(k, bool) or not hasattr(k, "__index__") or not 1 <= int(k) <= min(h, w):
            raise ValueError(f"{name}: PSPC needs an integer crop size 1 <= k <= min(H, W) = {min(h, w)}, got {k!r}")
        return int(k)

    @classmethod
    def build(cls, images, k=None, *, chunk_size=None, mesh=None, **options) -> PatchSetComposite:
        mesh = sharding.check_mesh(mesh)
        tables = Local.image_tables(images, chunk_size=chunk_size or IMAGE_CHUNK, mesh=mesh)
        return cls(tables=tables, k=int(k), image_shape=tuple(images.shape[1:]), mesh=mesh)

    def accumulate(self, x, t, accumulator, combine=None):
        if not isinstance(accumulator, posterior.PosteriorMean):
            raise no_provenance(self.name)
        a, b = noise.signal_noise_std(t)
        k = self.k
        stack = self.tables[0]
        inv_two_var = (0.5 / (b * b))[:, None, None, None]
        a4 = a[:, None, None, None, None]
        merged = lambda state: state if combine is None else combine(state)

        def logits_of(images, log_w):  # [B, Nc, L_h, L_w]
            diff = x[:, None] - a4 * images[None]
            return -crop_sums(jnp.sum(diff * diff, axis=-1), k) * inv_two_var + log_w[None, :, None, None]

        def first(state, item):  # each crop's online log-sum-exp: a softmax state with no values
            logits = logits_of(*item)
            new = jnp.maximum(state.max, jnp.max(logits, axis=1))
            den = state.den * posterior.rescale(state.max, new) + jnp.sum(jnp.exp(logits - new[:, None]), axis=1)
            return posterior.SoftmaxState(new, state.num, den), None

        h, w = x.shape[1:3]
        crops = (x.shape[0], h - k + 1, w - k + 1)
        empty = posterior.SoftmaxState(jnp.full(crops, -jnp.inf), jnp.zeros(crops + (0,)), jnp.zeros(crops))
        state, _ = lax.scan(first, empty, (stack.images, stack.log_weights))
        state = merged(state)
        lse = state.max + jnp.log(state.den)

        def second(acc, item):  # per pixel: the crops' normalised weights covering it, and those times the image
            images, log_w = item
            covered = cover_sums(jnp.exp(logits_of(images, log_w) - lse[:, None]), k)  # [B, Nc, H, W], each <= |C|
            num = acc.num + jnp.einsum("bnhw,nhwc->bhwc", covered, images, precision=posterior.PRECISION)
            return posterior.SoftmaxState(acc.max, num, acc.den + jnp.sum(covered, axis=1)), None

        # The weights are normalised already (a common max of 0), so the den of a pixel sums to the number of crops
        # that cover it, and merging the devices' states sums their numerators and denominators.
        zero = jnp.zeros(x.shape[:3])
        state, _ = lax.scan(
            second, posterior.SoftmaxState(zero, jnp.zeros_like(x), zero), (stack.images, stack.log_weights)
        )
        state = merged(state)
        return state.num / state.den[..., None]

    @classmethod
    def memory_bound(cls, shape, k, itemsize: int) -> int:
        n, h, w, c = shape
        return n * (h * w * c * 4 + 4)
