"""Bad input gets a ValueError naming the argument, before anything reaches XLA."""

import numpy as np
import pytest

import elsjax

RNG = np.random.default_rng(0)
TRAIN = RNG.uniform(-1, 1, (6, 8, 8, 1)).astype(np.float32)
LABELS = np.array([0, 0, 1, 1, 2, 2])
X = RNG.normal(size=(2, 8, 8, 1)).astype(np.float32)


def score(**overrides):
    args = dict(kind="els", x=X, t=0.5, train=TRAIN, k=3)
    args.update(overrides)
    kind, x, t = args.pop("kind"), args.pop("x"), args.pop("t")
    return elsjax.score(kind, x, t, **args)


def sample(**overrides):
    args = dict(kind="bbels", seeds=X, train=TRAIN, scales=[3, 3, 5, 5])
    args.update(overrides)
    kind, seeds = args.pop("kind"), args.pop("seeds")
    return elsjax.sample(kind, seeds, **args)


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
        (dict(t=0.0), r"t: every time must lie in \(0, 1\]"),
        (dict(t=1.5), r"t: every time must lie in \(0, 1\]"),
        (dict(t=np.nan), r"t: every time must lie in \(0, 1\]"),
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
