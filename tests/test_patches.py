"""Patch extraction, exact deduplication and 8-bit storage of dictionaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import elsjax
from elsjax import dedup, denoisers, patches


def mnist_like(n=12, h=12, w=12, seed=0):
    """8-bit images that are mostly background (-1): most patches repeat, as in MNIST."""
    rng = np.random.default_rng(seed)
    codes = np.where(rng.uniform(size=(n, h, w, 1)) < 0.97, 0, rng.integers(0, 256, size=(n, h, w, 1)))
    return (codes.astype(np.float32) * np.float32(2 / 255) - 1).astype(np.float32)


@pytest.mark.parametrize("padding", ["zeros", "circular"])
def test_numpy_and_jax_extraction_agree(padding):
    img = np.random.default_rng(0).normal(size=(2, 7, 9, 3)).astype(np.float32)
    rows, cols = np.array([0, 3, 6]), np.arange(2, 9)
    got_np = patches.patches_at(img, 5, rows, cols, padding)
    got_jax = patches.patches_at(jnp.asarray(img), 5, rows, cols, padding)
    np.testing.assert_array_equal(got_np, np.asarray(got_jax))
    # (row, column, channel) order: the centre entry is the pixel itself.
    centre = (2 * 5 + 2) * 3
    np.testing.assert_array_equal(got_np[1, 1, 4, centre : centre + 3], img[1, 3, 6])


def test_distinct_rows_is_exact():
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 3, size=(5000, 4)).astype(np.uint8)  # at most 81 distinct rows, most repeated
    first, counts = dedup.distinct_rows(rows, block=777)
    uniq, ref_first, ref_counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
    order = np.argsort(ref_first)
    np.testing.assert_array_equal(first, ref_first[order])
    np.testing.assert_array_equal(counts, ref_counts[order])
    assert counts.sum() == len(rows)
    floats = rows.astype(np.float32)
    np.testing.assert_array_equal(dedup.distinct_rows(floats)[1], counts)


@pytest.mark.parametrize(
    "weak_hash",
    [
        lambda rows: rows.sum(axis=1).astype(np.uint64),  # high bits all equal: split by the full hash
        lambda rows: np.zeros(len(rows), np.uint64),  # every row collides: the exact fallback
        lambda rows: rows[:, 0].astype(np.uint64) << np.uint64(60),  # low bits all equal
    ],
)
def test_distinct_rows_survives_hash_collisions(monkeypatch, weak_hash):
    rows = np.random.default_rng(5).integers(0, 3, size=(3000, 4)).astype(np.uint8)
    monkeypatch.setattr(dedup, "row_hashes", lambda source, block: weak_hash(source.array))
    first, counts = dedup.distinct_rows(rows, block=500)
    _, ref_first, ref_counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
    order = np.argsort(ref_first)
    np.testing.assert_array_equal(first, ref_first[order])
    np.testing.assert_array_equal(counts, ref_counts[order])


@pytest.mark.parametrize("kind", ["ideal", "els", "bbels"])
def test_deduplicated_equals_plain(kind):
    train = mnist_like()
    x = np.random.default_rng(2).normal(size=(2, 12, 12, 1)).astype(np.float32)
    t = jnp.array([0.3, 0.8])
    dedup = denoisers.build(kind, train, k=3)
    plain = denoisers.build(kind, train, k=3, deduplicate=False)
    if kind != "ideal":
        assert dedup.tables[0].num_entries < plain.tables[0].num_entries / 2  # really deduplicated
    got, want = dedup.score(x, t), plain.score(x, t)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_8bit_data_is_stored_as_codes():
    train = mnist_like()
    m = denoisers.build("els", train, k=5)
    assert m.tables[0].keys.dtype == jnp.uint8 and m.tables[0].values.dtype == jnp.uint8
    np.testing.assert_array_equal(patches.encode_8bit(train).astype(np.float32) * np.float32(2 / 255) - 1, train)
    assert patches.encode_8bit(train + 1e-3) is None  # not 8-bit: stays float32
    x = np.random.default_rng(3).normal(size=(1, 12, 12, 1)).astype(np.float32)
    from brute_force import brute_score

    got = elsjax.score("els", x, 0.5, train=train, k=5)[0]
    want = brute_score("els", x[0], 0.5, train, 5)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("k", [5, 13])
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_8bit_bbels_border_regions_use_codes_and_stay_exact(k):
    """bbELS border groups store the zero padding as a constant code; it cancels in the softmax (k=13 >= H: LS)."""
    from brute_force import brute_score

    train = mnist_like(seed=4)
    stroke = np.rint(np.linspace(0, 255, 36)).astype(np.float32).reshape(1, 6, 6, 1)
    train[:, 3:9, 3:9] = stroke * np.float32(2 / 255) - 1  # a graded block, so border patches differ
    m = denoisers.build("bbels", train, k=k)
    assert all(table.keys.dtype == jnp.uint8 for table in m.tables)
    x = np.random.default_rng(5).normal(size=(1, 12, 12, 1)).astype(np.float32)
    for t in (0.2, 0.7):
        got = elsjax.score("bbels", x, t, train=train, k=k)[0]
        want = brute_score("bbels", x[0], t, train, k)
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_dictionary_after_hash_collision_equals_normal(monkeypatch):
    train = mnist_like()
    want = denoisers.build("bbels", train, k=5).tables
    monkeypatch.setattr(dedup, "row_hashes", lambda source, block: np.zeros(source.num_rows, np.uint64))
    got = denoisers.build("bbels", train, k=5).tables
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(g, w)


def build_digest(train):
    """sha256 of every table's keys, counts and values for IS, ELS (k = 3, 5) and bbELS (k = 3, 5)."""
    import hashlib

    digest = hashlib.sha256()
    for kind, ks in (("ideal", [None]), ("els", [3, 5]), ("bbels", [3, 5])):
        for k in ks:
            for table in denoisers.build(kind, train, k).tables:
                keys, aux, values = (np.asarray(a) for a in table)
                log_w = aux[..., 1].astype(np.float64)
                counts = np.where(log_w > -1e29, np.rint(np.exp(np.maximum(log_w, 0))), 0).astype(np.int64)
                for a in (keys, counts, values):
                    digest.update(f"{a.shape}{a.dtype}".encode())
                    digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


