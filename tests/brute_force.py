"""An independent brute-force NumPy (float64) implementation of docs/maths.md §4, for tests.

Written directly from the definitions, pixel by pixel, with an explicit candidate list per pixel: no chunking, no
expansion of the logits, no shared code with elsjax.
"""

import itertools

import numpy as np


def schedule_ab(t):
    beta = np.sin(np.pi * float(t) / 2.016) ** 2
    return np.sqrt(1.0 - beta), np.sqrt(beta)


def padded_patch(image, r, c, k, mode):
    """The k x k patch of ``image [H, W, C]`` centred at (r, c), zero or wrap padded."""
    d = k // 2
    padded = np.pad(image, ((d, d), (d, d), (0, 0)), mode="constant" if mode == "zeros" else "wrap")
    return padded[r : r + k, c : c + k]


def softmax_mean(logits, values):
    w = np.exp(logits - logits.max())
    w /= w.sum()
    return np.tensordot(w, values, axes=1)


def candidates(kind, r, c, h, w, k):
    """Centre positions (r', c') of the training patches in the dictionary of pixel (r, c)."""
    d = k // 2
    interior_r, interior_c = range(d, h - d), range(d, w - d)
    if kind == "ls":
        return [(r, c)]
    if kind == "els":
        return list(itertools.product(interior_r, interior_c))
    rows = [r] if (r < d or r >= h - d) else list(interior_r)
    cols = [c] if (c < d or c >= w - d) else list(interior_c)
    return list(itertools.product(rows, cols))


def brute_score(kind, x, t, train, k=None):
    """Score of one image ``x [H, W, C]`` at time t for training images ``train [N, H, W, C]`` (float64)."""
    x = np.asarray(x, np.float64)
    train = np.asarray(train, np.float64)
    a, b = schedule_ab(t)
    h, w, _ = x.shape
    if kind == "ideal":
        logits = -np.sum((x[None] - a * train) ** 2, axis=(1, 2, 3)) / (2 * b * b)
        mu = softmax_mean(logits, train)
    else:
        d = k // 2
        mu = np.zeros_like(x)
        query_mode = "wrap" if kind == "els" else "zeros"
        for r in range(h):
            for c in range(w):
                q = padded_patch(x, r, c, k, query_mode)
                psis = np.stack(
                    [
                        padded_patch(img, rr, cc, k, "zeros")
                        for img in train
                        for rr, cc in candidates(kind, r, c, h, w, k)
                    ]
                )
                logits = -np.sum((q[None] - a * psis) ** 2, axis=(1, 2, 3)) / (2 * b * b)
                mu[r, c] = softmax_mean(logits, psis[:, d, d, :])
    return -(x - a * mu) / (b * b)


def brute_posterior(kind, x, t, train, k=None):
    """The posterior of every pixel of one image ``x [H, W, C]`` over dictionary *occurrences* (float64).

    Returns ``{(r, c): (occurrences, weights, keys)}``: the occurrences ``(image, row, col)`` in (image, row, col)
    order (IS: the pixel itself), their softmax weights, and the identity of the dictionary entry each belongs to
    (the float32 bytes of the patch or image for the deduplicated IS, ELS and bbELS; the image for LS, which
    stores every image).
    """
    x64 = np.asarray(x, np.float64)
    train32 = np.asarray(train, np.float32)
    train64 = train32.astype(np.float64)
    a, b = schedule_ab(t)
    h, w, _ = x64.shape
    out = {}
    if kind == "ideal":
        logits = -np.sum((x64[None] - a * train64) ** 2, axis=(1, 2, 3)) / (2 * b * b)
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        keys = [img.tobytes() for img in train32]
        for r in range(h):
            for c in range(w):
                out[(r, c)] = ([(n, r, c) for n in range(len(train32))], weights, keys)
        return out
    query_mode = "wrap" if kind == "els" else "zeros"
    for r in range(h):
        for c in range(w):
            q = padded_patch(x64, r, c, k, query_mode)
            occ = [(n, rr, cc) for n in range(len(train32)) for rr, cc in candidates(kind, r, c, h, w, k)]
            psis = np.stack([padded_patch(train32[n], rr, cc, k, "zeros") for n, rr, cc in occ])
            logits = -np.sum((q[None] - a * psis.astype(np.float64)) ** 2, axis=(1, 2, 3)) / (2 * b * b)
            weights = np.exp(logits - logits.max())
            weights /= weights.sum()
            keys = [n for n, _, _ in occ] if kind == "ls" else [p.tobytes() for p in psis]
            out[(r, c)] = (occ, weights, keys)
    return out


def brute_entries(occurrences, weights, keys):
    """Distinct entries of one pixel's posterior, heaviest first: ``[(weight, count, first occurrence), ...]``, and
    the entropy over occurrences (nats)."""
    entries = {}
    for o, wgt, key in zip(occurrences, weights, keys):
        if key not in entries:
            entries[key] = [0.0, 0, o]  # occurrences come in (image, row, col) order: the first is kept
        entries[key][0] += wgt
        entries[key][1] += 1
    positive = weights[weights > 0]
    entropy = float(-np.sum(positive * np.log(positive)))
    return sorted((tuple(e) for e in entries.values()), key=lambda e: -e[0]), entropy
