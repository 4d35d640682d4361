"""elsjax.metrics against direct NumPy formulas and scipy.stats.pearsonr."""

import warnings

import numpy as np
import pytest
from scipy import stats

from elsjax import metrics


def pairs(b=5, shape=(6, 7, 3), seed=0):
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(b, *shape)).astype(np.float32)
    pred = (0.7 * target + 0.5 * rng.normal(size=target.shape) + 0.2).astype(np.float32)
    return pred, target


def test_pearson_r_matches_scipy():
    pred, target = pairs()
    got = metrics.pearson_r(pred, target)
    assert got.dtype == np.float64 and got.shape == (5,)
    want = [stats.pearsonr(p.ravel().astype(np.float64), t.ravel().astype(np.float64))[0] for p, t in zip(pred, target)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.all((got > 0.5) & (got < 1.0))  # the data are correlated, not identical


def test_all_metrics_match_direct_formulas():
    pred, target = pairs(b=4, shape=(5, 5, 1), seed=1)
    m = metrics.compare(pred, target)
    assert set(m) == set(metrics.KEYS)
    for i in range(4):
        p, t = pred[i].ravel().astype(np.float64), target[i].ravel().astype(np.float64)
        r = np.corrcoef(p, t)[0, 1]
        np.testing.assert_allclose(m["r"][i], r, rtol=1e-12)
        np.testing.assert_allclose(m["r2"][i], r * r, rtol=1e-12)
        np.testing.assert_allclose(m["R2"][i], 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2), rtol=1e-12)
        np.testing.assert_allclose(m["mse"][i], np.mean((p - t) ** 2), rtol=1e-12)
    np.testing.assert_array_equal(m["r2"], metrics.r_squared(pred, target))
    np.testing.assert_array_equal(m["R2"], metrics.determination(pred, target))


def test_determination_is_not_r_squared():
    # An affine map keeps r = 1 but is a poor prediction: R^2 tells them apart.
    _, target = pairs(b=2, seed=2)
    m = metrics.compare(2 * target + 1, target)
    np.testing.assert_allclose(m["r"], 1.0, rtol=1e-12)
    assert np.all(m["R2"] < 0)
    ident = metrics.compare(target, target)
    assert (
        ident["r"].tolist() == [1.0, 1.0] and ident["R2"].tolist() == [1.0, 1.0] and ident["mse"].tolist() == [0.0, 0.0]
    )


def test_constant_images_give_nan_without_warning():
    pred, target = pairs(b=3, shape=(4, 4, 1), seed=3)
    pred[0] = 0.1  # constant prediction: no correlation, R^2 still defined
    target[1] = 0.3  # constant target: neither r nor R^2 defined
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = metrics.compare(pred, target)
    assert np.isnan(m["r"][:2]).all() and np.isnan(m["r2"][:2]).all() and np.isfinite(m["r"][2])
    assert np.isfinite(m["R2"][0]) and np.isnan(m["R2"][1]) and np.isfinite(m["R2"][2])
    t0 = target[0].ravel().astype(np.float64)
    np.testing.assert_allclose(m["R2"][0], 1 - np.sum((t0 - np.float32(0.1)) ** 2) / np.sum((t0 - t0.mean()) ** 2))
    assert np.isfinite(m["mse"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about constant input and returns NaN, as we do
        assert np.isnan(stats.pearsonr(pred[0].ravel(), target[0].ravel())[0])


def test_bad_input():
    pred, target = pairs(b=2)
    with pytest.raises(ValueError, match="target"):
        metrics.compare(pred, target[:1])
    with pytest.raises(ValueError, match="target"):
        metrics.pearson_r(pred, target.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="pred"):
        metrics.mse(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="pred"):
        metrics.determination(np.array([["a", "b"]]), np.zeros((1, 2)))


def test_bootstrap_median_interval_covers_the_median_and_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.8, 0.1, 20), rng.normal(0.8, 0.1, 500)
    a, b = metrics.bootstrap_median(few, seed=0), metrics.bootstrap_median(many, seed=0, n_resamples=4000)
    assert a.low <= a.value <= a.high and b.low <= b.value <= b.high
    assert b.sd < a.sd / 3  # sqrt(500 / 20) = 5
    # The median's standard error for a normal sample is about 1.2533 sigma / sqrt(n).
    assert b.sd == pytest.approx(1.2533 * 0.1 / np.sqrt(500), rel=0.25)
    assert metrics.bootstrap_median(few, seed=0) == a  # a fixed seed is reproducible
    assert metrics.bootstrap_median([0.5] * 7, seed=3) == (0.5, 0.5, 0.5, 0.0)


def test_bootstrap_median_drops_nan_and_rejects_nothing_finite():
    assert metrics.bootstrap_median([np.nan, 1.0, 2.0, 3.0], seed=0, n_resamples=500).value == 2.0
    with pytest.raises(ValueError, match="no finite value"):
        metrics.bootstrap_median([np.nan], seed=0)
    with pytest.raises(ValueError, match="level"):
        metrics.bootstrap_median([1.0], seed=0, level=1.5)
