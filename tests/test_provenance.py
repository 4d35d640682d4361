"""Patch provenance (docs/maths.md §11): the top-m posterior entries, their weights and the entropy.

Checked against known answers (a query that is a training image at small t; near-uniform posteriors at t = 1),
against a brute-force float64 posterior over dictionary occurrences for every machine (deduplicated dictionaries
and bbELS borders included), for the exact merge of partial states, and for the sampler (provenance on = off).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import brute_force  # noqa: E402

import elsjax  # noqa: E402
from elsjax import denoisers, patches, posterior, sampler  # noqa: E402
from elsjax.provenance import sample_provenance  # noqa: E402

KINDS = ("ideal", "ls", "els", "bbels")


def eight_bit(shape, seed=0):
    """Random 8-bit data in [-1, 1] (as elsjax decodes it): distinct patches almost surely."""
    codes = np.random.default_rng(seed).integers(0, 256, shape)
    return (codes.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)).astype(np.float32)


def repetitive(shape, seed=0):
    """Mostly -1 with a few +1 pixels, and a repeated image: many identical patches (heavy deduplication)."""
    rng = np.random.default_rng(seed)
    images = np.where(rng.uniform(size=shape) < 0.25, 1.0, -1.0).astype(np.float32)
    images[-1] = images[0]  # a duplicate image: IS deduplicates it too
    return images


def test_weights_and_entropy_of_a_tiny_dictionary():
    keys = jnp.array([[0.0], [1.0], [1.0], [3.0]])
    d = patches.make_dictionary(keys, keys, chunk_size=2)
    q = posterior.augment_queries(jnp.array([[1.0]]), jnp.ones(1), jnp.ones(1))
    mean, weight, index, entropy = posterior.TopEntries(3).finalize(
        posterior.stream(q, d, accumulator=posterior.TopEntries(3))
    )
    occ_logits = np.array([-0.5, 0.0, 0.0, -2.0])  # per occurrence
    p = np.exp(occ_logits) / np.exp(occ_logits).sum()
    np.testing.assert_allclose(weight[0], [p[1] + p[2], p[0], p[3]], rtol=1e-6)
    assert index[0].tolist() == [1, 0, 2]
    np.testing.assert_allclose(entropy[0], -np.sum(p * np.log(p)), rtol=1e-6)
    np.testing.assert_allclose(mean[0, 0], np.sum(p * np.array([0, 1, 1, 3])), rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_a_training_image_at_small_t_points_at_itself(kind):
    train = eight_bit((5, 7, 7, 1))
    p = elsjax.explain(kind, train[3:4], 1e-3, train=train, k=3, top=3)
    rows, cols = np.meshgrid(np.arange(7), np.arange(7), indexing="ij")
    inside = slice(None) if kind != "els" else slice(1, 6)  # ELS queries wrap around at the border
    assert (p.image[0, inside, inside, 0] == 3).all()
    assert (p.position[0, inside, inside, 0] == np.stack([rows, cols], -1)[inside, inside]).all()
    assert (p.count[0, inside, inside, 0] == 1).all()
    np.testing.assert_allclose(p.weight[0, inside, inside, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(p.entropy[0, inside, inside], 0.0, atol=1e-4)
    assert (p.weight.sum(-1) <= 1 + 1e-6).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", [eight_bit, repetitive])
def test_entropy_at_t_1_approaches_the_log_of_the_occurrences(kind, data):
    train = data((6, 7, 7, 1))
    x = np.random.default_rng(1).normal(size=(1, 7, 7, 1)).astype(np.float32)
    p = elsjax.explain(kind, x, 1.0, train=train, k=3, top=1)
    # Occurrences per pixel: N for IS and LS; every valid patch for ELS; bbELS: N * (interior rows or 1) * (cols).
    h = 7
    per_axis = np.where((np.arange(h) >= 1) & (np.arange(h) < h - 1), h - 2, 1)
    occurrences = {
        "ideal": np.full((h, h), 6),
        "ls": np.full((h, h), 6),
        "els": np.full((h, h), 6 * (h - 2) ** 2),
        "bbels": 6 * per_axis[:, None] * per_axis[None, :],
    }[kind]
    np.testing.assert_allclose(p.entropy[0], np.log(occurrences), atol=0.01)


CASES = [
    ("ideal", None, eight_bit),
    ("ideal", None, repetitive),
    ("ls", 3, eight_bit),
    ("ls", 5, repetitive),
    ("els", 3, eight_bit),
    ("els", 3, repetitive),
    ("bbels", 3, eight_bit),
    ("bbels", 3, repetitive),
    ("bbels", 5, repetitive),
]


@pytest.mark.parametrize("kind,k,data", CASES, ids=[f"{k}-{s}-{d.__name__}" for k, s, d in CASES])
def test_top_entries_and_entropy_match_brute_force(kind, k, data):
    train = data((5, 7, 7, 1), seed=2)
    x = np.random.default_rng(3).normal(size=(2, 7, 7, 1)).astype(np.float32)
    t = np.array([0.3, 0.7], np.float32)
    top = 4
    p = elsjax.explain(kind, x, t, train=train, k=k, top=top)
    assert (p.weight.sum(-1) <= 1 + 1e-5).all()
    for b in range(2):
        brute = brute_force.brute_posterior(kind, x[b], t[b], train, k)
        for (r, c), (occ, weights, keys) in brute.items():
            entries, entropy = brute_force.brute_entries(occ, weights, keys)
            np.testing.assert_allclose(p.entropy[b, r, c], entropy, atol=2e-4, rtol=1e-4)
            want = np.zeros(top)
            want[: min(top, len(entries))] = [e[0] for e in entries[:top]]
            np.testing.assert_allclose(p.weight[b, r, c], want, atol=2e-5, rtol=1e-4)
            for j, (weight, count, (image, row, col)) in enumerate(entries[:top]):
                neighbours = [e[0] for e in entries[max(0, j - 1) : j + 2] if e is not entries[j]]
                if all(abs(weight - other) > 1e-4 for other in neighbours):  # identity is defined when untied
                    got = (p.image[b, r, c, j], *p.position[b, r, c, j], p.count[b, r, c, j])
                    assert got == (image, row, col, count), (kind, b, r, c, j)
            for j in range(len(entries), top):  # fewer distinct entries than slots: empty slots
                assert p.image[b, r, c, j] == -1 and p.count[b, r, c, j] == 0 and p.weight[b, r, c, j] == 0


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_the_mean_is_the_machines_mean():
    train = eight_bit((5, 8, 8, 2))  # two channels: one posterior per pixel
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 2)).astype(np.float32)
    for kind in KINDS:
        m = denoisers.build(kind, train, 3)
        post = m.posterior(x, 0.4, top=2)
        np.testing.assert_allclose(post.mean, m.denoise(x, 0.4), atol=1e-6)
        assert post.weight.shape == (2, 8, 8, 2) and post.entropy.shape == (2, 8, 8)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_partial_states_merge_exactly():
    rng = np.random.default_rng(0)
    keys = rng.uniform(-1, 1, (40, 5)).astype(np.float32)
    whole = patches.make_dictionary(keys, keys[:, :1], chunk_size=8, deduplicate=False)
    first = patches.make_dictionary(keys[:24], keys[:24, :1], chunk_size=8, deduplicate=False)
    second = patches.make_dictionary(keys[24:], keys[24:, :1], chunk_size=8, deduplicate=False)
    q = posterior.augment_queries(jnp.asarray(rng.normal(size=(6, 5)), jnp.float32), jnp.full(6, 0.8), jnp.full(6, 0.6))
    a = posterior.stream(q, first, accumulator=posterior.TopEntries(5))
    b = posterior.stream(q, second, accumulator=posterior.TopEntries(5))
    b = b._replace(top_index=jnp.where(b.top_index >= 0, b.top_index + 24, -1))
    for merged in (posterior.TopEntries(5).merge(a, b), posterior.TopEntries(5).merge(b, a)):
        got, want = (
            posterior.TopEntries(5).finalize(merged),
            posterior.TopEntries(5).finalize(posterior.stream(q, whole, accumulator=posterior.TopEntries(5))),
        )
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_query_blocks_change_nothing():
    train = eight_bit((4, 6, 6, 1))
    x = np.random.default_rng(1).normal(size=(3, 6, 6, 1)).astype(np.float32)
    queries = posterior.augment_queries(jnp.asarray(x.reshape(3, -1)), jnp.full(3, 0.9), jnp.full(3, 0.4))
    d = patches.ideal_dictionary(train)
    one = posterior.TopEntries(2).finalize(
        posterior.stream(queries, d, accumulator=posterior.TopEntries(2), query_block=None)
    )
    blocked = posterior.TopEntries(2).finalize(
        posterior.stream(queries, d, accumulator=posterior.TopEntries(2), query_block=2)
    )
    for a, b in zip(one, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sampler_with_provenance_gives_the_same_samples(kind):
    train = eight_bit((6, 8, 8, 1))
    seeds = np.random.default_rng(5).normal(size=(2, 8, 8, 1)).astype(np.float32)
    scales = [3, 3, 5, 5, 3]
    off = np.asarray(sampler.sample_machine(kind, seeds, train, scales))
    on, records = sampler.sample_posteriors(kind, seeds, train, scales, top=2)
    np.testing.assert_allclose(np.asarray(on), off, atol=1e-5)
    assert [r.step for r in records] == [0, 1, 2, 3]
    assert [r.k for r in records] == ([0] * 4 if kind == "ideal" else [3, 5, 5, 3])
    some, records = sampler.sample_posteriors(kind, seeds, train, scales, top=2, steps=[2])
    np.testing.assert_allclose(np.asarray(some), off, atol=1e-5)
    assert [r.step for r in records] == [2]


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sample_provenance_class_conditional_maps_to_global_indices():
    train = eight_bit((8, 7, 7, 1))
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    seeds = np.random.default_rng(5).normal(size=(2, 7, 7, 1)).astype(np.float32)
    y = np.array([1, 0])
    out, rec = sample_provenance("bbels", seeds, train=train, scales=[3, 3, 3, 3], labels=labels, y=y, top=3)
    np.testing.assert_allclose(
        out, elsjax.sample("bbels", seeds, train=train, scales=[3, 3, 3, 3], labels=labels, y=y), atol=1e-5
    )
    last = rec[-1].provenance
    assert ((last.label[0] == 1) | (last.image[0] < 0)).all() and ((last.label[1] == 0) | (last.image[1] < 0)).all()
    assert (labels[last.image[last.image >= 0]] == last.label[last.image >= 0]).all()
    # The mosaic (each pixel's top patch centre) is close to the sample at the last step, where the posterior is sharp.
    image, pos = last.image[..., 0], last.position[..., 0, :]
    mosaic = train[image, pos[..., 0], pos[..., 1]]
    assert np.mean(np.abs(mosaic - out)) < 0.2


def test_num_occurrences():
    fewest = lambda kind: denoisers.get(kind).fewest_occurrences((10, 8, 8, 1), 3)
    assert fewest("els") == 360
    assert fewest("bbels") == fewest("ls") == 10


TRAIN = eight_bit((4, 6, 6, 1))
X = np.zeros((1, 6, 6, 1), np.float32)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(top=0), r"^top: expected an integer >= 1, got 0"),
        (dict(top=5), r"^top: asked for 5 entries but some pixel's posterior has only 4 dictionary occurrences"),
        (dict(top=2.5), r"^top: expected an integer"),
        (dict(kind="elss"), r"^kind: expected one of"),
        (dict(k=4), r"^k: expected an odd integer"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = dict(kind="bbels", x=X, t=0.5, train=TRAIN, k=3, top=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        elsjax.explain(args.pop("kind"), args.pop("x"), args.pop("t"), **args)


def test_sample_provenance_bad_steps():
    with pytest.raises(ValueError, match=r"^steps: step indices run from 0 to 2"):
        sample_provenance("els", X, train=TRAIN, scales=[3, 3, 3, 3], steps=[3])
    with pytest.raises(TypeError, match="unexpected options"):
        sampler.sample_posteriors("els", X, TRAIN, [3, 3], top=2, return_trajectory=True)


def test_fewer_distinct_entries_than_slots_leave_empty_slots():
    train = eight_bit((4, 7, 7, 1))
    train[:, :2], train[:, -2:], train[:, :, :2], train[:, :, -2:] = -1, -1, -1, -1  # constant borders
    x = np.random.default_rng(1).normal(size=(1, 7, 7, 1)).astype(np.float32)
    p = elsjax.explain("bbels", x, 0.5, train=train, k=3, top=3)
    corner = (slice(None), 0, 0)
    assert p.image[corner].tolist() == [[0, -1, -1]] and p.count[corner].tolist() == [[4, 0, 0]]
    np.testing.assert_allclose(p.weight[corner], [[1, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(p.entropy[corner], np.log(4), rtol=1e-5)  # 4 identical occurrences
    assert p.position[corner].tolist() == [[[0, 0], [-1, -1], [-1, -1]]]


def test_the_default_program_is_free_of_provenance():
    m = denoisers.build("els", TRAIN, 3)
    t = jnp.full(1, 0.5)
    default = jax.jit(lambda m, x, t: m.denoise(x, t)).lower(m, X, t).as_text()
    with_provenance = jax.jit(lambda m, x, t: m.posterior(x, t, top=2)).lower(m, X, t).as_text()
    assert "top_k" not in default and "chlo.top_k" in with_provenance


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_explain_command_writes_its_outputs(tmp_path, capsys):
    import datasets_for_tests as fake

    from elsjax import cli

    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    argv = ["explain", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "40", "--scales", "3,3,5,3",
            "--n-seeds", "2", "--which", "1", "--top", "3", "--no-conditional", "--no-progress", "--no-cache",
            "--out-dir", str(tmp_path / "out")]  # fmt: skip
    assert cli.main(argv) == 0
    out = tmp_path / "out"
    written = {p.name for p in out.iterdir()} - {"code.diff"}  # written when the checkout is dirty
    assert written == {"explain_1.png", "provenance.npz", "config.json", "record.json"}
    with np.load(out / "provenance.npz") as f:
        assert f["image"].shape == (3, 1, 32, 32, 3) and f["position"].shape == (3, 1, 32, 32, 3, 2)
        assert f["k"].tolist() == [3, 5, 3] and f["seed_index"].tolist() == [1]
        assert (f["weight"].sum(-1) <= 1 + 1e-5).all()
    assert "distinct source images" in capsys.readouterr().out


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_explain_a_saved_sample_recomputes_it(tmp_path, capsys):
    import json

    import datasets_for_tests as fake

    from elsjax import cli

    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    common = ["--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "40", "--scales", "3,3,3", "--no-progress",
              "--no-cache"]  # fmt: skip
    assert cli.main(["sample", *common, "--n-seeds", "2", "--no-conditional", "--out-dir", str(tmp_path / "s")]) == 0
    argv = ["explain", "--samples", str(tmp_path / "s" / "samples.npz"), "--top", "2", "--out-dir", str(tmp_path / "e"),
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    record = json.loads((tmp_path / "e" / "record.json").read_text())
    assert record["stored_samples_max_abs_diff"] < 1e-5 and record["seed_index"] == [0, 1]


def test_explain_bad_fields(tmp_path, capsys):
    from elsjax import cli

    assert cli.main(["explain", "--top", "0", "--out-dir", str(tmp_path / "o")]) == 2
    assert "top: expected a positive integer" in capsys.readouterr().err
    assert cli.main(["explain", "--samples", str(tmp_path / "none.npz"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "samples: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("kind,k", [("ideal", None), ("ls", 3), ("els", 3), ("bbels", 3)])
def test_occurrences_list_every_place_of_a_deduplicated_entry(kind, k):
    from elsjax.provenance import occurrences

    train = repetitive((5, 7, 7, 1), seed=2)
    x = np.random.default_rng(3).normal(size=(1, 7, 7, 1)).astype(np.float32)
    p = elsjax.explain(kind, x, 0.5, train=train, k=k, top=3)
    brute = brute_force.brute_posterior(kind, x[0], 0.5, train, k)
    for r, c in [(0, 0), (0, 3), (3, 3), (6, 5)]:
        for j in range(3):
            if p.image[0, r, c, j] < 0:
                continue
            occ = occurrences(
                kind, train, k=k, pixel=(r, c), image=p.image[0, r, c, j], position=p.position[0, r, c, j]
            )
            assert len(occ) == p.count[0, r, c, j]
            assert tuple(occ[0]) == (p.image[0, r, c, j], *p.position[0, r, c, j])
            occ_list, _, keys = brute[(r, c)]
            key = keys[occ_list.index(tuple(int(v) for v in occ[0]))]
            assert [tuple(o) for o in occ.tolist()] == [o for o, kk in zip(occ_list, keys) if kk == key]
