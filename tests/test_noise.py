"""Schedule and DDIM step: docs/maths.md §2.1 table values, the oracle's float32 values, and the grids of docs/maths.md §3."""

import numpy as np
import pytest

from elsjax import noise

# docs/maths.md §2.1: t, beta, alpha_bar, a, b.
SPEC_TABLE = [
    (1.00, 0.999845, 1.554e-4, 0.01247, 0.99992),
    (0.95, 0.991853, 8.147e-3, 0.09026, 0.99592),
    (0.90, 0.971942, 2.806e-2, 0.16751, 0.98587),
    (0.80, 0.898566, 0.10143, 0.31849, 0.94793),
    (0.50, 0.493767, 0.50623, 0.71150, 0.70269),
    (0.20, 0.094031, 0.90597, 0.95182, 0.30664),
    (0.10, 0.024088, 0.97591, 0.98788, 0.15520),
    (0.05, 0.006059, 0.99394, 0.99697, 0.07784),
    (0.00, 0.0, 1.0, 1.0, 0.0),
]


@pytest.mark.parametrize("t, beta, alpha_bar, a, b", SPEC_TABLE)
def test_spec_table(t, beta, alpha_bar, a, b):
    t = np.float32(t)
    got_a, got_b = noise.signal_noise_std(t)
    np.testing.assert_allclose(noise.beta(t), beta, atol=1e-6)
    np.testing.assert_allclose(noise.alpha_bar(t), alpha_bar, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(got_a, a, atol=1e-5)
    np.testing.assert_allclose(got_b, b, atol=1e-5)


def test_endpoints():
    assert float(noise.alpha_bar(0.0)) == 1.0
    np.testing.assert_allclose(noise.alpha_bar(1.0), 1.5541e-4, rtol=1e-3)


def test_matches_reference_float32(oracle):
    ref = oracle("schedule.npz")
    a, b = noise.signal_noise_std(ref["t"])
    np.testing.assert_allclose(noise.beta(ref["t"]), ref["beta"], atol=1e-6)
    np.testing.assert_allclose(noise.alpha_bar(ref["t"]), ref["alpha_bar"], atol=1e-6)
    np.testing.assert_allclose(a, ref["a"], atol=1e-6)
    np.testing.assert_allclose(b, ref["b"], atol=1e-6)


def test_ddim_coefficients_match_reference(oracle):
    ref = oracle("schedule.npz")
    grid = noise.time_grid(20)
    np.testing.assert_array_equal(grid[:, 0], ref["ddim20_t"])
    np.testing.assert_array_equal(grid[:, 1], ref["ddim20_t_prev"])
    coef_a, coef_b = noise.ddim_coefficients(grid[:, 0], grid[:, 1])
    # Row 0 (t = 1) is ill-conditioned in float32: alpha_bar(1) = 1 - beta loses digits (oracle README).
    np.testing.assert_allclose(coef_a[1:], ref["ddim20_A"][1:], rtol=1e-6)
    np.testing.assert_allclose(coef_b[1:], ref["ddim20_B"][1:], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(coef_a[0], ref["ddim20_A"][0], rtol=1e-3)
    np.testing.assert_allclose(coef_b[0], ref["ddim20_B"][0], rtol=1e-3)


@pytest.mark.parametrize(
    "t, t_prev, coef_a, coef_b",
    [
        (1.0, 0.95, 7.2403, -6.2438),
        (0.95, 0.90, 1.8558, -0.8624),
        (0.5, 0.45, 1.0738, -0.1094),
        (0.05, 0.0, 1.0030, -0.0781),
    ],
)
def test_spec_ddim_pairs(t, t_prev, coef_a, coef_b):
    # the table of docs/maths.md §2.1 is float64; at t = 1 float32 alpha_bar(1) = 1 - beta is off by 4.6e-4 relative (oracle README).
    got_a, got_b = noise.ddim_coefficients(np.float32(t), np.float32(t_prev))
    np.testing.assert_allclose([got_a, got_b], [coef_a, coef_b], rtol=1e-4, atol=6e-5)


def test_ddim_step_is_the_clean_estimate_at_zero():
    rng = np.random.default_rng(0)
    x, eps = rng.normal(size=(2, 3, 3, 1)).astype(np.float32), rng.normal(size=(2, 3, 3, 1)).astype(np.float32)
    t = np.float32(0.05)
    a, b = noise.signal_noise_std(t)
    out = noise.ddim_step(x, eps, np.full(2, t), np.zeros(2, np.float32))
    np.testing.assert_allclose(out, (x - b * eps) / a, rtol=1e-5, atol=1e-6)


def test_grids():
    net = noise.time_grid(20)
    machine = noise.time_grid(20, start=19)
    assert net.shape == (20, 2) and machine.shape == (19, 2)
    np.testing.assert_allclose(net[0], [1.0, 0.95])
    np.testing.assert_allclose(machine[0], [0.95, 0.90])
    np.testing.assert_allclose(machine[-1], [0.05, 0.0])
