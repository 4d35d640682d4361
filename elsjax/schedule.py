"""Noise schedule and the deterministic DDIM step (SPEC 2.1, 2.3).

The reference uses the "legacy" cosine schedule, Nichol & Dhariwal's cosine without the +0.008 shift in the
numerator:

    alpha_bar(t) = cos^2((pi / 2) * t / 1.008),   beta(t) = 1 - alpha_bar(t),

so ``alpha_bar(0) = 1`` exactly and ``alpha_bar(1) = 1.554e-4 > 0``. ``beta`` here is the *cumulative* noise
variance (the reference calls it "beta"), not the per-step DDPM beta. Everything is float32, as in the reference.

Example:
    >>> import jax.numpy as jnp
    >>> from elsjax import schedule
    >>> a, b = schedule.signal_noise_std(jnp.float32(0.5))
    >>> round(float(a), 4), round(float(b), 4)
    (0.7115, 0.7027)
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = [
    "beta",
    "alpha_bar",
    "signal_noise_std",
    "ddim_coefficients",
    "ddim_step",
    "time_grid",
]

_HALF_PI_OVER_1008 = math.pi / 2.0 / 1.008


def beta(t):
    """Cumulative noise variance ``beta(t) = 1 - cos^2(pi t / 2.016)`` (float32)."""
    t = jnp.asarray(t, jnp.float32)
    return 1.0 - jnp.cos(t * jnp.float32(_HALF_PI_OVER_1008)) ** 2


def alpha_bar(t):
    """Signal variance ``alpha_bar(t) = 1 - beta(t)``, formed as the reference does (1 - beta in float32)."""
    return 1.0 - beta(t)


def signal_noise_std(t):
    """Returns ``(a_t, b_t) = (sqrt(alpha_bar(t)), sqrt(beta(t)))``: x_t = a_t x_0 + b_t eps."""
    bt = beta(t)
    return jnp.sqrt(1.0 - bt), jnp.sqrt(bt)


def ddim_coefficients(t, t_prev):
    """Coefficients ``(A, B)`` of the deterministic DDIM update ``x_prev = A x + B eps_hat`` (SPEC 2.3).

    ``A = sqrt(alpha_bar(t_prev) / alpha_bar(t))`` and ``B = b(t_prev) - A b(t)``. At ``t_prev = 0`` the update
    returns the clean estimate ``x0_hat = (x - b_t eps_hat) / a_t``.
    """
    ab, ab_prev = alpha_bar(t), alpha_bar(t_prev)
    coef_a = jnp.sqrt(ab_prev / ab)
    coef_b = jnp.sqrt(beta(t_prev)) - coef_a * jnp.sqrt(beta(t))
    return coef_a, coef_b


def ddim_step(x, eps_hat, t, t_prev):
    """One deterministic DDIM step from time ``t`` to ``t_prev`` given a noise estimate ``eps_hat``.

    Args:
      x: the current sample, shape ``[B, ...]`` (or any shape when ``t`` is a scalar).
      eps_hat: the noise estimate, same shape as ``x``.
      t: current time, a scalar or ``[B]``.
      t_prev: the next (smaller) time, a scalar or ``[B]``.

    Returns:
      ``x`` at ``t_prev``.
    """
    coef_a, coef_b = ddim_coefficients(t, t_prev)
    shape = (-1,) + (1,) * (jnp.ndim(x) - 1) if jnp.ndim(coef_a) else ()
    return jnp.reshape(coef_a, shape) * x + jnp.reshape(coef_b, shape) * eps_hat


def time_grid(n: int, start: int | None = None, stop: int = 0) -> np.ndarray:
    """Pairs ``(t, t_prev)`` of the reference's uniform reverse grid, as float32 ``[steps, 2]``.

    Steps run ``i = start, start - 1, ..., stop + 1`` with ``t = i / n`` and ``t_prev = t - 1/n``, both computed in
    float32 exactly as the reference does (so ``t_prev`` can differ from ``(i - 1) / n`` by one ulp).

    * The network DDIM sampler uses ``start = n`` (n evaluations from t = 1).
    * The machine sampler uses ``n = len(scales) = 20`` and ``start = n - 1`` (19 evaluations from t = 0.95).
    """
    if start is None:
        start = n
    t = np.array([np.float32(i / n) for i in range(start, stop, -1)], np.float32)
    t_prev = (t - np.float32(1.0 / n)).astype(np.float32)
    t_prev[t_prev < 0] = 0.0  # rounding can leave -1e-9 at the last step; the schedule is defined on [0, 1]
    return np.stack([t, t_prev], axis=1)
