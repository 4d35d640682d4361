"""Scale-out on JAX's own runtime: the mesh of devices, batches split over it, and several processes (hosts).

The layer places work without changing its maths:

* **Meshes.** A ``jax.sharding.Mesh`` with the axes ``"seeds"`` and ``"entries"`` (:func:`make_mesh`,
  :func:`check_mesh`, from a config string :func:`mesh_from_text`). The kernel's dictionaries are split over
  ``"entries"`` by :mod:`elsjax.shardedkernel`, which merges the devices' partial softmax states exactly.
* **Seed sharding.** The batch is split over the mesh axis ``"seeds"`` (``NamedSharding``, :func:`put_batch`); the
  dictionary is replicated along it. The sampler's loop runs on the sharded state.
* **Multi-host.** After :func:`initialize` (``jax.distributed.initialize``) each process builds the dictionary of
  its own training images only (:func:`local_part`, :func:`local_share`) and places it on its own devices (its
  columns of the ``"entries"`` axis): duplicates across processes are separate entries with their own counts, which
  is exact because the softmax sums over entries. Process 0 writes a job's outputs (:func:`is_primary`).

One device needs none of this: ``mesh=None`` (the default everywhere) runs the code as it always was.

Example:
    >>> import elsjax
    >>> mesh = elsjax.make_mesh(seeds=1, entries=1)     # what one device gives; see docs/scale_out.md
    >>> mesh.axis_names, dict(mesh.shape)
    (('seeds', 'entries'), {'seeds': 1, 'entries': 1})
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "AXES",
    "SEEDS",
    "ENTRIES",
    "make_mesh",
    "check_mesh",
    "parse_mesh",
    "mesh_from_text",
    "axis_size",
    "check_batch",
    "pad_batch",
    "put_batch",
    "to_host",
    "initialize",
    "process_slice",
    "local_part",
    "local_indices",
    "local_share",
    "setup",
    "global_range",
    "allgather",
    "broadcast",
    "is_primary",
    "describe",
]

SEEDS, ENTRIES = "seeds", "entries"
AXES = (SEEDS, ENTRIES)


# ----------------------------------------------------------------------------------------------------------------
# Meshes.


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def make_mesh(seeds: int = 1, entries: int | None = None, *, devices=None) -> Mesh:
    """A ``jax.sharding.Mesh`` with axes ``("seeds", "entries")``.

    Args:
      seeds: devices along ``"seeds"`` (the batch of images is split over them).
      entries: devices along ``"entries"`` (each dictionary is split over them); None: all remaining devices,
        ``len(devices) // seeds``.
      devices: the devices to use (default ``jax.devices()``, every device of every process); the first
        ``seeds * entries`` are used, ordered by process.

    Devices are laid out so that each process owns whole columns of the ``"entries"`` axis (all of their
    ``"seeds"`` rows): a process then holds only the dictionary of its own training images. With several
    processes every device is used and ``entries`` must be a multiple of the number of processes.

    Raises:
      ValueError: naming the argument: not a positive integer, more devices than exist, or (several processes)
        a mesh that does not use every device or does not give each process whole ``"entries"`` columns.

    Example:
      >>> mesh = make_mesh(1)                # every device along "entries" (here: the one there is)
      >>> mesh.axis_names, mesh.devices.shape
      (('seeds', 'entries'), (1, 1))
    """
    seeds = _positive("seeds", seeds)
    devices = list(jax.devices() if devices is None else devices)
    if entries is None:
        entries = len(devices) // seeds
        if entries < 1:
            raise ValueError(
                f"seeds: asked for {seeds} devices along 'seeds', but only {len(devices)} {_devices_word(devices)}"
            )
    entries = _positive("entries", entries)
    if seeds * entries > len(devices):
        raise ValueError(
            f"entries: asked for a mesh of {seeds} x {entries} = {seeds * entries} devices (seeds x entries), but "
            f"only {len(devices)} {_devices_word(devices)}"
        )
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))[: seeds * entries]
    processes = sorted({d.process_index for d in devices})
    if jax.process_count() > 1:
        if len(devices) != jax.device_count():
            raise ValueError(
                f"entries: a multi-process mesh must use every device ({jax.device_count()}), got {seeds} x {entries}"
            )
        if entries % len(processes):
            raise ValueError(
                f"entries: must be a multiple of the number of processes ({len(processes)}), got {entries}, so that "
                "each process holds whole columns of the dictionary"
            )
    grid = np.empty((entries, seeds), dtype=object)
    for i, d in enumerate(devices):
        grid[i // seeds, i % seeds] = d
    return Mesh(grid.T, AXES, axis_types=(AxisType.Auto, AxisType.Auto))


def _devices_word(devices) -> str:
    platform = devices[0].platform if devices else jax.default_backend()
    hint = (
        " (on CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts, or "
        "jax.config.update('jax_num_cpu_devices', N))"
        if platform == "cpu"
        else ""
    )
    return f"{platform} device{'s' if len(devices) != 1 else ''} exist{'s' if len(devices) == 1 else ''}{hint}"


def check_mesh(mesh, name: str = "mesh") -> Mesh | None:
    """``mesh`` as elsjax uses it: None (one device), or a ``Mesh`` with axes ``"seeds"`` and ``"entries"``.

    A mesh with only one of the two axes gets the other with size 1; explicit axis types become ``Auto`` (so that
    unplaced inputs are moved by ``jit``). A pair ``(seeds, entries)`` or a string ``"2,4"`` is passed to
    :func:`make_mesh`.

    Raises:
      ValueError: naming the argument: not a mesh, an unknown axis name, or an axis used twice.
    """
    if mesh is None:
        return None
    if isinstance(mesh, str):
        return mesh_from_text(mesh, name)
    if isinstance(mesh, (tuple, list)):
        if len(mesh) != 2:
            raise ValueError(f"{name}: expected a Mesh or a pair (seeds, entries), got {mesh!r}")
        return make_mesh(*mesh)
    if not isinstance(mesh, Mesh):
        raise ValueError(
            f"{name}: expected a jax.sharding.Mesh (see elsjax.make_mesh) or None, got {type(mesh).__name__}"
        )
    names = tuple(mesh.axis_names)
    unknown = [n for n in names if n not in AXES]
    if unknown:
        raise ValueError(
            f"{name}: unknown axis name(s) {unknown}; elsjax's meshes have the axes {AXES} (see elsjax.make_mesh)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: an axis appears twice in {names}")
    if names == AXES and all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    devices = np.asarray(mesh.devices)
    shape = dict(zip(names, devices.shape))
    devices = devices.transpose([names.index(a) for a in AXES if a in names]).reshape(
        shape.get(SEEDS, 1), shape.get(ENTRIES, 1)
    )
    return Mesh(devices, AXES, axis_types=(AxisType.Auto, AxisType.Auto))


def parse_mesh(text) -> tuple[int, int | None] | None:
    """``"S,E"`` as ``(S, E)`` (``E`` of 0 or ``*``: all remaining devices); ``""`` or ``"none"`` as None.

    Example:
      >>> parse_mesh("2,4"), parse_mesh("1,0"), parse_mesh("")
      ((2, 4), (1, None), None)
    """
    text = str(text).strip().lower()
    if text in ("", "none"):
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        seeds = int(parts[0])
        entries = None if parts[1] in ("*", "0", "") else int(parts[1])
    except ValueError:
        raise ValueError(
            f"mesh: expected SEEDS,ENTRIES (e.g. 2,4; ENTRIES 0 for all remaining devices), got {text!r}"
        ) from None
    return seeds, entries


def mesh_from_text(text, name: str = "mesh") -> Mesh | None:
    """:func:`make_mesh` from a config string (``"2,4"``), or None for ``""``. Errors name ``name``."""
    try:
        parsed = parse_mesh(text)
        return None if parsed is None else make_mesh(*parsed)
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(f"{name}:") else f"{name}: {message}") from None


def axis_size(mesh: Mesh | None, axis: str) -> int:
    """Devices along ``axis`` (1 without a mesh)."""
    return 1 if mesh is None else int(dict(mesh.shape).get(axis, 1))


def describe(mesh: Mesh | None) -> dict | None:
    """A JSON-ready description of a mesh for run records."""
    if mesh is None:
        return None
    return {
        "seeds": axis_size(mesh, SEEDS),
        "entries": axis_size(mesh, ENTRIES),
        "platform": mesh.devices.flat[0].platform,
        "processes": jax.process_count(),
    }


# ----------------------------------------------------------------------------------------------------------------
# Batches on the mesh.


def pad_batch(x, multiple: int):
    """``x`` with its leading axis padded to a multiple of ``multiple`` by repeating the last row (NumPy or JAX)."""
    pad = -x.shape[0] % multiple
    if not pad:
        return x
    if isinstance(x, np.ndarray):
        return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)])


def check_batch(batch: int, mesh: Mesh | None, what: str = "x") -> None:
    """A batch of ``batch`` images must split evenly over ``"seeds"``.

    Raises:
      ValueError: naming ``mesh``.
    """
    seeds = axis_size(mesh, SEEDS)
    if batch % seeds:
        raise ValueError(
            f"mesh: its 'seeds' axis has {seeds} devices, which does not divide the batch of {batch} images in "
            f"{what}; use a seed count that is a multiple of {seeds}, or a mesh with fewer seed devices"
        )


def put_batch(x, mesh: Mesh):
    """A batch ``[B, ...]`` (the same on every process), padded to a multiple of the ``"seeds"`` size by
    repeating its last image, as a global array split over ``"seeds"``.

    A traced batch (inside ``jit``) is only padded: ``jit`` places it.
    """
    x = pad_batch(x if isinstance(x, jax.core.Tracer) else np.asarray(x), axis_size(mesh, SEEDS))
    if isinstance(x, jax.core.Tracer):
        return x
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, P(SEEDS)), lambda index: x[index])


def to_host(array) -> np.ndarray:
    """A (possibly global) array as a NumPy array on every process."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


