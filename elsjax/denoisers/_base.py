"""The denoiser interface and the registry: a denoiser is one class and one :func:`register`.

A denoiser is a frozen dataclass registered as a pytree: its arrays (dictionaries, statistics) are the pytree's
leaves, and fields declared with :func:`static` (patch size, image shape, mesh) are static under ``jit``. It is
built from training images by :meth:`Denoiser.build` and exposes the posterior mean, :meth:`Denoiser.posterior_mean`
(traced, ``t`` a ``[B]`` array). The score, the noise prediction and provenance come from this base class alone,
so every registered name works in :func:`elsjax.score`, :func:`elsjax.sample`, the calibration, the evaluation, the
sweeps and the command line.

Example (a denoiser written outside the package; it predicts the training set's mean image):
    >>> import dataclasses, jax, jax.numpy as jnp, numpy as np
    >>> from elsjax import denoisers, noise
    >>> @denoisers.register("doc_mean_image")
    ... @dataclasses.dataclass(frozen=True)
    ... class MeanImage(denoisers.Denoiser):
    ...     mean: jax.Array
    ...     takes_k = False
    ...     @classmethod
    ...     def build(cls, images, k=None, **options):
    ...         return cls(jnp.asarray(np.mean(images, axis=0)))
    ...     def posterior_mean(self, x, t):
    ...         return jnp.broadcast_to(self.mean, x.shape)
    >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 6, 6, 1)).astype(np.float32)
    >>> d = denoisers.build("doc_mean_image", train)
    >>> d.score(jnp.zeros((2, 6, 6, 1)), 0.5).shape
    (2, 6, 6, 1)
    >>> "doc_mean_image" in denoisers.names()
    True
    >>> denoisers.unregister("doc_mean_image") is MeanImage
    True
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from elsjax import checks, noise, posterior

__all__ = ["Denoiser", "Posterior", "Located", "register", "unregister", "get", "names", "build", "static"]

_REGISTRY: dict[str, type[Denoiser]] = {}
_PYTREES: set[type] = set()  # classes registered with JAX (once per class: JAX cannot take a registration back)


def static(**kwargs) -> Any:
    """A dataclass field that is static under ``jit`` (part of the pytree's structure, not a leaf)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


class Posterior(NamedTuple):
    """What :meth:`Denoiser.posterior` returns, per image and pixel (the posterior is shared by the channels).

    Attributes:
      mean: ``[B, H, W, C]`` the posterior mean (as :meth:`Denoiser.denoise`, to float rounding).
      weight: ``[B, H, W, top]`` float32, the posterior weights of the heaviest entries, descending.
      entry: ``[B, H, W, top]`` int32, their indices in the pixel's dictionary (-1: no entry in that slot).
      entropy: ``[B, H, W]`` float32, the posterior entropy in nats over dictionary occurrences (docs/maths.md §11.2).
    """

    mean: Float[Array, "B H W C"]
    weight: Float[Array, "B H W top"]
    entry: Int[Array, "B H W top"]
    entropy: Float[Array, "B H W"]


class Located(NamedTuple):
    """Where a :class:`Posterior`'s entries come from, per slot ``[B, H, W, top]`` (int64, -1 where ``valid`` is
    False): the training image (an index into the images the denoiser was built on), the patch centre, the count."""

    image: np.ndarray
    row: np.ndarray
    col: np.ndarray
    count: np.ndarray
    valid: np.ndarray


class Denoiser:
    """A training-free denoiser: the base class of every registered one.

    Subclasses are frozen dataclasses decorated with :func:`register`; they implement :meth:`build` and
    :meth:`posterior_mean`. Those that stream dictionaries through :func:`elsjax.posterior.stream` also implement
    :meth:`accumulate` (and the host-side provenance hooks), which gives them :meth:`posterior` for free.

    Class attributes:
      name: the registered name (set by :func:`register`).
      takes_k: whether the denoiser has a patch size ``k`` (the knob the calibration chooses).
      knobs: the names of its other knobs, passed to :meth:`build` as keyword arguments (e.g. ``tau``).
    """

    name: ClassVar[str] = ""
    takes_k: ClassVar[bool] = True
    knobs: ClassVar[tuple[str, ...]] = ()  # keyword arguments of build() beyond k and the build options

    # -------------------------------------------------------------------------------------------------------------
    # What a subclass provides.

    @classmethod
    def build(cls, images, k: int | None = None, **options) -> Denoiser:
        """The denoiser of training images ``[N, H, W, C]`` (checked, class-filtered) and patch size ``k``.

        ``options`` are the keyword arguments of :func:`build` (``chunk_size``, ``deduplicate``, ``mesh``,
        ``cache``, ``shape_bits``, ``builder``, and the denoiser's :attr:`knobs`); a denoiser ignores the build options it has no
        use for and checks its knobs (a one-line ValueError naming the knob).
        """
        raise NotImplementedError

    def posterior_mean(self, x: Float[Array, "B H W C"], t: Float[Array, " B"]) -> Float[Array, "B H W C"]:
        """The clean-image estimate at ``x`` and times ``t`` (traced; called inside ``jit``)."""
        return self.accumulate(x, t, posterior.MEAN)

    def accumulate(self, x, t, accumulator: posterior.Accumulator, combine=None):
        """The accumulator's finalized result per pixel (the mean ``[B, H, W, C]`` for :data:`~elsjax.posterior.MEAN`;
        for :class:`~elsjax.posterior.TopEntries` a :class:`Posterior`'s four arrays). ``combine`` merges partial
        states across devices (sharded denoisers)."""
        raise NotImplementedError(f"denoiser {self.name!r} streams no dictionary: it has no provenance")

    @classmethod
    def check_k(cls, name: str, k, image_shape) -> int | None:
        """The patch size as this denoiser needs it: None if it takes none, else an odd integer >= 3."""
        if not cls.takes_k:
            return None
        if k is None:
            raise ValueError(f"{name}: the {cls.name!r} machine needs an odd patch size k >= 3")
        return checks.odd_patch_size(name, k)

    @classmethod
    def memory_bound(cls, shape, k: int | None, itemsize: int) -> int:
        """An upper bound of the bytes a build holds for images of ``shape`` (0: unknown, small)."""
        return 0

    # Provenance hooks (host side): denoisers that stream dictionaries implement them.

    @classmethod
    def fewest_occurrences(cls, shape, k: int | None) -> int:
        """The fewest dictionary occurrences any pixel's posterior ranges over, for ``shape = (N, H, W, C)``."""
        raise ValueError(f"denoiser {cls.name!r} has no provenance")

    @classmethod
    def occurrence_tables(cls, images, k: int | None):
        """Host-side tables that map entries back to training images (see :meth:`locate`)."""
        raise ValueError(f"denoiser {cls.name!r} has no provenance")

    @classmethod
    def locate(cls, entry: np.ndarray, tables, k: int | None, num_images: int) -> Located:
        """Maps entries ``[B, H, W, top]`` (indices into each pixel's dictionary) to training images and centres."""
        raise ValueError(f"denoiser {cls.name!r} has no provenance")

    @classmethod
    def occurrences(cls, train, k: int | None, pixel, image: int, position) -> np.ndarray:
        """``[count, 3]`` every ``(image, row, col)`` where the reported patch occurs in the pixel's dictionary."""
        raise ValueError(f"denoiser {cls.name!r} has no provenance")

    # -------------------------------------------------------------------------------------------------------------
    # The public methods, from this one place.

    def denoise(self, x, t):
        """The posterior mean ``mu`` at ``x [B, H, W, C]``, ``t`` a scalar or ``[B]``."""
        return _denoise(self, x, _times(t, x))

    def score(self, x, t):
        """The score ``-(x - a_t mu) / b_t^2`` at ``x [B, H, W, C]``, ``t`` a scalar or ``[B]``."""
        return _score(self, x, _times(t, x))

    def eps(self, x, t, y=None):
        """The denoiser as a noise predictor, ``eps_hat = (x - a_t mu) / b_t`` (docs/maths.md §2.3).

        ``Denoiser.eps`` is an :class:`~elsjax.sampler.EpsFn` whose ``params`` is the denoiser; ``y`` is accepted
        for that contract and ignored (a conditional denoiser is built from its class's images).
        """
        del y
        return _eps(self, x, _times(t, x))

    def posterior(self, x, t, *, top: int) -> Posterior:
        """The posterior mean with the ``top`` heaviest dictionary entries and the entropy of every pixel, in one
        pass over the dictionaries (docs/maths.md §11). ``top`` is static (one compilation per value).

        Raises:
          ValueError: a sharded denoiser (provenance runs on one device), or one that streams no dictionary.
        """
        if getattr(self, "mesh", None) is not None:
            raise ValueError("mesh: provenance runs on one device; build the machine without a mesh")
        if type(self).accumulate is Denoiser.accumulate:
            raise ValueError(f"denoiser {self.name!r} streams no dictionary: it has no provenance")
        return _posterior(self, x, _times(t, x), int(top))


def _times(t, x):
    """``t`` as float32 ``[B]``: a scalar applies to every image of the batch."""
    t = jnp.asarray(t, jnp.float32)
    return jnp.broadcast_to(t, (x.shape[0],)) if t.ndim == 0 else t


def _bcast(v):
    return v[:, None, None, None]


@jax.jit
def _denoise(denoiser: Denoiser, x, t):
    return denoiser.posterior_mean(x, t)


@jax.jit
def _score(denoiser: Denoiser, x, t):
    a, b = noise.signal_noise_std(t)
    return -(x - _bcast(a) * denoiser.posterior_mean(x, t)) / _bcast(b * b)


@jax.jit
def _eps(denoiser: Denoiser, x, t):
    a, b = noise.signal_noise_std(t)
    return (x - _bcast(a) * denoiser.posterior_mean(x, t)) / _bcast(b)


@functools.partial(jax.jit, static_argnames=("top",))
def _posterior(denoiser: Denoiser, x, t, top: int) -> Posterior:
    return Posterior(*denoiser.accumulate(x, t, posterior.TopEntries(top)))


# ------------------------------------------------------------------------------------------------------------------
# The registry.


def register(name: str, *, replace: bool = False):
    """Class decorator: registers a frozen dataclass subclass of :class:`Denoiser` as a pytree and under ``name``.

    Fields made with :func:`static` are static under ``jit``; the others are the pytree's leaves. Registering a
    taken name is an error unless ``replace=True``.
    """

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Denoiser)):
            raise TypeError(f"register({name!r}): {cls!r} is not a subclass of elsjax.denoisers.Denoiser")
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
            raise TypeError(f"register({name!r}): {cls.__name__} must be a frozen dataclass")
        if not isinstance(name, str) or not name:
            raise ValueError(f"register: expected a non-empty name, got {name!r}")
        if name in _REGISTRY and not replace:
            raise ValueError(f"register: {name!r} is taken by {_REGISTRY[name].__qualname__}")
        fields = dataclasses.fields(cls)
        if cls not in _PYTREES:
            jax.tree_util.register_dataclass(
                cls,
                data_fields=[f.name for f in fields if not f.metadata.get("static")],
                meta_fields=[f.name for f in fields if f.metadata.get("static")],
            )
            _PYTREES.add(cls)
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def unregister(name: str) -> type[Denoiser]:
    """Removes ``name`` from the registry (e.g. a notebook's or a test's denoiser); returns its class."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise ValueError(f"unregister: {name!r} is not registered") from None


def names() -> tuple[str, ...]:
    """The registered names, in order of registration."""
    return tuple(_REGISTRY)


def get(name) -> type[Denoiser]:
    """The denoiser class registered as ``name``; a ValueError listing the names for an unknown one."""
    if isinstance(name, type) and issubclass(name, Denoiser):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"kind: expected one of {names()}, got {name!r}") from None


def build(
    name,
    images,
    k: int | None = None,
    *,
    chunk_size: int | None = None,
    deduplicate: bool = True,
    mesh=None,
    cache=None,
    shape_bits: int | None = None,
    builder=None,
    **knobs,
) -> Denoiser:
    """Builds the denoiser registered as ``name`` from training images ``[N, H, W, C]`` (already class-filtered).

    Args:
      name: a registered name (:func:`names`), e.g. ``"ideal"``, ``"ls"``, ``"els"``, ``"bbels"``.
      images: float32 training images in [-1, 1], NHWC.
      k: odd patch size (for denoisers that take one).
      chunk_size: entries per streamed chunk (patches, or images for IS and LS).
      deduplicate: store each distinct patch once with its count (exact).
      mesh: None (one device), or a ``jax.sharding.Mesh`` (:func:`elsjax.make_mesh`): dictionaries are split over
        its ``"entries"`` axis and replicated over ``"seeds"``. With several processes, ``images`` are this
        process's own training images (:func:`elsjax.sharding.local_part`).
      cache: an :class:`elsjax.dictcache.DictionaryCache` to take built dictionaries from and keep them in.
      shape_bits: pad dictionaries to shared shapes (:func:`elsjax.patches.bucket`) so that different data share
        compiled programs; None: exact sizes.
      builder: how dictionaries are built, :class:`elsjax.patches.HostBuilder` or
        :class:`elsjax.patches.CompiledBuilder` (the same dictionaries); None: the backend's default.
      knobs: the denoiser's own keyword arguments (:attr:`Denoiser.knobs`).

    Returns:
      The denoiser.

    Raises:
      ValueError: an unknown name, a bad k or knob, images that are not finite NHWC float arrays in [-1, 1].
    """
    cls = get(name)
    images = checks.train_images(images, "images")
    k = cls.check_k("k", k, images.shape[1:])
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size: expected a positive integer or None, got {chunk_size!r}")
    unknown = sorted(set(knobs) - set(cls.knobs))
    if unknown:
        raise ValueError(f"{unknown[0]}: the {cls.name!r} denoiser has no such knob (its knobs: {list(cls.knobs)})")
    options = dict(chunk_size=chunk_size, deduplicate=deduplicate, mesh=mesh, cache=cache, shape_bits=shape_bits)
    options.update(builder=builder)
    return cls.build(images, k, **options, **knobs)
