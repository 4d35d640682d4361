"""The local score machine (LS): per pixel, the patches of the training images at the same pixel
(docs/maths.md §4.3)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import noise, posterior
from elsjax.denoisers._base import register
from elsjax.denoisers._tables import DictionaryDenoiser, here, located, per_pixel
from elsjax.patches import PAD_LOG_WEIGHT, ImageStack

__all__ = ["Local", "window_sum"]

IMAGE_CHUNK = 64  # images per chunk (the logits of a chunk are [B, chunk, H, W])


@register("ls")
@dataclasses.dataclass(frozen=True)
class Local(DictionaryDenoiser):
    """LS: each pixel's posterior over the training images' k x k patches (zero-padded) at that same pixel.

    Its exact logits come from box-summing the squared-difference map (no expansion, so no cancellation); an entry
    is a training image (its patch at the query pixel).
    """

    cacheable = False  # an image stack: nothing to build but a reshape

    @classmethod
    def image_tables(cls, images, *, chunk_size: int | None, mesh) -> tuple:
        """The training images ``[N, H, W, C]`` in chunks as LS streams them, ``(ImageStack,)``: on the device, or
        split over the ``"entries"`` of ``mesh`` (:meth:`OnMesh.place`). PCA-locality and PSPC stream the same."""
        tables = cls.build_tables(images, None, chunk_size=chunk_size, deduplicate=False, to_device=mesh is None,
                                  shape_bits=None)  # fmt: skip
        return cls.place(tables, mesh)

    @classmethod
    def build_tables(cls, images, k, *, chunk_size, deduplicate, to_device, shape_bits, builder=None) -> tuple:
        n = images.shape[0]
        chunk = min(chunk_size or IMAGE_CHUNK, n)
        n_chunks = -(-n // chunk)
        pad = n_chunks * chunk - n
        log_w = np.concatenate([np.zeros(n), np.full(pad, PAD_LOG_WEIGHT)]).astype(np.float32)
        images = np.pad(images, ((0, pad), (0, 0), (0, 0), (0, 0)))
        put = jnp.asarray if to_device else np.asarray
        stack = put(images.reshape((n_chunks, chunk) + images.shape[1:]))
        return (ImageStack(stack, put(log_w.reshape(n_chunks, chunk))),)

    def accumulate(self, x, t, accumulator, combine=None):
        a, b = noise.signal_noise_std(t)
        n_img, h, w, c = x.shape
        inv_two_var = 0.5 / (b * b)
        stack = self.tables[0]
        chunk = stack.images.shape[1]

        def body(state, item):
            i, (images, log_w) = item  # [Nc, H, W, C], [Nc]
            n_chunk = images.shape[0]
            diff = x[:, None] - a[:, None, None, None, None] * images[None]
            logits = -window_sum(jnp.sum(diff * diff, axis=-1), self.k) * inv_two_var[:, None, None, None]
            logits = logits + log_w[None, :, None, None]  # [B, Nc, H, W]
            logits = logits.transpose(0, 2, 3, 1).reshape(n_img * h * w, n_chunk)
            values = images.reshape(n_chunk, h * w, c)

            def weighted_sum(p):
                p = p.reshape(n_img, h * w, n_chunk)
                return jnp.einsum("bpn,npc->bpc", p, values, precision=posterior.PRECISION).reshape(-1, c)

            return accumulator.update(state, posterior.Chunk(logits, weighted_sum, log_w, i * chunk)), None

        state = accumulator.init(n_img * h * w, c)
        items = (jnp.arange(stack.images.shape[0], dtype=jnp.int32), (stack.images, stack.log_weights))
        state, _ = lax.scan(body, state, items)
        return per_pixel(accumulator.finalize(state if combine is None else combine(state)), n_img, h, w)

    @classmethod
    def memory_bound(cls, shape, k, itemsize: int) -> int:
        n, h, w, c = shape
        return n * (h * w * c * 4 + 4)

    @classmethod
    def occurrence_tables(cls, images, k):
        return None

    @classmethod
    def locate(cls, entry, tables, k, num_images: int):
        row, col = here(entry)
        return located(entry, row, col, np.ones_like(entry), (entry >= 0) & (entry < num_images))

    @classmethod
    def occurrences(cls, train, k, pixel, image: int, position) -> np.ndarray:
        return np.array([[int(image), int(pixel[0]), int(pixel[1])]], np.int64)


def window_sum(v, k: int):
    """Zero-padded k x k box sum over the last two axes (separable: rows, then columns)."""
    d = k // 2
    nd = v.ndim
    for axis in (nd - 2, nd - 1):
        window = [1] * nd
        window[axis] = k
        pads = [(0, 0)] * nd
        pads[axis] = (d, d)
        v = lax.reduce_window(v, 0.0, lax.add, window, [1] * nd, pads)
    return v
