"""Machines against the brute-force NumPy version of docs/maths.md §4, and the identities of docs/maths.md §4.6."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brute_force import brute_score

import elsjax
from conftest import relerr
from elsjax import denoisers, patches, posterior, programs, sampler, scales


def data(n=6, h=9, w=9, c=1, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    train = rng.uniform(-1, 1, (n, h, w, c)).astype(np.float32)
    x = rng.normal(size=(batch, h, w, c)).astype(np.float32)
    return train, x


@pytest.mark.parametrize("kind", ["ideal", "ls", "els", "bbels"])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_matches_brute_force(kind, c, k):
    if kind == "ideal" and k != 3:
        pytest.skip("IS has no k")
    train, x = data(c=c, seed=k + 10 * c)
    t = np.array([0.9, 0.3], np.float32)  # one time per image: broad and sharp posteriors
    got = elsjax.score(kind, x, t, train=train, k=k)
    for i in range(len(x)):
        assert relerr(got[i], brute_score(kind, x[i], t[i], train, k)) <= 1e-5


@pytest.mark.parametrize("kind", ["ls", "els", "bbels"])
def test_rectangular_images(kind):
    train, x = data(h=7, w=10, c=2, seed=3)
    got = elsjax.score(kind, x, 0.5, train=train, k=5)
    for i in range(len(x)):
        assert relerr(got[i], brute_score(kind, x[i], 0.5, train, 5)) <= 1e-5


def test_class_conditioning_restricts_the_dictionary():
    train, x = data(n=9)
    labels = np.arange(9) % 3
    got = elsjax.score("els", x, 0.5, train=train, k=3, labels=labels, y=[2, 0])
    for i, y in enumerate([2, 0]):
        assert relerr(got[i], brute_score("els", x[i], 0.5, train[labels == y], 3)) <= 1e-5


@pytest.mark.parametrize("k", [3, 5])
def test_bbels_equals_els_on_interior_pixels(k):
    train, x = data(h=11, w=11)
    d = k // 2
    bb = elsjax.score("bbels", x, 0.4, train=train, k=k)
    els = elsjax.score("els", x, 0.4, train=train, k=k)
    np.testing.assert_allclose(bb[:, d:-d, d:-d], els[:, d:-d, d:-d], rtol=2e-6, atol=1e-6)
    assert not np.allclose(bb, els)  # the border really is different


@pytest.mark.parametrize("k", [9, 11, 15])
def test_bbels_large_k_equals_ls(k):
    train, x = data(h=9, w=9)
    bb = elsjax.score("bbels", x, 0.5, train=train, k=k)
    ls = elsjax.score("ls", x, 0.5, train=train, k=k)
    np.testing.assert_allclose(bb, ls, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [17, 21])
def test_ls_large_k_equals_ideal(k):
    train, x = data(h=9, w=9)
    ls = elsjax.score("ls", x, 0.5, train=train, k=k)
    ideal = elsjax.score("ideal", x, 0.5, train=train)
    assert relerr(ls, ideal) <= 1e-5


@pytest.mark.parametrize("kind", ["ideal", "ls", "els", "bbels"])
def test_chunked_equals_one_chunk(kind):
    train, x = data(n=13)
    one = elsjax.score(kind, x, 0.5, train=train, k=5, chunk_size=100_000)
    many = elsjax.score(kind, x, 0.5, train=train, k=5, chunk_size=8 if kind not in ("ideal", "ls") else 3)
    assert relerr(many, one) <= 1e-6


@pytest.mark.parametrize("kind", ["ideal", "ls", "els", "bbels"])
def test_batch_equals_one_by_one(kind):
    train, x = data(n=8, batch=3)
    labels = np.arange(8) % 2
    t, y = np.array([0.2, 0.7, 0.95], np.float32), np.array([1, 0, 1])
    batch = elsjax.score(kind, x, t, train=train, k=3, labels=labels, y=y)
    for i in range(3):
        one = elsjax.score(kind, x[i : i + 1], t[i], train=train, k=3, labels=labels, y=y[i : i + 1])
        assert relerr(batch[i], one[0]) <= 1e-6  # float32 rounding only: the GEMM shapes differ


def test_softmax_states_merge_exactly():
    """Streaming a dictionary in two parts and merging equals streaming it whole (the basis for sharding)."""
    rng = np.random.default_rng(1)
    keys = rng.uniform(-1, 1, (300, 12)).astype(np.float32)
    values = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    q = posterior.augment_queries(
        jnp.asarray(rng.normal(size=(5, 12)), jnp.float32), jnp.full(5, 0.8), jnp.full(5, 0.6)
    )
    whole = posterior.stream(q, patches.make_dictionary(keys, values, chunk_size=64))
    left = posterior.stream(q, patches.make_dictionary(keys[:170], values[:170], chunk_size=64))
    right = posterior.stream(q, patches.make_dictionary(keys[170:], values[170:], chunk_size=64))
    merged = posterior.merge(left, right)
    np.testing.assert_allclose(posterior.finalize(merged), posterior.finalize(whole), rtol=1e-6, atol=1e-6)
    empty = posterior.init_state(5, 2)
    np.testing.assert_allclose(posterior.finalize(posterior.merge(empty, whole)), posterior.finalize(whole), rtol=1e-7)


def test_query_blocks_equal_one_pass():
    """Streaming the dictionary once per block of queries (uneven last block, continued state) equals one pass."""
    rng = np.random.default_rng(2)
    keys = rng.uniform(-1, 1, (300, 12)).astype(np.float32)
    values = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    q = posterior.augment_queries(
        jnp.asarray(rng.normal(size=(23, 12)), jnp.float32), jnp.full(23, 0.8), jnp.full(23, 0.4)
    )
    dictionary = patches.make_dictionary(keys, values, chunk_size=64)
    whole = posterior.stream(q, dictionary, query_block=None)
    blocked = posterior.stream(q, dictionary, query_block=5)
    assert blocked.num.shape == whole.num.shape == (23, 2)
    np.testing.assert_allclose(posterior.finalize(blocked), posterior.finalize(whole), rtol=1e-6, atol=1e-6)
    first = posterior.stream(q, patches.make_dictionary(keys[:100], values[:100], chunk_size=64), query_block=None)
    rest = posterior.stream(q, patches.make_dictionary(keys[100:], values[100:], chunk_size=64), first, query_block=5)
    np.testing.assert_allclose(posterior.finalize(rest), posterior.finalize(whole), rtol=1e-6, atol=1e-6)


def test_machine_is_a_pytree_and_jits():
    train, x = data()
    m = denoisers.build("bbels", train, k=3)
    leaves = jax.tree_util.tree_leaves(m)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    t = jnp.array([0.3, 0.6])
    eps = jax.jit(denoisers.Denoiser.eps)(m, jnp.asarray(x), t)
    s = m.score(jnp.asarray(x), t)
    np.testing.assert_allclose(
        eps, -np.sqrt(1 - np.cos(np.pi * np.array(t) / 2.016) ** 2)[:, None, None, None] * s, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("kind", ["ideal", "ls", "els", "bbels"])
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_no_nan_at_small_t_and_large_k(kind):
    """t = 0.05 with k = 27 on 32 x 32 images: logits of order 1e5 must not overflow the softmax."""
    rng = np.random.default_rng(2)
    train = np.where(rng.uniform(size=(20, 32, 32, 1)) < 0.8, -1.0, 1.0).astype(np.float32)  # MNIST-like, many ties
    x = (0.997 * train[:2] + 0.078 * rng.normal(size=(2, 32, 32, 1))).astype(np.float32)
    s = elsjax.score(kind, x, 0.05, train=train, k=27)
    assert np.all(np.isfinite(s))


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sample_stays_in_training_range():
    rng = np.random.default_rng(3)
    train = rng.uniform(-0.5, 0.7, (10, 9, 9, 1)).astype(np.float32)
    seeds = rng.normal(size=(3, 9, 9, 1)).astype(np.float32)
    for kind in ["ideal", "ls", "els", "bbels"]:
        out = elsjax.sample(kind, seeds, train=train, scales=[3, 3, 5, 5, 7, 7])
        assert np.all(np.isfinite(out))
        assert out.min() >= -0.5 - 1e-5 and out.max() <= 0.7 + 1e-5


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sample_batch_of_seeds_equals_one_by_one():
    train, _ = data(n=8)
    labels = np.arange(8) % 2
    seeds = np.random.default_rng(4).normal(size=(3, 9, 9, 1)).astype(np.float32)
    y = np.array([0, 1, 0])
    batch = elsjax.sample("bbels", seeds, train=train, scales=[3, 3, 5, 5], labels=labels, y=y)
    for i in range(3):
        one = elsjax.sample("bbels", seeds[i : i + 1], train=train, scales=[3, 3, 5, 5], labels=labels, y=y[i : i + 1])
        np.testing.assert_allclose(batch[i], one[0], rtol=1e-5, atol=1e-5)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_corrected_convention_shifts_the_schedule():
    # "corrected" reads scales[i - 1] at t = i / n, so it equals "reference" on the schedule shifted by one.
    train, x = data(n=5)
    corrected = elsjax.sample("els", x, train=train, scales=[3, 5, 7, 9], convention="corrected")
    reference = elsjax.sample("els", x, train=train, scales=[9, 3, 5, 7], convention="reference")
    np.testing.assert_array_equal(corrected, reference)
    assert not np.allclose(corrected, elsjax.sample("els", x, train=train, scales=[3, 5, 7, 9]))


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_memory_budget_rebuilds_instead_of_keeping(monkeypatch):
    # A non-monotone schedule needs k = 3 and 5 twice: kept by default, rebuilt with no budget, same samples.
    train, x = data(n=5)
    scales = [3, 3, 5, 3, 5, 3]
    builds = []
    build = denoisers.build
    monkeypatch.setattr(
        denoisers, "build", lambda kind, images, k, **kw: builds.append(k) or build(kind, images, k, **kw)
    )
    kept = elsjax.sampler.sample_machine("els", x, train, scales)
    assert builds == [3, 5]
    builds.clear()
    rebuilt = elsjax.sampler.sample_machine("els", x, train, scales, keep_bytes=0)
    assert builds == [3, 5, 3, 5, 3]
    np.testing.assert_array_equal(kept, rebuilt)


@pytest.mark.parametrize("kind", ["els", pytest.param("bbels", marks=pytest.mark.slow)])  # bbELS: 2 min here
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_padded_sample_compiles_at_most_two_programs(kind):
    # A published schedule of 5 distinct k (3..11, non-monotone: 9 and 7 come back), 19 steps: one sampling program
    # per k unpadded, at most two padded (one per bucket), and the same sample to float32 rounding.
    schedule = scales.resolve("MNIST_ResNet_circular")
    assert len(set(sampler.machine_steps(schedule)[1])) >= 4
    rng = np.random.default_rng(3)
    train = (np.round(rng.uniform(-1, 1, (2, 11, 13, 1)) * 2) / 2).astype(np.float32)  # a shape of its own
    x = rng.normal(size=(1, 11, 13, 1)).astype(np.float32)
    samples, compiled = {}, {}
    for padded in (False, True):
        with programs.CompileCounter() as counter:
            samples[padded] = np.asarray(sampler.sample_machine(kind, x, train, schedule, padded=padded))
        compiled[padded] = counter.counts["_sample_loop"]
    assert compiled[False] == 5 and 1 <= compiled[True] <= 2
    assert relerr(samples[True], samples[False]) < 1e-3
