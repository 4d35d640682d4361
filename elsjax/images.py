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

__all__ = ["to_uint8", "grid", "save_png", "line_plot"]


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
      images: uint8 ``[N, H, W, C]`` (float images in [-1, 1] go through :func:`to_uint8` first).
      columns: images per row.
      pad: pixels between images and around the border.
      fill: value of the padding.

    Raises:
      ValueError: ``images`` is not uint8 (a cast would wrap [-1, 1] floats to 0 and 255 without a word) or
        not ``[N, H, W, C]``.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"images: expected uint8, got {images.dtype}; convert float images in [-1, 1] with images.to_uint8(x) first"
        )
    if images.ndim != 4:
        raise ValueError(f"images: expected [N, H, W, C], got shape {images.shape}")
    n, h, w, c = images.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), fill, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[top : top + h, left : left + w] = image
    return out


def save_png(path, image: np.ndarray, *, scale: int = 1) -> Path:
    """Saves a uint8 ``[H, W, C]`` image (C = 1 or 3) as PNG, upscaled ``scale`` times (nearest neighbour); atomically
    (:mod:`elsjax.atomic`)."""
    from PIL import Image

    from elsjax import atomic

    image = np.asarray(image, np.uint8)
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    with atomic.writing(path) as f:
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(f, format="PNG")
    return path


def line_plot(values, *, title: str = "", size=(640, 400), smooth: int = 0) -> np.ndarray:
    """A uint8 ``[H, W, 3]`` plot of positive ``values`` against their index (1-based), log-scale y.

    Raw values are drawn in grey and a moving average (``smooth`` points; default 1% of them, at least 5 and at most
    half of them) in blue, named in a key at the top right. Drawn with PIL, to keep plotting libraries out of the
    dependencies.

    Example:
      >>> line_plot([1.0, 0.5, 0.25], title="loss").shape
      (400, 640, 3)
    """
    from PIL import Image, ImageDraw

    v = np.log10(np.maximum(np.asarray(values, np.float64), 1e-12))
    n = len(v)
    smooth = smooth or max(1, min(max(5, n // 100), n // 2))
    avg = np.convolve(v, np.ones(smooth) / smooth, mode="valid") if n >= smooth else v
    width, height = size
    left, right, top, bottom = 70, 20, 30, 40
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)

    def xy(i, value):
        x = left + (width - left - right) * (i / max(n - 1, 1))
        return x, top + (height - top - bottom) * (hi - value) / (hi - lo)

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for frac in np.linspace(0, 1, 5):  # y ticks: values, not logs
        value = lo + (hi - lo) * frac
        y = xy(0, value)[1]
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((4, y - 6), f"{10**value:.3g}", fill="black")
    for frac in np.linspace(0, 1, 5):
        i = frac * (n - 1)
        x = xy(i, lo)[0]
        draw.line([x, height - bottom, x, height - bottom + 4], fill="black")
        draw.text((x - 12, height - bottom + 8), f"{int(round(i)) + 1}", fill="black")
    draw.text((left, 8), title, fill="black")
    draw.text((width - right - 30, height - 14), "step", fill="black")
    if n > 1:
        draw.line([xy(i, value) for i, value in enumerate(v)], fill=(190, 190, 190))
        offset = (smooth - 1) / 2 if n >= smooth else 0
        if len(avg) > 1:
            draw.line([xy(i + offset, value) for i, value in enumerate(avg)], fill=(31, 119, 180), width=2)
        key_x = width - right - 190
        draw.line([key_x, 12, key_x + 20, 12], fill=(190, 190, 190), width=2)
        draw.text((key_x + 26, 6), "every step", fill="black")
        if smooth > 1:
            draw.line([key_x + 95, 12, key_x + 115, 12], fill=(31, 119, 180), width=2)
            draw.text((key_x + 121, 6), f"mean of {smooth}", fill="black")
    return np.asarray(image)