# ----------------------------------------------------------------------------------------------------------------
# Several processes.


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None) -> bool:
    """Starts ``jax.distributed`` when the config or the environment asks for it; returns whether it runs.

    Args:
      coordinator: ``"HOST:PORT"`` of process 0's coordinator; ``"auto"`` for JAX's cluster detection (Slurm,
        Open MPI, Kubernetes, Cloud TPU: ``jax.distributed.initialize()`` with no arguments); ``""`` or None:
        ``$ELSJAX_COORDINATOR``, else ``"auto"`` if ``$JAX_COORDINATOR_ADDRESS`` is set, else one process.
      num_processes: the number of processes (0 or None: ``$ELSJAX_NUM_PROCESSES``, else detected).
      process_id: this process's index (-1 or None: ``$ELSJAX_PROCESS_ID``, else detected).

    Must run before anything touches a JAX device. On CPU the collectives go through Gloo.

    Raises:
      ValueError: naming the argument, when JAX refuses (e.g. called after JAX started, or a bad process id).
    """
    from elsjax import envvars

    coordinator = coordinator or envvars.get("ELSJAX_COORDINATOR")
    if not coordinator and envvars.is_set("JAX_COORDINATOR_ADDRESS"):
        coordinator = "auto"
    if not coordinator:
        return False
    if jax.distributed.is_initialized():
        return True
    num_processes = num_processes or envvars.get("ELSJAX_NUM_PROCESSES") or None
    if process_id is None or process_id < 0:
        process_id = envvars.get("ELSJAX_PROCESS_ID")
    timeout = envvars.get("ELSJAX_COORDINATOR_TIMEOUT")
    if coordinator != "auto":
        envvars.address("coordinator", coordinator)  # HOST:PORT, with a message naming the field
        if process_id:  # process 0 starts the coordinator; the others must reach it, or JAX aborts the process
            _wait_for_coordinator(coordinator, timeout, process_id, num_processes)
        elif process_id == 0:
            print(
                f"elsjax: process 0 of {num_processes or '?'}: coordinator at {coordinator}, waiting up to "
                f"{timeout:g} s for the other processes (ELSJAX_COORDINATOR_TIMEOUT)",
                file=sys.stderr,
            )
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {} if coordinator == "auto" else {"coordinator_address": coordinator}
    if num_processes is not None:
        kwargs["num_processes"] = int(num_processes)
    if process_id is not None:
        kwargs["process_id"] = int(process_id)
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=max(1, int(round(timeout))))
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"coordinator: jax.distributed.initialize({kwargs}) failed: {err}") from None
    return True


