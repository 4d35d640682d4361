"""The time conversion of experiments/studio_side_by_side.py (the comparison itself needs torch and the studio's code,
which CI has not): elsjax's t <-> the studio's ``alpha_prod``."""

import numpy as np
import pytest
from experiment_scripts import load

from elsjax import noise


@pytest.fixture(scope="module")
def studio():
    return load("studio_side_by_side")


def test_alpha_prod_is_the_signal_variance_and_round_trips(studio):
    t = np.array([1e-3, 0.05, 0.1, 0.4, 0.7, 0.9, 0.99, 1.0], np.float32)
    ap = studio.studio_alphas_cumprod(t)
    a, b = (np.asarray(v, np.float64) for v in noise.signal_noise_std(t))
    # The studio's x_t = sqrt(ap) x0 + sqrt(1 - ap) eps is elsjax's a_t x0 + b_t eps.
    np.testing.assert_allclose(np.sqrt(ap), a, rtol=1e-7)
    # The studio forms the noise variance as 1 - ap (float32 in its scheduler), which cancels near t = 0: from a
    # float32 a_t it is 1% off at t = 1e-3, and so is the time mapped back.
    np.testing.assert_allclose(np.sqrt(1 - ap[1:]), b[1:], rtol=2e-5)
    np.testing.assert_allclose(studio.elsjax_time(ap[1:]), t[1:], rtol=2e-5)
    assert abs(np.sqrt(1 - ap[0]) / b[0] - 1) > 1e-3
    # Values of docs/maths.md §2.1's table.
    np.testing.assert_allclose(studio.studio_alphas_cumprod([0.5, 0.9]), [0.50623, 2.8058e-2], rtol=1e-4)


def test_the_studios_own_schedule_in_elsjax_time(studio):
    table = studio.studio_training_alphas_cumprod()
    assert table.shape == (1000,) and np.all(np.diff(table) < 0)
    t = studio.elsjax_time(table)
    assert np.all(np.diff(t) > 0) and 0 < t[0] < 0.01
    # Its last training step is noisier than elsjax's t = 1 (alpha_bar(1) = 1.55e-4).
    assert table[-1] < float(noise.alpha_bar(1.0)) and t[-1] > 1
    steps = studio.studio_ddim_steps(10)
    assert steps.tolist() == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
