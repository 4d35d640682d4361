"""PNG grids take uint8 only: a float image would be cast to uint8 without a word (-0.5 -> 0, 0.9 -> 0)."""

import numpy as np
import pytest

from elsjax import images


def test_grid_tiles_uint8_images():
    x = np.arange(2 * 2 * 2, dtype=np.uint8).reshape(2, 2, 2, 1)
    out = images.grid(x, columns=2, pad=1, fill=9)
    assert out.shape == (4, 7, 1) and out[1:3, 1:3, 0].tolist() == [[0, 1], [2, 3]] and out[0, 0, 0] == 9


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_grid_refuses_other_dtypes_and_says_how_to_convert(dtype):
    with pytest.raises(ValueError, match=r"images: expected uint8, got .*images\.to_uint8\(x\) first"):
        images.grid(np.zeros((2, 4, 4, 1), dtype), columns=2)


def test_grid_refuses_a_single_image():
    with pytest.raises(ValueError, match=r"images: expected \[N, H, W, C\], got shape \(4, 4, 1\)"):
        images.grid(np.zeros((4, 4, 1), np.uint8), columns=2)