# Digests of the dictionaries built by the single-threaded build before the threaded one (commit 63fb55f).
PREVIOUS_BUILD = {
    "8bit": "9ca65cdb2a09aa9ff08d3c54415031da1f1702e4dcef57293e7b2d3ad6f0b3f8",
    "float": "2024485583ce2b4ac5511afa9c6f98ae81310a7042ab715d20d1d1ccadaa807b",
}


@pytest.mark.exact_tables
@pytest.mark.parametrize("threads", ["1", "3"])
def test_build_equals_previous_build_bit_for_bit(monkeypatch, threads):
    """Many blocks on several threads (or one) build the same keys, counts and values as the previous build."""
    monkeypatch.setenv("ELSJAX_BUILD_THREADS", threads)
    monkeypatch.setattr(dedup, "BUILD_BLOCK", 700)  # many blocks per source, in any thread order
    monkeypatch.setattr(dedup, "PARALLEL_GROUPING_ROWS", 500)  # the grouping split by hash over the threads
    assert build_digest(mnist_like(n=40, h=16, w=16, seed=7)) == PREVIOUS_BUILD["8bit"]
    assert build_digest(mnist_like(n=40, h=16, w=16, seed=8) * np.float32(0.5)) == PREVIOUS_BUILD["float"]


def test_threaded_build_equals_serial_with_hash_collisions(monkeypatch):
    """A weak hash (every row in one sort run) takes the split path; the threaded build still matches."""
    train = mnist_like(n=30, h=14, w=14, seed=3)
    monkeypatch.setattr(dedup, "BUILD_BLOCK", 300)
    monkeypatch.setattr(dedup, "PARALLEL_GROUPING_ROWS", 500)
    monkeypatch.setenv("ELSJAX_BUILD_THREADS", "1")
    want = denoisers.build("bbels", train, k=5).tables
    monkeypatch.setenv("ELSJAX_BUILD_THREADS", "4")
    real = dedup.row_hashes
    monkeypatch.setattr(dedup, "row_hashes", lambda source, block: real(source, block) & np.uint64(0xFFFF))
    got = denoisers.build("bbels", train, k=5).tables
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("kind, sizes", [("ideal", (50, 40)), ("els", (30, 26)), ("bbels", (30, 26))])
def test_shared_shapes_pad_and_change_no_result(kind, sizes):
    """With shape_bits, classes of different sizes share one shape, and scores are identical bit for bit."""
    a, b = (mnist_like(n=n, seed=n) for n in sizes)
    x = np.random.default_rng(4).normal(size=(2, 12, 12, 1)).astype(np.float32)
    t = jnp.array([0.05, 0.6])
    shared_a, shared_b = (denoisers.build(kind, d, 3, chunk_size=16, shape_bits=1) for d in (a, b))
    plain_a = denoisers.build(kind, a, 3, chunk_size=16)
    shape = lambda m: [leaf.shape for leaf in jax.tree_util.tree_leaves(m)]
    assert shape(shared_a) == shape(shared_b) != shape(denoisers.build(kind, b, 3, chunk_size=16))
    assert shared_a.tables[0].num_entries >= plain_a.tables[0].num_entries
    np.testing.assert_array_equal(shared_a.score(x, t), plain_a.score(x, t))


def test_bucket():
    assert [patches.bucket(n, 2) for n in (1, 2, 3, 4, 5, 7, 9, 13)] == [1, 2, 3, 4, 6, 8, 12, 16]
    assert [patches.bucket(n, 4) for n in (15, 16, 17, 100, 1000)] == [15, 16, 18, 104, 1024]
