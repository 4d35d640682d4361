"""Independent float64 NumPy brute forces of the field's denoisers (docs/maths.md §12), for tests.

Written from the definitions: explicit loops over pixels, crops and perturbations, linear solves instead of
eigendecompositions, differences instead of expanded logits. No code shared with elsjax. Each returns the posterior
mean (clean-image estimate) of one image ``x [H, W, C]`` at time ``t`` for training images ``train [N, H, W, C]``.
"""

import numpy as np
from brute_force import padded_patch, schedule_ab, softmax_mean


def _fit(train):
    flat = np.asarray(train, np.float64).reshape(len(train), -1)
    mu = flat.mean(axis=0)
    centred = flat - mu
    return mu, centred.T @ centred / len(train)


def ideal_mean(x, t, train):
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    a, b = schedule_ab(t)
    logits = -np.sum((x[None] - a * train) ** 2, axis=(1, 2, 3)) / (2 * b * b)
    return softmax_mean(logits, train)


def gaussian_mean(x, t, mu, sigma):
    """``E[x0 | x_t = x]`` for ``x0 ~ N(mu, sigma)`` (flattened mean and covariance), by a linear solve."""
    a, b = schedule_ab(t)
    flat = np.asarray(x, np.float64).reshape(-1)
    gain = np.linalg.solve(a * a * sigma + b * b * np.eye(len(mu)), flat - a * mu)
    return (mu + a * sigma @ gain).reshape(np.shape(x))


def wiener_mean(x, t, train):
    mu, sigma = _fit(train)
    return gaussian_mean(x, t, mu, sigma)


def pca_mask(t, train, tau, scope="matrix"):
    """The binary mask ``[D, D]`` (row i: pixel i) and the smallest relative distance of any ``|W_ij / W_ii|`` to the
    threshold (how far the float32 implementation is from flipping an entry)."""
    _, sigma = _fit(train)
    a, b = schedule_ab(t)
    d = len(sigma)
    w = a * a * sigma @ np.linalg.inv(a * a * sigma + b * b * np.eye(d))
    diag = np.diag(w)
    varying = np.diag(sigma) > 0
    ratio = np.zeros_like(w)
    ratio[varying] = w[varying] / diag[varying, None]
    big = np.abs(ratio).max() if scope == "matrix" else np.abs(ratio).max(axis=1, keepdims=True)
    threshold = np.broadcast_to(tau * big, ratio.shape)
    if tau == 0:
        return np.ones((d, d)), np.inf
    margin = np.min(np.abs(np.abs(ratio[varying]) - threshold[varying]) / threshold[varying])
    return (np.abs(ratio) >= threshold).astype(np.float64), margin


def pca_locality_mean(x, t, train, tau, scope="matrix"):
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    a, b = schedule_ab(t)
    mask, _ = pca_mask(t, train, tau, scope)
    flat, phi = x.reshape(-1), train.reshape(len(train), -1)
    sq = (flat[None] - a * phi) ** 2  # [N, D]
    out = np.zeros_like(flat)
    for i in range(len(flat)):
        logits = -np.sum(sq[:, mask[i] > 0], axis=1) / (2 * b * b)
        out[i] = softmax_mean(logits, phi[:, i])
    return out.reshape(x.shape)


def nearest_mean(x, t, train):
    a, _ = schedule_ab(t)
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    return train[np.argmin(np.sum((x[None] / a - train) ** 2, axis=(1, 2, 3)))]


def scfdm_mean(x, t, train, smoothing, perturbations):
    """The Monte Carlo sigma-CFDM estimate with the given standard normal draws ``[M, H, W, C]``."""
    x = np.asarray(x, np.float64)
    draws = np.asarray(perturbations, np.float64)
    return np.mean([ideal_mean(x + smoothing * e, t, train) for e in draws], axis=0)


def pspc_mean(x, t, train, k):
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    a, b = schedule_ab(t)
    h, w, _ = x.shape
    total, cover = np.zeros_like(x), np.zeros(x.shape[:2])
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            crops = train[:, i : i + k, j : j + k]
            logits = -np.sum((x[None, i : i + k, j : j + k] - a * crops) ** 2, axis=(1, 2, 3)) / (2 * b * b)
            total[i : i + k, j : j + k] += softmax_mean(logits, crops)
            cover[i : i + k, j : j + k] += 1
    return total / cover[:, :, None]


def els_circular_mean(x, t, train, k):
    """ELS with circularly padded training patches: every circular patch of every training image."""
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    a, b = schedule_ab(t)
    h, w, _ = x.shape
    d = k // 2
    psis = np.stack([padded_patch(img, r, c, k, "wrap") for img in train for r in range(h) for c in range(w)])
    mu = np.zeros_like(x)
    for r in range(h):
        for c in range(w):
            q = padded_patch(x, r, c, k, "wrap")
            logits = -np.sum((q[None] - a * psis) ** 2, axis=(1, 2, 3)) / (2 * b * b)
            mu[r, c] = softmax_mean(logits, psis[:, d, d, :])
    return mu


def golddiff_mean(x, t, train, subset, tail, pool, draws):
    """The retrieval estimate: the ``subset`` nearest at ``pool``-pooled resolution, plus the ``tail`` others of
    largest ``draws`` weighted ``(N - subset) / tail``, then the exact softmax over them."""
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    a, b = schedule_ab(t)
    n, h, w, c = train.shape
    pooled = lambda v: v.reshape(-1, h // pool, pool, w // pool, pool, c).mean(axis=(2, 4)).reshape(len(v), -1)
    coarse = np.sum((pooled(x[None]) - a * pooled(train)) ** 2, axis=1)
    chosen = list(np.argsort(coarse, kind="stable")[:subset])
    log_w = [0.0] * subset
    if tail:
        others = [i for i in np.argsort(-np.asarray(draws, np.float64), kind="stable") if i not in chosen]
        chosen += others[:tail]
        log_w += [np.log((n - subset) / tail)] * tail
    phi = train[chosen]
    logits = -np.sum((x[None] - a * phi) ** 2, axis=(1, 2, 3)) / (2 * b * b) + np.asarray(log_w)
    return softmax_mean(logits, phi)
