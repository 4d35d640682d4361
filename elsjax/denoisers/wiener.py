"""The Wiener filter (docs/maths.md §12.1): the exact posterior mean of the Gaussian fitted to the training images.

With the training set's mean ``mu`` and covariance ``Sigma = U diag(lambda) U^T`` (maximum likelihood, over images),

    E[x0 | x_t] = mu + Sigma a (a^2 Sigma + b^2 I)^-1 (x - a mu) = mu + U diag(a lambda / (a^2 lambda + b^2)) U^T (x - a mu),

computed in the eigenbasis: one projection and one reconstruction per image, no ``D x D`` matrix at call time. The
eigendecomposition is done once per training set (and class) on the host in float64 and stored in float32.

Example:
    >>> import numpy as np
    >>> from elsjax import denoisers
    >>> train = np.random.default_rng(0).uniform(-1, 1, (20, 6, 6, 1)).astype(np.float32)
    >>> d = denoisers.build("wiener", train)
    >>> d.denoise(np.zeros((2, 6, 6, 1), np.float32), 0.5).shape
    (2, 6, 6, 1)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from elsjax import noise, posterior
from elsjax.denoisers._base import Denoiser, register, static
from elsjax.denoisers._field import gaussian_fit, no_mesh

__all__ = ["Wiener"]


@register("wiener")
@dataclasses.dataclass(frozen=True)
class Wiener(Denoiser):
    """The Gaussian posterior mean of the training set's mean and covariance (no patch size, no knob).

    Attributes:
      mean: ``[D]`` float32, the mean training image (flattened, row, column, channel).
      eigenvalues: ``[r]`` float32, the covariance's positive eigenvalues.
      eigenvectors: ``[D, r]`` float32, their eigenvectors.
      image_shape: ``(H, W, C)``.
    """

    mean: jax.Array
    eigenvalues: jax.Array
    eigenvectors: jax.Array
    image_shape: tuple[int, int, int] = static()

    takes_k = False

    @classmethod
    def build(cls, images, k=None, *, mesh=None, **options) -> Wiener:
        no_mesh(cls.name, mesh)
        fit = gaussian_fit(images)
        as32 = lambda v: jnp.asarray(v, jnp.float32)
        return cls(as32(fit.mean), as32(fit.eigenvalues), as32(fit.eigenvectors), tuple(images.shape[1:]))

    def posterior_mean(self, x, t):
        a, b = noise.signal_noise_std(t)
        flat = x.reshape(x.shape[0], -1)
        centred = flat - a[:, None] * self.mean[None]
        coeff = jnp.matmul(centred, self.eigenvectors, precision=lax.Precision.HIGHEST)  # [B, r]
        lam = self.eigenvalues[None]
        gain = a[:, None] * lam / ((a * a)[:, None] * lam + (b * b)[:, None])
        out = self.mean[None] + jnp.matmul(coeff * gain, self.eigenvectors.T, precision=posterior.PRECISION)
        return out.reshape(x.shape)

    @classmethod
    def memory_bound(cls, shape, k, itemsize: int) -> int:
        n, h, w, c = shape
        d = h * w * c
        return 4 * d * (min(n, d) + 2)