def _wait_for_coordinator(address: str, timeout: float, process_id: int, num_processes) -> None:
    """Waits until a TCP connection to the coordinator opens; a ``ValueError`` after ``timeout`` seconds.

    JAX itself would abort the whole process (no exception) when the coordinator never answers.
    """
    import socket
    import time

    host, _, port = address.rpartition(":")
    host = host.strip("[]")  # an IPv6 address in brackets
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(2.0, timeout)):
                return
        except OSError as err:
            reason = err.strerror or type(err).__name__
        if time.monotonic() >= deadline:
            raise ValueError(
                f"coordinator: no coordinator answers at {address} after {timeout:g} s ({reason}); this is process "
                f"{process_id} of {num_processes or '?'}: start process 0 first, check the address, or set "
                "ELSJAX_COORDINATOR_TIMEOUT to wait longer"
            )
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def process_slice(n: int) -> slice:
    """This process's contiguous share of ``n`` items (all of them with one process).

    Example:
      >>> process_slice(10)
      slice(0, 10, None)
    """
    p, count = jax.process_index(), jax.process_count()
    return slice(p * n // count, (p + 1) * n // count)


def local_part(array, axis: int = 0):
    """This process's share of ``array`` along ``axis`` (:func:`process_slice`): its own training images."""
    index = [slice(None)] * np.ndim(array)
    index[axis] = process_slice(np.shape(array)[axis])
    return array[tuple(index)]


def local_indices(n: int, labels=None) -> np.ndarray:
    """Indices of this process's share of ``n`` training images: a contiguous block of each class (of all images
    without ``labels``), so that every process holds images of every class a conditional run needs.

    Example:
      >>> local_indices(5, labels=[0, 1, 0, 1, 1]).tolist()
      [0, 1, 2, 3, 4]
    """
    if labels is None:
        return np.arange(n)[process_slice(n)]
    labels = np.asarray(labels)
    parts = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    return np.sort(np.concatenate([part[process_slice(len(part))] for part in parts]))


def local_share(images, labels=None):
    """``(images, labels)`` of this process (:func:`local_indices`); unchanged (no copy) with one process."""
    if jax.process_count() == 1:
        return images, labels
    mine = local_indices(len(images), labels)
    return images[mine], None if labels is None else np.asarray(labels)[mine]


def setup(mesh="", coordinator: str = "", num_processes: int = 0, process_id: int = -1) -> Mesh | None:
    """A job's scale-out from its config fields: :func:`initialize`, then the mesh (``"2,4"``, or ``""`` for one
    device; see :func:`parse_mesh`).

    With several processes and no mesh given, every device is used along ``"entries"``.
    """
    if num_processes < 0:
        raise ValueError(f"num_processes: expected a non-negative integer, got {num_processes}")
    initialize(coordinator or None, num_processes or None, process_id if process_id >= 0 else None)
    if not str(mesh).strip() and jax.process_count() > 1:
        mesh = "1,0"
    return mesh_from_text(mesh)


def global_range(images) -> tuple[float, float]:
    """``(min, max)`` of the training images of every process."""
    lo, hi = float(np.min(images)), float(np.max(images))
    if jax.process_count() == 1:
        return lo, hi
    both = allgather(np.array([lo, hi], np.float32))
    return float(both[:, 0].min()), float(both[:, 1].max())


def allgather(tree):
    """Every process's value of a pytree of host arrays (the same shapes and dtypes on every process), each leaf
    stacked along a new leading axis in process order, as NumPy on every process; ``leaf[None]`` with one process.

    The bytes travel, not the values: a float64 or int64 leaf comes back bit for bit (JAX without ``jax_enable_x64``
    would round it to 32 bits on the way).

    Example:
      >>> allgather({"n": np.int64(7), "mean": np.array([0.1, 0.2])})["mean"].dtype
      dtype('float64')
    """
    from jax.experimental import multihost_utils

    leaves, treedef = jax.tree_util.tree_flatten(tree)
    leaves = [np.asarray(leaf) for leaf in leaves]
    raw = [np.frombuffer(leaf.tobytes(), np.uint8) for leaf in leaves]  # C order
    got = multihost_utils.process_allgather(raw)  # [processes, bytes] each
    return treedef.unflatten(
        [np.ascontiguousarray(g).view(leaf.dtype).reshape((-1, *leaf.shape)) for g, leaf in zip(got, leaves)]
    )


def broadcast(tree):
    """Process 0's value of a pytree of arrays on every process (no communication with one process)."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def is_primary() -> bool:
    """Whether this is process 0, the one that writes a job's outputs."""
    return jax.process_index() == 0
