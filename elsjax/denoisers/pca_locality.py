"""Lukoianov et al.'s PCA-locality denoiser (docs/maths.md §12.2), with one exact softmax per pixel over the whole
training set.

The masks come from the Wiener filter of the training set's Gaussian fit (:mod:`elsjax.denoisers.wiener`),
evaluated at the call's own t: ``W_t = U diag(a^2 lambda / (a^2 lambda + b^2)) U^T`` (the matrix that maps
``x / a`` to the Wiener estimate of ``x0 - mu``). Pixel ``i``'s mask is row ``i`` of ``W_t`` divided by its diagonal,
binarised against ``tau`` times the largest ``|W_t[i, j] / W_t[i, i]|`` of the whole matrix:

    M_t[i, j] = 1  if  |W_t[i, j] / W_t[i, i]| >= tau * max_{i', j'} |W_t[i', j'] / W_t[i', i']|,  else 0,

and pixel ``i``'s posterior runs over the training images with the logits

    l_n(i) = -sum_j M_t[i, j] (x_j - a phi_n[j])^2 / (2 b^2),     mu(i) = sum_n softmax_n(l(i)) phi_n[i].

"Pixel" means one entry of the image (a channel of a pixel): the Wiener filter, and so the mask, is over all
``D = H W C`` entries, and each entry has its own softmax. The softmax is streamed over chunks of training images
through the shared accumulator (:mod:`elsjax.posterior`), exactly like LS: one normalisation over the whole set.
With ``tau = 0`` every entry of the mask is kept and every pixel's logits are IS's: the denoiser is IS. On a mesh
the training images are split over ``"entries"`` and the softmax states merged exactly (:class:`OnMesh`); the
Gaussian fit's arrays, and so the masks, are on every device. On a mesh of several processes, each holding its
share of the training set (:func:`elsjax.sharding.local_share`), the fit is of the whole set: each process's mean
and scatter matrix, gathered and merged exactly (:func:`elsjax.denoisers._field.gaussian_fit_of_processes`).

The knob ``scope="row"`` thresholds each row against its own largest ratio instead of the whole matrix's. With the
whole matrix's (the default, as analytic-diffusion-studio's code), a nearly constant pixel (variance 2e-7 on MNIST:
one training image inks it faintly) has a tiny ``W_t[i, i]`` and ratios up to ~100, so ``tau = 0.02`` sets the
threshold near 2 and almost no pixel keeps even its own entry (0.3-1.2% of the mask on 1000 MNIST digits, every
row of a varying pixel losing its diagonal): such a pixel's posterior is then uniform, the training mean.

Example:
    >>> import numpy as np
    >>> from elsjax import denoisers
    >>> train = np.random.default_rng(0).uniform(-1, 1, (20, 6, 6, 1)).astype(np.float32)
    >>> d = denoisers.build("pca_locality", train, tau=0.05)
    >>> d.denoise(np.zeros((2, 6, 6, 1), np.float32), 0.5).shape
    (2, 6, 6, 1)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from elsjax import noise, posterior, sharding
from elsjax.denoisers._base import register, static
from elsjax.denoisers._field import gaussian_fit, gaussian_fit_of_processes, number
from elsjax.denoisers._tables import OnMesh, per_pixel
from elsjax.denoisers.local import Local

__all__ = ["PCALocality", "DEFAULT_TAU", "SCOPES", "masks"]

DEFAULT_TAU = 0.02  # as published
SCOPES = (
    "matrix",
    "row",
)  # what tau is relative to: the whole matrix's largest ratio (the authors' code), or each row's
IMAGE_CHUNK = 64  # training images per streamed chunk (the logits of a chunk are [B, D, chunk])


def masks(eigenvalues, eigenvectors, varying, tau: float, t, scope: str = "matrix"):
    """The binary masks ``[B, D, D]`` (float32 0/1; row i is pixel i's mask) at times ``t [B]`` (traced); the
    threshold is ``tau`` times the largest ratio of the whole matrix (``scope="matrix"``) or of each row (``"row"``)."""
    a, b = noise.signal_noise_std(t)
    lam = eigenvalues[None]
    shrink = (a * a)[:, None] * lam / ((a * a)[:, None] * lam + (b * b)[:, None])  # [B, r]
    w = jnp.matmul(eigenvectors[None] * shrink[:, None, :], eigenvectors.T, precision=lax.Precision.HIGHEST)
    diag = jnp.diagonal(w, axis1=1, axis2=2)  # [B, D]
    # A pixel that is constant over the training set has a zero row: its mask is empty (any mask gives the same
    # value there, the constant), rather than 0 / 0.
    ratio = jnp.where(varying[None, :, None], w / jnp.where(varying[None], diag, 1.0)[:, :, None], 0.0)
    size = jnp.abs(ratio)
    threshold = tau * jnp.max(size, axis=(1, 2) if scope == "matrix" else (2,), keepdims=True)
    return (size >= threshold).astype(jnp.float32)


@register("pca_locality")
@dataclasses.dataclass(frozen=True)
class PCALocality(OnMesh):
    """PCA-locality: a per-pixel softmax over training images restricted to a Wiener-filter mask (knob ``tau``).

    Attributes:
      tables: ``(ImageStack,)``, the training images in chunks (as LS streams them).
      eigenvalues: ``[r]`` float32, the training covariance's positive eigenvalues.
      eigenvectors: ``[D, r]`` float32.
      varying: ``[D]`` bool, the pixels that are not constant over the training set.
      tau: the mask threshold (static).
      image_shape: ``(H, W, C)``.
      mesh: None (one device), or the ``jax.sharding.Mesh`` the training images are split over.
    """

    tables: tuple
    eigenvalues: jax.Array
    eigenvectors: jax.Array
    varying: jax.Array
    tau: float = static()
    image_shape: tuple[int, int, int] = static()
    scope: str = static(default="matrix")
    mesh: Any = static(default=None)

    takes_k = False
    knobs = ("tau", "scope")

    @classmethod
    def build(
        cls, images, k=None, *, tau=DEFAULT_TAU, scope="matrix", chunk_size=None, mesh=None, **options
    ) -> PCALocality:
        mesh = sharding.check_mesh(mesh)
        tau = number("tau", tau)
        if scope not in SCOPES:
            raise ValueError(f"scope: expected one of {SCOPES}, got {scope!r}")
        # On a mesh of several processes each holds its share of the training set: the masks need the whole set's fit.
        fit = gaussian_fit(images) if mesh is None else gaussian_fit_of_processes(images)
        return cls(
            tables=Local.image_tables(images, chunk_size=chunk_size or IMAGE_CHUNK, mesh=mesh),
            eigenvalues=jnp.asarray(fit.eigenvalues, jnp.float32),
            eigenvectors=jnp.asarray(fit.eigenvectors, jnp.float32),
            varying=jnp.asarray(fit.variance > 0),
            tau=tau,
            image_shape=tuple(images.shape[1:]),
            scope=scope,
            mesh=mesh,
        )

    def masks(self, t):
        """The masks ``[B, D, D]`` at times ``t [B]``."""
        return masks(self.eigenvalues, self.eigenvectors, self.varying, self.tau, t, self.scope)

    def accumulate(self, x, t, accumulator, combine=None):
        n_img, h, w, c = x.shape
        if c > 1 and not isinstance(accumulator, posterior.PosteriorMean):
            raise ValueError(
                f"{self.name}: provenance needs one channel (each channel of a pixel has its own posterior), got {c}"
            )
        a, b = noise.signal_noise_std(t)
        d = h * w * c
        flat = x.reshape(n_img, d)
        inv_two_var = 0.5 / (b * b)
        mask = None if self.tau == 0.0 else self.masks(t)
        stack = self.tables[0]
        chunk = stack.images.shape[1]

        def body(state, item):
            i, (images, log_w) = item  # [Nc, H, W, C], [Nc]
            phi = images.reshape(chunk, d)
            diff = flat[:, None, :] - a[:, None, None] * phi[None]
            sq = diff * diff  # [B, Nc, D]
            if mask is None:  # tau = 0: every pixel's logits are the whole image's (IS)
                dist = jnp.broadcast_to(jnp.sum(sq, axis=-1)[:, None, :], (n_img, d, chunk))
            else:
                dist = jnp.einsum("bnj,bij->bin", sq, mask, precision=posterior.PRECISION)  # [B, D, Nc]
            logits = -dist * inv_two_var[:, None, None] + log_w[None, None, :]
            logits = logits.reshape(n_img * d, chunk)

            def weighted_sum(p):
                p = p.reshape(n_img, d, chunk)
                return jnp.einsum("bin,ni->bi", p, phi, precision=posterior.PRECISION).reshape(-1, 1)

            return accumulator.update(state, posterior.Chunk(logits, weighted_sum, log_w, i * chunk)), None

        state = accumulator.init(n_img * d, 1)
        items = (jnp.arange(stack.images.shape[0], dtype=jnp.int32), (stack.images, stack.log_weights))
        state, _ = lax.scan(body, state, items)
        out = accumulator.finalize(state if combine is None else combine(state))
        if not isinstance(out, tuple):
            return out.reshape(x.shape)
        mean, *rest = out  # one channel: the entries are the pixels
        return (mean.reshape(x.shape),) + tuple(per_pixel(v, n_img, h, w) for v in rest)

    @classmethod
    def memory_bound(cls, shape, k, itemsize: int) -> int:
        n, h, w, c = shape
        d = h * w * c
        return n * (d * 4 + 4) + 4 * d * (min(n, d) + 2)

    # Provenance: an entry is a training image, read at the query pixel itself (as LS).

    @classmethod
    def fewest_occurrences(cls, shape, k) -> int:
        return int(shape[0])

    @classmethod
    def occurrence_tables(cls, images, k):
        return None

    @classmethod
    def locate(cls, entry, tables, k, num_images: int):
        return Local.locate(entry, tables, k, num_images)

    @classmethod
    def occurrences(cls, train, k, pixel, image: int, position) -> np.ndarray:
        return Local.occurrences(train, k, pixel, image, position)
