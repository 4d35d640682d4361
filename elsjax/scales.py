"""Scales: the per-step patch sizes k of a machine sample. The published ones of Kamb & Ganguli, and a parser.

A *scales* list has one odd k per step, n = 20 entries in the paper. Calibration stores the k that best matches
the net at ``t = (j + 1) / n`` at index ``j``; the authors' sampler reads entry ``i`` at ``t = i / n``, so entry 0
is never used (docs/maths.md §6; ``convention="corrected"`` in :func:`elsjax.sample` reads entry ``i - 1``). Names follow the authors' ``files/scales_*.pt``: dataset, backbone, padding
and conditioning. The authors spell the Fashion-MNIST ones ``..._conditonal``; that spelling is accepted as an alias.

Example:
    >>> from elsjax import scales
    >>> scales.resolve("MNIST_ResNet_zeros")[:5]
    [3, 3, 5, 5, 5]
    >>> scales.resolve("3,3,5,5")
    [3, 3, 5, 5]
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PUBLISHED", "ALIASES", "resolve", "names"]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split())


PUBLISHED: dict[str, tuple[int, ...]] = {
    "CIFAR10_ResNet_circular_conditional": _ints("3 3 3 3 5 5 5 5 7 7 7 9 9 11 11 13 13 15 15 15"),
    "CIFAR10_ResNet_zeros_conditional": _ints("3 3 3 3 5 5 5 7 7 7 7 9 9 11 11 13 15 17 17 17"),
    "CIFAR10_UNet_zeros_conditional": _ints("3 3 3 3 5 5 5 5 7 7 7 7 9 9 11 13 13 15 17 25"),
    "CelebA_ResNet_zeros": _ints("3 3 3 5 5 5 5 5 7 7 9 9 9 11 11 11 13 15 19 19"),
    "CelebA_UNet_zeros": _ints("3 3 3 3 3 3 3 5 5 5 5 5 7 7 9 9 9 13 19 27"),
    "FashionMNIST_ResNet_zeros_conditional": _ints("3 3 5 5 7 7 9 9 9 11 11 11 13 13 13 15 15 15 17 17"),
    "FashionMNIST_UNet_zeros_conditional": _ints("3 3 5 5 7 7 7 9 11 11 11 13 15 15 21 23 25 25 25 25"),
    "MNIST_ResNet_circular": _ints("3 3 5 5 5 7 7 9 9 9 11 11 11 11 9 9 7 7 3 3"),
    "MNIST_ResNet_zeros": _ints("3 3 5 5 5 7 7 7 9 9 11 11 11 11 13 15 15 15 15 15"),
    "MNIST_UNet_zeros": _ints("3 3 3 5 5 7 7 7 9 9 9 11 13 15 17 21 23 23 25 27"),
}

# The authors' file names misspell "conditional" for Fashion-MNIST.
ALIASES: dict[str, str] = {
    name.replace("conditional", "conditonal"): name for name in PUBLISHED if name.startswith("FashionMNIST")
}


def names() -> list[str]:
    """The names of the published scales, sorted."""
    return sorted(PUBLISHED)


def resolve(scales: str | Sequence[int]) -> list[int]:
    """Scales from a published name, a comma-separated string, or a sequence of ints.

    Args:
      scales: a key of :data:`PUBLISHED` (or an alias in :data:`ALIASES`), a string such as ``"3,3,5,5"``
        (spaces or ``+`` also separate), or a sequence of ints.

    Returns:
      The scales as a list of odd ints >= 3.

    Raises:
      ValueError: an unknown name, a non-integer entry, an even or too small k, or fewer than 2 entries.

    Example:
      >>> resolve([3, 5, 5])
      [3, 5, 5]
    """
    if isinstance(scales, str):
        text = scales.strip()
        name = ALIASES.get(text, text)
        if name in PUBLISHED:
            return list(PUBLISHED[name])
        parts = [p for p in text.replace(",", " ").replace("+", " ").split() if p]  # "3,3,5" or "3+3+5"
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"scales: {scales!r} is neither published ({', '.join(names())}) "
                "nor a comma-separated list of odd integers"
            ) from None
    else:
        try:
            values = [int(v) for v in scales]
        except (TypeError, ValueError):
            raise ValueError(f"scales: expected a name or a sequence of odd integers, got {scales!r}") from None
    if len(values) < 2:
        raise ValueError(f"scales: need at least 2 entries (the sampler runs len(scales) - 1 steps), got {values}")
    bad = [k for k in values if k < 3 or k % 2 == 0]
    if bad:
        raise ValueError(f"scales: every k must be an odd integer >= 3, got {bad} in {values}")
    return values
