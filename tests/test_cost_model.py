"""The cost model's work counts (experiments/cost_model.py) against brute counts, and its predictions' scaling."""

import numpy as np
import pytest
from experiment_scripts import load

from elsjax import denoisers

cost_model = load("cost_model")


def tiny_images(n=6, h=9, w=8):
    """8-bit images with many repeated patches (mostly zeros), so that deduplication matters."""
    rng = np.random.default_rng(0)
    codes = np.where(rng.uniform(size=(n, h, w, 1)) < 0.7, 0, rng.integers(0, 4, (n, h, w, 1)) * 60)
    return (codes * np.float32(2 / 255) - 1).astype(np.float32)


def brute_distinct_pairs(kind, images, k):
    """Sum over query pixels of the distinct zero-padded training patches its dictionary holds, from the definition
    (docs/maths.md §4.4-4.5): ELS every valid patch; bbELS, per coordinate, the patches centred at that coordinate
    when it lies in a border band, else at any interior coordinate."""
    n, h, w, _ = images.shape
    d = k // 2
    padded = np.pad(images - images.min() + 1, ((0, 0), (d, d), (d, d), (0, 0)))  # padding distinct from any pixel
    patch = lambda i, r, c: padded[i, r : r + k, c : c + k].tobytes()
    interior_r, interior_c = range(d, h - d), range(d, w - d)
    total = 0
    for r in range(h):
        for c in range(w):
            if kind == "els":
                rows, cols = interior_r, interior_c
            else:
                rows = [r] if (r < d or r >= h - d) else interior_r
                cols = [c] if (c < d or c >= w - d) else interior_c
            total += len({patch(i, rr, cc) for i in range(n) for rr in rows for cc in cols})
    return total


@pytest.mark.parametrize("kind", ["els", "bbels"])
@pytest.mark.parametrize("k", [3, 5])
def test_pair_counts_equal_brute_counts(kind, k):
    images = tiny_images()
    shape = images.shape[1:]
    tabs = cost_model.tables(kind, k, shape, images=images, chunk=16)
    w = cost_model.work(kind, k, shape, tabs, len(images))
    assert w.distinct_pairs == brute_distinct_pairs(kind, images, k)
    assert w.dim == k * k + 2
    # Executed pairs: what the built machine streams, its tables' padded entries times each group's queries.
    for shape_bits in (None, 4):
        machine = denoisers.build(kind, images, k, chunk_size=16, shape_bits=shape_bits)
        regions = denoisers.get(kind).regions(*shape[:2], k)
        streamed = sum(r.pixels.size * t.keys.shape[-3] * t.keys.shape[-2] for r, t in zip(regions, machine.tables))
        assert cost_model.work(kind, k, shape, tabs, len(images), shape_bits=shape_bits).executed_pairs == streamed
    # Without measured fractions every patch counts as distinct: the nominal count, an upper bound.
    nominal = cost_model.work(kind, k, shape, cost_model.tables(kind, k, shape, chunk=16), len(images))
    assert nominal.distinct_pairs >= w.distinct_pairs
    assert k > 3 or nominal.distinct_pairs > w.distinct_pairs  # these images repeat 3x3 patches


def test_ls_and_ideal_counts():
    images = tiny_images()
    images[3] = images[1]  # a repeated image: IS keeps it once, LS streams it twice
    shape = images.shape[1:]
    ls = cost_model.work("ls", 3, shape, cost_model.tables("ls", 3, shape, chunk=0), len(images))
    assert ls.distinct_pairs == ls.executed_pairs == 9 * 8 * len(images)
    ideal = cost_model.work("ideal", 0, shape, cost_model.tables("ideal", 0, shape, images=images, chunk=0), 6)
    assert ideal.distinct_pairs == 5 and ideal.dim == 9 * 8 + 2


def test_prediction_scales_as_the_counts():
    images = tiny_images()
    fractions = cost_model.Fractions(images.shape[1:], images, chunk=16)
    rate = cost_model.Rate((1e-9, 2e-11), (1e-9, 0.0), (1e-7, 1e-9), (3,), "test")
    seconds = lambda kind, ks, per_device: cost_model.machine_seconds(kind, ks, 6, per_device, fractions, rate)
    one, _ = seconds("bbels", [3], 1)
    w3 = cost_model.work("bbels", 3, images.shape[1:], fractions("bbels", 3), 6)
    w5 = cost_model.work("bbels", 5, images.shape[1:], fractions("bbels", 5), 6)
    assert one == pytest.approx(w3.executed_pairs * (1e-9 + 2e-11 * 11))
    assert seconds("bbels", [3, 3], 5)[0] == pytest.approx(10 * one)  # steps x images
    both, build = seconds("bbels", [3, 5, 3], 1)
    assert both == pytest.approx(2 * one + w5.executed_pairs * (1e-9 + 2e-11 * 27))
    assert build == pytest.approx(sum(1e-7 * w.rows + 1e-9 * w.bytes for w in (w3, w5)))  # one build per distinct k
    # Doubling the training set doubles the pairs of a table whose groups are all distinct and chunk-aligned.
    ones = cost_model.tables("els", 3, (8, 8, 1), chunk=8)
    assert (
        cost_model.work("els", 3, (8, 8, 1), ones, 8).executed_pairs
        == 2 * cost_model.work("els", 3, (8, 8, 1), ones, 4).executed_pairs
    )


def test_rate_fit_recovers_a_line():
    dims = np.array([11, 27, 83, 291])
    a, b = cost_model.fit_line(dims, 3e-12 + 4e-14 * dims)
    assert a == pytest.approx(3e-12, rel=1e-6) and b == pytest.approx(4e-14, rel=1e-6)
