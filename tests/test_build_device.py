"""The compiled dictionary build (patches.CompiledBuilder) equals the host build (patches.HostBuilder) bit for bit."""

import jax
import numpy as np
import pytest

from elsjax import compiled_dedup, dedup, denoisers, patches
from elsjax.patches import CompiledBuilder, HostBuilder

FEW_HASH_BITS = 0xF  # many different rows share a (masked) hash: some runs mix rows, the exact path follows
NO_HASH_BITS = 0  # every row shares the hash: one run, the exact path


def eight_bit(n=16, h=12, w=12, c=1, seed=0, background=0.8):
    """8-bit images, mostly background (-1): most patches repeat, as in MNIST."""
    rng = np.random.default_rng(seed)
    codes = np.where(rng.uniform(size=(n, h, w, c)) < background, 0, rng.integers(0, 256, size=(n, h, w, c)))
    return (codes.astype(np.float32) * np.float32(2 / 255) - 1).astype(np.float32)


DATA = {  # one shape per storage (uint8 codes, float32): programs compiled once serve several data sets
    "binary": lambda: np.where(eight_bit(seed=1) > -1, np.float32(1), np.float32(-1)),  # few distinct patches
    "constant": lambda: np.full((16, 12, 12, 1), -1, np.float32),  # one distinct patch per group
    "mnist_like": lambda: eight_bit(seed=2),
    "rgb_8bit": lambda: eight_bit(n=6, h=9, w=11, c=3, seed=3, background=0.5),
    "float": lambda: np.random.default_rng(4).uniform(-1, 1, size=(16, 12, 12, 1)).astype(np.float32),
    "float_repeats": lambda: np.round(np.random.default_rng(5).uniform(-1, 1, size=(16, 12, 12, 1)), 1).astype(
        np.float32
    ),
}


def assert_same_tables(got, want):
    got, want = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.shape, g.dtype) == (w.shape, w.dtype)
        np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8))  # bit patterns: -0.0 != 0.0, NaN == NaN


def tables(kind, images, k, builder, **options):
    return denoisers.build(kind, images, k, builder=builder, chunk_size=64, **options).tables


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("kind, k", [("ideal", None), ("els", 3), ("bbels", 5)])
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_compiled_build_equals_host_build(data, kind, k):
    images = DATA[data]()
    want = tables(kind, images, k, HostBuilder())
    assert_same_tables(tables(kind, images, k, CompiledBuilder()), want)


@pytest.mark.parametrize("mask", [FEW_HASH_BITS, NO_HASH_BITS])
@pytest.mark.parametrize("kind, k", [("ideal", None), ("bbels", 5)])
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_compiled_build_after_hash_collisions_equals_host_build(kind, k, mask):
    images = eight_bit(seed=6, background=0.5)
    want = tables(kind, images, k, HostBuilder())
    assert_same_tables(tables(kind, images, k, CompiledBuilder(hash_mask=mask)), want)


def test_masked_hashes_take_the_exact_path():
    """With no hash bits the check finds different rows in one run (ok False); the exact sort then groups them."""
    rows = np.array([[1, 2], [3, 4], [1, 2], [5, 6]], np.float32)[:, None, None, :]
    at = np.zeros((1, 1), np.int32)
    _, _, n, ok = compiled_dedup.distinct(rows, at, at, 1, hash_mask=NO_HASH_BITS)
    assert not bool(ok[0])
    first, counts, n, ok = compiled_dedup.distinct(rows, at, at, 1, exact=True)
    assert bool(ok[0]) and int(n[0]) == 3
    assert np.asarray(first[0, :3]).tolist() == [0, 1, 3] and np.asarray(counts[0, :3]).tolist() == [2, 1, 1]


@pytest.mark.parametrize("threads", ["1", "3"])
def test_compiled_build_equals_threaded_host_build_per_class(monkeypatch, threads):
    """Per-class dictionaries (the class's images), host build on one or several threads with many blocks."""
    monkeypatch.setenv("ELSJAX_BUILD_THREADS", threads)
    monkeypatch.setattr(dedup, "BUILD_BLOCK", 300)
    monkeypatch.setattr(dedup, "PARALLEL_GROUPING_ROWS", 400)  # the grouping split by hash over the threads
    images = eight_bit(n=32, seed=7)
    labels = np.arange(32) % 2
    for y in range(2):  # 16 images per class: the shapes of the other tests
        for kind, k in (("ideal", None), ("els", 3), ("bbels", 5)):
            want = tables(kind, images[labels == y], k, HostBuilder())
            assert_same_tables(tables(kind, images[labels == y], k, CompiledBuilder()), want)


@pytest.mark.parametrize("options", [{"shape_bits": 1}, {"deduplicate": False}, {"data_padding": "circular"}])
def test_compiled_build_equals_host_build_with_options(options):
    images = eight_bit(seed=8)
    want = tables("els", images, 3, HostBuilder(), **options)
    assert_same_tables(tables("els", images, 3, CompiledBuilder(), **options), want)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_host_arrays_and_make_dictionary():
    """``to_device=False`` gives aligned host arrays; per-row values (make_dictionary) are gathered alike."""
    images = eight_bit(n=10, seed=9)
    regions = patches.bbels_regions(12, 12, 3)
    want = patches.region_dictionaries(images, 3, regions, to_device=False, builder=HostBuilder())
    got = patches.region_dictionaries(images, 3, regions, to_device=False, builder=CompiledBuilder())
    assert all(isinstance(a, np.ndarray) and a.ctypes.data % 64 == 0 for a in jax.tree_util.tree_leaves(got))
    assert_same_tables(got, want)
    rng = np.random.default_rng(10)
    keys = rng.integers(0, 3, (200, 4)).astype(np.float32)
    values = keys[:, :1] * 2
    want = patches.make_dictionary(keys, values, chunk_size=16, builder=HostBuilder())
    assert_same_tables(patches.make_dictionary(keys, values, chunk_size=16, builder=CompiledBuilder()), want)


def test_norms_are_the_canonical_float64_sums():
    """Both builds' norms: float64 squares added in column order, rounded once (dedup.square_norms)."""
    images = np.random.default_rng(11).uniform(-1, 1, size=(6, 8, 8, 3)).astype(np.float32)
    table = patches.ideal_dictionary(images, builder=CompiledBuilder())
    keys = np.asarray(table.keys).reshape(-1, 8 * 8 * 3)[:6]
    norms = np.asarray(table.aux)[..., 0].reshape(-1)[:6]
    np.testing.assert_array_equal(norms, dedup.square_norms(keys))
    exact = [float(sum(np.float64(v) ** 2 for v in row)) for row in keys]
    np.testing.assert_allclose(norms, exact, rtol=6e-8)  # float32 rounding of the (near exact) float64 sum


def test_default_builder_by_backend(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert isinstance(patches.default_builder(), HostBuilder)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert isinstance(patches.default_builder(), CompiledBuilder)


def test_compiled_build_scores_equal_host_build():
    images = eight_bit(seed=12)
    x = np.random.default_rng(13).normal(size=(2, 12, 12, 1)).astype(np.float32)
    host = denoisers.build("bbels", images, 5, builder=HostBuilder())
    compiled = denoisers.build("bbels", images, 5, builder=CompiledBuilder())
    np.testing.assert_array_equal(compiled.score(x, 0.3), host.score(x, 0.3))
