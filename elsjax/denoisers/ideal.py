"""The ideal score machine (IS): the exact posterior over whole training images (docs/maths.md §4.2)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from elsjax import noise, patches, posterior
from elsjax.denoisers._base import register
from elsjax.denoisers._tables import DictionaryDenoiser, here, located

__all__ = ["Ideal"]

IMAGE_CHUNK = 256  # images per streamed chunk


@register("ideal")
@dataclasses.dataclass(frozen=True)
class Ideal(DictionaryDenoiser):
    """IS: one dictionary of whole training images, queried with the whole image; it memorises the training set."""

    takes_k = False

    @classmethod
    def build_tables(cls, images, k, *, chunk_size, deduplicate, to_device, shape_bits, builder=None) -> tuple:
        return (
            patches.ideal_dictionary(
                images, chunk_size=chunk_size or IMAGE_CHUNK, deduplicate=deduplicate, to_device=to_device,
                shape_bits=shape_bits, builder=builder,
            ),
        )  # fmt: skip

    def accumulate(self, x, t, accumulator, combine=None):
        a, b = noise.signal_noise_std(t)
        n, h, w, _ = x.shape
        queries = posterior.augment_queries(x.reshape(n, -1), a, b)
        state = posterior.stream(queries, self.tables[0], accumulator=accumulator)
        out = accumulator.finalize(state if combine is None else combine(state))
        if not isinstance(out, tuple):
            return out.reshape(x.shape)
        spread = lambda v: jnp.broadcast_to(v[:, None, None], (n, h, w) + v.shape[1:])  # one query per image
        return (out[0].reshape(x.shape),) + tuple(spread(v) for v in out[1:])

    @classmethod
    def memory_bound(cls, shape, k, itemsize: int) -> int:
        n, h, w, c = shape
        return n * (2 * h * w * c * itemsize + 8)

    @classmethod
    def occurrence_tables(cls, images, k):
        return patches.ideal_occurrences(images)

    @classmethod
    def locate(cls, entry, tables, k, num_images: int):
        image, _, _, count = tables.locate(0, entry)
        row, col = here(entry)
        return located(image, row, col, count, image >= 0)

    @classmethod
    def occurrences(cls, train, k, pixel, image: int, position) -> np.ndarray:
        n = train.shape[0]
        bits = train.view(np.uint32).reshape(n, -1)
        same = np.flatnonzero((bits == bits[int(image)]).all(axis=1))
        r0, c0 = (int(v) for v in pixel)
        return np.stack([same, np.full_like(same, r0), np.full_like(same, c0)], axis=1).astype(np.int64)
