"""Bad input gets a ValueError naming the argument, before anything reaches XLA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# The tiny inputs and the two calls with overrides are shared with the bad-input table (tests/bad_inputs.py).
from bad_inputs import LABELS, TRAIN, X, sample, score  # noqa: E402

import elsjax
from elsjax import denoisers


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(k=4), "k: expected an odd integer"),
        (dict(k=1), "k: expected an odd integer"),
        (dict(k=2.0), "k: expected an odd integer"),
        (dict(k=None), "k: the 'els' machine needs"),
        (dict(k=9), "k: ELS needs k <= H"),
        (dict(kind="elss"), "kind: expected one of"),
        (dict(x=X[0]), "x: expected 4 dimensions"),
        (dict(x=np.zeros((2, 8, 9, 1), np.float32)), r"x: image shape \(8, 9, 1\) does not match"),
        (dict(x=np.zeros((2, 8, 8, 3), np.float32)), r"x: image shape \(8, 8, 3\) does not match"),
        (dict(x=X.transpose(0, 3, 1, 2), train=TRAIN.transpose(0, 3, 1, 2)), "train: expected NHWC.*NCHW"),
        (dict(x=X.transpose(0, 3, 1, 2)), "x: expected NHWC.*NCHW"),
        (dict(train=TRAIN * 1.5), r"train: pixel values must lie in \[-1, 1\]"),
        (dict(train=np.where(TRAIN > 0.9, np.nan, TRAIN)), "train: contains NaN"),
        (dict(x=np.where(X > 1, np.inf, X)), "x: contains NaN or infinite"),
        (dict(train=TRAIN[:0]), "train: empty array"),
        (dict(t=0.0), r"t: every time must lie in \[1e-12, 1\]"),
        (dict(t=1e-13), r"t: every time must lie in \[1e-12, 1\]"),
        (dict(t=1.5), r"t: every time must lie in \[1e-12, 1\]"),
        (dict(t=np.nan), r"t: every time must lie in \[1e-12, 1\]"),
        (dict(t=[0.5, 0.5, 0.5]), r"t: expected a float or shape \(2,\)"),
        (dict(y=[0, 1]), "labels: class-conditional sampling"),
        (dict(y=[0, 7], labels=LABELS), "y: class 7 has no training images"),
        (dict(y=[0, 1], labels=LABELS[:4]), r"labels: expected integers of shape \(6,\)"),
        (dict(y=[0.5, 1], labels=LABELS), "y: expected integers"),
    ],
)
def test_score_rejects(overrides, match):
    with pytest.raises(ValueError, match=match):
        score(**overrides)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(scales=[3, 4, 5]), r"scales\[1\]: expected an odd integer"),
        (dict(scales=[3]), "scales: need at least 2 entries"),
        (dict(scales=5), "scales: expected a sequence"),
        (dict(kind="els", scales=[3, 3, 11]), r"scales\[2\]: ELS needs k <= H"),
        (dict(seeds=X[:, :4]), "seeds: image shape"),
        (dict(convention="shifted"), "convention: expected one of"),
        (dict(keep_bytes=-1), "keep_bytes: expected a non-negative integer"),
        (dict(y=[0, 3], labels=LABELS), "y: class 3 has no training images"),
    ],
)
def test_sample_rejects(overrides, match):
    with pytest.raises(ValueError, match=match):
        sample(**overrides)


def test_large_k_is_fine_where_defined():
    # bbELS and LS are defined for any odd k (they reduce to LS / IS); ELS is not for k > H.
    assert np.all(np.isfinite(score(kind="bbels", k=11)))
    assert np.all(np.isfinite(score(kind="ls", k=17)))
    assert np.all(np.isfinite(score(kind="ideal", k=None)))


@pytest.mark.parametrize("kind", elsjax.denoisers.names())
@pytest.mark.parametrize("t", [1e-3, 1e-4, 1e-5, 1e-6, 1e-12])
def test_small_times_give_finite_scores(kind, t):
    # b_t = sin(pi t / 2.016) stays a normal float32 down to t = 1e-12 (the reference's 1 - cos^2 is 0 below 1.6e-4).
    s = np.asarray(score(kind=kind, t=t, k=None if kind == "ideal" else 3))
    assert np.all(np.isfinite(s))
    assert np.abs(s).max() > 1.0 / (4 * t * t)  # ~ |x - a mu| / b_t^2: really the small-t score, not a clipped one


@pytest.mark.parametrize(
    "kind, images, k, match",
    [
        ("els", TRAIN, 4, "k: expected an odd integer >= 3, got 4"),
        ("els", TRAIN, 9, "k: ELS needs k <= H"),
        ("bbels", TRAIN, None, "k: the 'bbels' machine needs"),
        ("els", TRAIN.transpose(0, 3, 1, 2), 3, "images: expected NHWC.*NCHW"),
        ("els", np.where(TRAIN > 0.9, np.nan, TRAIN), 3, "images: contains NaN"),
        ("els", TRAIN * 2, 3, r"images: pixel values must lie in \[-1, 1\]"),
        ("lss", TRAIN, 3, "kind: expected one of"),
    ],
)
def test_build_rejects(kind, images, k, match):
    with pytest.raises(ValueError, match=match):
        denoisers.build(kind, images, k)


def test_machine_score_broadcasts_a_scalar_time():
    m = denoisers.build("bbels", TRAIN, 3)
    np.testing.assert_array_equal(m.score(jnp.asarray(X), 0.5), m.score(jnp.asarray(X), jnp.full(2, 0.5)))


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_high_level_api_composes_with_jit_and_grad():
    # Concrete inputs are checked on the host; traced x passes through to the jit-compiled machine.
    want = elsjax.score("els", X, 0.5, train=TRAIN, k=3)
    got = jax.jit(lambda x: elsjax.score("els", x, 0.5, train=TRAIN, k=3))(X)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda x: elsjax.score("els", x, 0.5, train=TRAIN, k=3).sum())(jnp.asarray(X))
    direct = jax.grad(lambda x: denoisers.build("els", TRAIN, 3).score(x, 0.5).sum())(jnp.asarray(X))
    np.testing.assert_allclose(grad, direct, rtol=1e-6)
    traced_sample = jax.jit(lambda s: elsjax.sample("bbels", s, train=TRAIN, scales=[3, 3, 5]))(X)
    np.testing.assert_allclose(traced_sample, elsjax.sample("bbels", X, train=TRAIN, scales=[3, 3, 5]), atol=1e-6)
    with pytest.raises(ValueError, match="train: the training images must be concrete"):
        jax.jit(lambda tr: elsjax.score("els", X, 0.5, train=tr, k=3))(TRAIN)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_samples_stay_inside_the_data_range():
    train = np.concatenate([TRAIN, -np.ones((2, 8, 8, 1), np.float32)])  # pixels exactly at -1
    out = np.asarray(elsjax.sample("bbels", X, train=train, scales=[3, 3, 5, 5]))
    assert out.min() >= -1.0 and out.max() <= train.max()
