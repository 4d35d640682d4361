"""The EDM parameterisation (Karras et al. 2022) on elsjax's schedule, and its Heun sampler (docs/maths.md §12.8).

EDM writes the forward process as ``x~ = x0 + sigma eps``. elsjax's ``x_t = a_t x0 + b_t eps`` is the same process
in the variable ``x~ = x_t / a_t`` with

    sigma(t) = b_t / a_t = tan(pi t / 2.016),      t(sigma) = (2.016 / pi) arctan(sigma),

so every sigma in [0, tan(pi / 2.016) = 80.2] (EDM's usual sigma_max is 80) is one t in [0, 1]. The denoiser
``D(x~; sigma) = E[x0 | x~]`` of any :class:`~elsjax.sampler.EpsFn` (a trained net, or a training-free denoiser's
``Denoiser.eps``) is ``(x - b eps_hat(x, t)) / a`` at ``x = a x~``, and the probability-flow ODE is

    dx~ / dsigma = (x~ - D(x~; sigma)) / sigma.

:func:`sample` integrates it from ``sigma_max`` down to 0 on a sigma grid (:func:`karras_sigmas`, EDM's rho = 7
by default) with Heun's second-order method (EDM's Algorithm 1, deterministic: the last step, to sigma = 0, is an
Euler step) or with Euler's. The seeds are standard normal; the sample starts at ``x~ = sigma_max * seeds``.

Example:
    >>> import jax.numpy as jnp
    >>> from elsjax import edm
    >>> eps_fn = lambda params, x, t, y: jnp.zeros_like(x)      # predicts no noise: D(x~) = x~
    >>> edm.sample(eps_fn, None, jnp.ones((1, 2, 2, 1)), edm.karras_sigmas(4)).shape
    (1, 2, 2, 1)
    >>> round(float(edm.time_of_sigma(edm.sigma_of_time(0.3))), 6)
    0.3
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import noise

__all__ = ["SIGMA_MAX", "sigma_of_time", "time_of_sigma", "karras_sigmas", "denoiser_of", "sample", "METHODS"]

SIGMA_MAX = math.tan(math.pi / 2.016)  # sigma at t = 1: 80.2
METHODS = ("heun", "euler")


def sigma_of_time(t):
    """``sigma = b_t / a_t = tan(pi t / 2.016)`` (float32, as :func:`elsjax.noise.signal_noise_std`)."""
    a, b = noise.signal_noise_std(t)
    return b / a


def time_of_sigma(sigma):
    """``t = (2.016 / pi) arctan(sigma)``, the time of noise level ``sigma`` (float32)."""
    return jnp.arctan(jnp.asarray(sigma, jnp.float32)) * jnp.float32(2.016 / math.pi)


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> np.ndarray:
    """EDM's noise levels: ``n`` levels from ``sigma_max`` down to ``sigma_min`` spaced evenly in ``sigma^(1/rho)``,
    then 0; float32 ``[n + 1]``.

    ``sigma_max`` may be at most :data:`SIGMA_MAX` (t = 1) and ``sigma_min`` at least ``sigma(MIN_TIME)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if not 0 < sigma_min < sigma_max <= SIGMA_MAX * (1 + 1e-6):
        raise ValueError(
            f"sigma_max: expected 0 < sigma_min < sigma_max <= {SIGMA_MAX:.4g} (t = 1), got {sigma_min}, {sigma_max}"
        )
    if rho <= 0:
        raise ValueError(f"rho: expected a positive number, got {rho}")
    ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return np.append(sigmas, 0.0).astype(np.float32)


def denoiser_of(eps_fn, params, x_tilde, sigma, y=None):
    """EDM's ``D(x~; sigma)``, the clean estimate, of an :class:`~elsjax.sampler.EpsFn` at ``x~ [B, ...]``, ``sigma
    [B]`` (> 0)."""
    t = time_of_sigma(sigma)
    a, b = noise.signal_noise_std(t)
    shape = (-1,) + (1,) * (x_tilde.ndim - 1)
    a, b = a.reshape(shape), b.reshape(shape)
    x = a * x_tilde
    return (x - b * eps_fn(params, x, t, y)) / a


@functools.partial(jax.jit, static_argnames=("eps_fn", "method"))
def _sample(eps_fn, params, seeds, sigmas, y, method: str):
    batch = seeds.shape[0]
    steps = sigmas.shape[0] - 1

    def drift(x, sigma):
        return (x - denoiser_of(eps_fn, params, x, jnp.broadcast_to(sigma, (batch,)), y)) / sigma

    def step(i, x):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = drift(x, s)
        euler = x + (s_next - s) * d
        if method == "euler":
            return euler
        # Heun's correction, except on the step to sigma = 0 (where the drift is undefined): EDM's Algorithm 1.
        corrected = lambda: x + (s_next - s) * 0.5 * (d + drift(euler, s_next))
        return lax.cond(s_next > 0, corrected, lambda: euler)

    return lax.fori_loop(0, steps, step, sigmas[0] * seeds)


def sample(eps_fn, params, seeds, sigmas, *, y=None, method: str = "heun"):
    """Samples by integrating the probability-flow ODE over ``sigmas`` (descending, e.g. :func:`karras_sigmas`).

    Args:
      eps_fn: an :class:`~elsjax.sampler.EpsFn` (hashable; a trained net's, or ``elsjax.denoisers.Denoiser.eps``).
      params: its parameters (the net's weights, or the built denoiser).
      seeds: ``[B, H, W, C]`` standard normal noise; the sample starts at ``x~ = sigmas[0] * seeds``.
      sigmas: ``[n + 1]`` noise levels, descending, the last one 0, at most :data:`SIGMA_MAX`.
      y: labels ``[B]`` for a class-conditional net.
      method: ``"heun"`` (second order, 2n - 1 evaluations) or ``"euler"`` (n evaluations).

    Returns:
      ``[B, H, W, C]``: ``x~`` at ``sigma = 0``, the sample.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    sigmas = np.asarray(sigmas, np.float32)
    if sigmas.ndim != 1 or sigmas.size < 2 or np.any(np.diff(sigmas) >= 0) or sigmas[-1] < 0:
        raise ValueError("sigmas: expected at least 2 descending noise levels, the last >= 0")
    if sigmas[0] > SIGMA_MAX * (1 + 1e-6) or (sigmas[:-1] <= 0).any():
        raise ValueError(f"sigmas: every level but the last must lie in (0, {SIGMA_MAX:.4g}] (t <= 1)")
    y = None if y is None else jnp.asarray(y, jnp.int32)
    return _sample(eps_fn, params, jnp.asarray(seeds, jnp.float32), jnp.asarray(sigmas), y, method)
