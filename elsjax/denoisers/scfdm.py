"""Scarvelis et al.'s smoothed closed-form diffusion model, sigma-CFDM (docs/maths.md §12.4).

The closed-form (IS) score is smoothed by averaging it over Gaussian perturbations of its input, with a width
``sigma`` (the knob ``smoothing``) in the units of ``x_t``:

    mu_sigma(x, t) = E_{eps ~ N(0, I)} [ mu_IS(x + sigma eps, t) ],     s_sigma(x, t) = -(x - a_t mu_sigma) / b_t^2,

as the authors' ``SmoothedScore`` does (the softmax weights at the perturbed input, the residual at ``x`` itself),
which biases samples towards barycentres of nearby training images. There is no closed form: the expectation of a
softmax whose logits are Gaussian (logit ``n`` moves by ``a sigma <eps, phi_n> / b^2``) is a logistic-normal
integral. elsjax estimates it by Monte Carlo with ``samples`` draws of ``eps``, drawn once from an explicit
``key`` at build time (like the authors' noise, fixed for every call; the same draws for every image, so an
image's result does not depend on its batch). The estimate is unbiased; its standard error falls as
``1 / sqrt(samples)`` (measured in tests/test_denoisers_field.py). ``smoothing = 0`` is IS exactly and needs no key.

Example:
    >>> import jax, numpy as np
    >>> from elsjax import denoisers
    >>> train = np.random.default_rng(0).uniform(-1, 1, (8, 4, 4, 1)).astype(np.float32)
    >>> d = denoisers.build("scfdm", train, smoothing=0.5, samples=4, key=jax.random.key(0))
    >>> d.denoise(np.zeros((2, 4, 4, 1), np.float32), 0.5).shape
    (2, 4, 4, 1)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from elsjax import posterior
from elsjax.denoisers._base import register, static
from elsjax.denoisers._field import count, no_mesh, no_provenance, number, prng_key
from elsjax.denoisers.ideal import Ideal

__all__ = ["SmoothedCFDM", "DEFAULT_SAMPLES"]

DEFAULT_SAMPLES = 16


@register("scfdm")
@dataclasses.dataclass(frozen=True)
class SmoothedCFDM(Ideal):
    """sigma-CFDM: IS's posterior mean averaged over ``samples`` Gaussian perturbations of width ``smoothing``.

    Knobs: ``smoothing`` (sigma >= 0, default 0: IS), ``samples`` (Monte Carlo draws, default 16), ``key`` (a JAX
    PRNG key or an int seed; required when ``smoothing > 0``).
    """

    perturbations: jax.Array = None  # [samples, H, W, C] float32 standard normal draws (None when smoothing = 0)
    smoothing: float = static(default=0.0)

    knobs = ("smoothing", "samples", "key")

    @classmethod
    def build(cls, images, k=None, *, smoothing=0.0, samples=DEFAULT_SAMPLES, key=None, mesh=None, **options):
        no_mesh(cls.name, mesh)
        smoothing = number("smoothing", smoothing)
        samples = count("samples", samples, 1)
        machine = super().build(images, k, **options)
        if smoothing == 0.0:
            return machine
        key = prng_key(cls.name, key, "with smoothing > 0 is a Monte Carlo estimate")
        draws = jax.random.normal(key, (samples,) + tuple(images.shape[1:]), jnp.float32)
        return dataclasses.replace(machine, perturbations=draws, smoothing=smoothing)

    def accumulate(self, x, t, accumulator, combine=None):
        if not isinstance(accumulator, posterior.PosteriorMean):
            raise no_provenance(self.name)
        if self.smoothing == 0.0:
            return super().accumulate(x, t, accumulator, combine)
        m, n = self.perturbations.shape[0], x.shape[0]
        moved = (x[None] + self.smoothing * self.perturbations[:, None]).reshape((m * n,) + x.shape[1:])
        mean = super().accumulate(moved, jnp.tile(t, m), accumulator, combine)
        return jnp.mean(mean.reshape((m,) + x.shape), axis=0)

    @classmethod
    def fewest_occurrences(cls, shape, k) -> int:
        raise no_provenance(cls.name)
