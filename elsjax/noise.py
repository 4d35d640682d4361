"""The noise schedule (the forward process) and the deterministic DDIM step (docs/maths.md §2).

The reference uses the "legacy" cosine schedule, Nichol & Dhariwal's cosine without the +0.008 shift in the
numerator:

    alpha_bar(t) = cos^2((pi / 2) * t / 1.008),   beta(t) = 1 - alpha_bar(t) = sin^2((pi / 2) * t / 1.008),

so ``alpha_bar(0) = 1`` exactly and ``alpha_bar(1) = 1.554e-4 > 0``. ``beta`` here is the *cumulative* noise
variance (the reference calls it "beta"), not the per-step DDPM beta. Everything is float32, as in the reference;
``a_t`` and ``b_t`` are computed as the cosine and the sine themselves (see :func:`signal_noise_std`).

Example:
    >>> import jax.numpy as jnp
    >>> from elsjax import noise
    >>> a, b = noise.signal_noise_std(jnp.float32(0.5))
    >>> round(float(a), 4), round(float(b), 4)
    (0.7115, 0.7027)
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = [
    "MIN_TIME",
    "beta",
    "alpha_bar",
    "signal_noise_std",
    "ddim_coefficients",
    "ddim_step",
    "time_grid",
]

_HALF_PI_OVER_1008 = math.pi / 2.0 / 1.008

# The smallest time the machines accept. The kernel's logits scale as a_t / b_t^2 ~ 0.4 / t^2 times a sum over up
# to C k^2 ~ 3e3 query-patch products: at t = 1e-12 they stay below 1e28, far from float32 overflow (3.4e38),
# while b_t^2 itself underflows only below t = 1e-19. Near t = 0 the posterior is one-hot on the nearest patch.
MIN_TIME = 1e-12


def _angle(t):
    return jnp.asarray(t, jnp.float32) * jnp.float32(_HALF_PI_OVER_1008)


def beta(t):
    """Cumulative noise variance ``beta(t) = 1 - cos^2(pi t / 2.016) = sin^2(pi t / 2.016)`` (float32)."""
    return jnp.sin(_angle(t)) ** 2


def alpha_bar(t):
    """Signal variance ``alpha_bar(t) = cos^2(pi t / 2.016) = 1 - beta(t)`` (float32)."""
    return jnp.cos(_angle(t)) ** 2


def signal_noise_std(t):
    """Returns ``(a_t, b_t) = (sqrt(alpha_bar(t)), sqrt(beta(t)))``: x_t = a_t x_0 + b_t eps.

    Both come straight from the cosine and the sine. The reference forms ``beta = 1 - cos^2`` and
    ``a = sqrt(1 - beta)`` in float32, which rounds ``b_t`` to 0 below t = 1.6e-4 (an all-NaN score there) and
    loses relative precision at small t (about 1e-5 at t = 0.05) and ``a_t`` near t = 1; the values agree with it
    to 1e-6 everywhere (tests/test_noise.py) and stay accurate down to t = :data:`MIN_TIME`.
    """
    angle = _angle(t)
    return jnp.cos(angle), jnp.sin(angle)


def ddim_coefficients(t, t_prev):
    """Coefficients ``(A, B)`` of the deterministic DDIM update ``x_prev = A x + B eps_hat`` (docs/maths.md §2.3).

    ``A = a(t_prev) / a(t)`` and ``B = b(t_prev) - A b(t)``. At ``t_prev = 0`` the update returns the clean
    estimate ``x0_hat = (x - b_t eps_hat) / a_t``.
    """
    a, b = signal_noise_std(t)
    a_prev, b_prev = signal_noise_std(t_prev)
    coef_a = a_prev / a
    return coef_a, b_prev - coef_a * b


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
