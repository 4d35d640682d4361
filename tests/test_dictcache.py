"""Reuse of built dictionaries: a hit is the same dictionary, memory stays bounded, the disk copy is bit for bit."""

import jax
import numpy as np

from elsjax import denoisers, dictcache


def train(seed=0, n=12):
    rng = np.random.default_rng(seed)
    codes = np.where(rng.uniform(size=(n, 10, 10, 1)) < 0.9, 0, rng.integers(0, 256, size=(n, 10, 10, 1)))
    return (codes.astype(np.float32) * np.float32(2 / 255) - 1).astype(np.float32)


def leaves(machine):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(machine)]


def test_each_key_is_built_once_and_a_hit_is_the_same_dictionary():
    a, b = train(0), train(1)
    cache = dictcache.DictionaryCache()
    first = {(kind, k): denoisers.build(kind, a, k, cache=cache) for kind in ("ideal", "els", "bbels") for k in (3, 5)}
    again = {(kind, k): denoisers.build(kind, a.copy(), k, cache=cache) for kind in ("ideal", "els", "bbels") for k in (3, 5)}  # fmt: skip
    other = denoisers.build("els", b, 3, cache=cache)  # other images: another key
    padded = denoisers.build("els", a, 3, cache=cache, shape_bits=1)  # another shape rule: another key
    assert cache.builds == 1 + 2 + 2 + 1 + 1 and cache.hits == 1 + 6  # IS ignores k: its second k is a hit
    for key, machine in first.items():
        assert all(x is y for x, y in zip(jax.tree_util.tree_leaves(machine), jax.tree_util.tree_leaves(again[key])))
    want = denoisers.build("els", b, 3)  # without the cache: built
    for x, y in zip(leaves(other), leaves(want)):
        np.testing.assert_array_equal(x, y)
    assert padded.tables[0].keys.shape != first["els", 3].tables[0].keys.shape


def test_memory_is_bounded_by_max_bytes():
    a = train(0)
    size = {k: sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(denoisers.build("els", a, k))) for k in (3, 5)}
    cache = dictcache.DictionaryCache(max_bytes=max(size.values()))
    denoisers.build("els", a, 3, cache=cache)
    denoisers.build("els", a, 5, cache=cache)  # both do not fit: the least recently used (k = 3) goes
    denoisers.build("els", a, 3, cache=cache)
    assert cache.builds == 3 and cache.hits == 0 and cache.nbytes <= max(size.values())


def test_disk_copy_is_bit_for_bit(tmp_path):
    a = train(2)
    cache = dictcache.DictionaryCache(directory=tmp_path)
    built = {kind: denoisers.build(kind, a, 3, cache=cache) for kind in ("ideal", "els", "bbels")}
    assert cache.builds == 3 and len(list(tmp_path.glob("*.npz"))) == 3
    fresh = dictcache.DictionaryCache(directory=tmp_path)
    loaded = {kind: denoisers.build(kind, a, 3, cache=fresh) for kind in ("ideal", "els", "bbels")}
    assert fresh.builds == 0 and fresh.loads == 3
    x = np.random.default_rng(3).normal(size=(2, 10, 10, 1)).astype(np.float32)
    for kind in built:
        for got, want in zip(leaves(loaded[kind]), leaves(built[kind])):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(loaded[kind].score(x, 0.4), built[kind].score(x, 0.4))
