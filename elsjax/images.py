"""Images in [-1, 1] to PNG grids.

Example:
    >>> import numpy as np
    >>> from elsjax import images
    >>> x = np.zeros((3, 4, 4, 1), np.float32)
    >>> images.grid(images.to_uint8(x), columns=2, pad=1).shape
    (11, 11, 1)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["to_uint8", "grid", "save_png"]


def to_uint8(x) -> np.ndarray:
    """Float images in [-1, 1] (values outside are clipped) to uint8 ``round((x + 1) * 127.5)``.

    Example:
      >>> to_uint8(np.array([-1.0, 0.0, 1.0, 3.0])).tolist()
      [0, 128, 255, 255]
    """
    u = (np.clip(np.asarray(x, np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.floor(u + 0.5).astype(np.uint8)


def grid(images, *, columns: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tiles uint8 images ``[N, H, W, C]`` row by row into one ``[rows*(H+pad)+pad, ...]`` image.

    Args:
      images: uint8 ``[N, H, W, C]``.
      columns: images per row.
      pad: pixels between images and around the border.
      fill: value of the padding.
    """
    images = np.asarray(images, np.uint8)
    n, h, w, c = images.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), fill, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[top : top + h, left : left + w] = image
    return out


def save_png(path, image: np.ndarray, *, scale: int = 1) -> Path:
    """Saves a uint8 ``[H, W, C]`` image (C = 1 or 3) as PNG, upscaled ``scale`` times (nearest neighbour)."""
    from PIL import Image

    image = np.asarray(image, np.uint8)
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
    return path
