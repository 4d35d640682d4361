"""Scale-out on JAX's own runtime: a dictionary split over devices and hosts, a batch of seeds split over devices.

The layer wraps the kernel (:mod:`elsjax.posterior`) and the sampler without changing their maths:

* **Dictionary sharding.** A dictionary's entry axis (its chunks) is split over the mesh axis ``"entries"``. Each
  device streams its shard through the ordinary kernel and holds a partial :class:`~elsjax.posterior.SoftmaxState`;
  the states are combined exactly inside ``jax.shard_map`` (:func:`merge_across`: ``lax.pmax`` of the maxima, then
  ``lax.psum`` of the rescaled sums, which is ``posterior.merge`` as a collective, docs/maths.md §5.3). Shards are
  padded with entries of log weight :data:`~elsjax.patches.PAD_LOG_WEIGHT` (exactly zero contribution).
* **Seed sharding.** The batch is split over the mesh axis ``"seeds"`` (``NamedSharding``); the dictionary is
  replicated along it. The sampler's loop runs on the sharded state.
* **Multi-host.** After :func:`initialize` (``jax.distributed.initialize``) each process builds the dictionary of
  its own training images only (:func:`local_part`) and places it on its own devices (its columns of the
  ``"entries"`` axis): duplicates across processes are separate entries with their own counts, which is exact
  because the softmax sums over entries.

One device needs none of this: ``mesh=None`` (the default everywhere) runs the code as it always was.

``jax.shard_map`` and not ``jax.pmap``: ``pmap`` is in maintenance mode and is itself implemented with ``jax.jit``
and ``jax.shard_map``; ``shard_map`` composes with ``jit`` and ``NamedSharding``, takes a 2-D mesh, and runs
unchanged across processes.

Example:
    >>> import elsjax
    >>> mesh = elsjax.make_mesh(seeds=1, entries=1)     # what one device gives; see docs/scale_out.md
    >>> mesh.axis_names, dict(mesh.shape)
    (('seeds', 'entries'), {'seeds': 1, 'entries': 1})
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from elsjax import posterior
from elsjax.patches import PAD_LOG_WEIGHT, ImageStack, PatchDictionary, aligned_zeros

__all__ = [
    "AXES",
    "SEEDS",
    "ENTRIES",
    "make_mesh",
    "check_mesh",
    "parse_mesh",
    "mesh_from_text",
    "axis_size",
    "merge_across",
    "shard_tables",
    "map_entries",
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
# The exact merge as a collective.


def merge_across(state: posterior.SoftmaxState, axis_name: str = ENTRIES) -> posterior.SoftmaxState:
    """``posterior.merge`` of every device's state along ``axis_name`` (inside ``shard_map``); exact.

    ``m = pmax(max)``, ``num = psum(num * exp(max - m))``, ``den = psum(den * exp(max - m))`` (an empty state
    contributes 0). Works on states with leading group axes (bbELS). The maximum is only a shift that cancels in
    ``num / den``: it is taken without gradient (``lax.pmax`` has no differentiation rule), which leaves the
    derivative of the result exact.
    """
    m = lax.pmax(lax.stop_gradient(state.max), axis_name)
    scale = posterior.rescale(state.max, m)
    return posterior.SoftmaxState(
        max=m,
        num=lax.psum(state.num * scale[..., None], axis_name),
        den=lax.psum(state.den * scale, axis_name),
    )


# ----------------------------------------------------------------------------------------------------------------
# Dictionaries on the mesh.


def _entry_axis(table) -> int:
    """Axis of a table's leaves that counts chunks: ``[..., n_chunks, chunk, X]`` or ``[n_chunks, chunk, ...]``."""
    if isinstance(table, PatchDictionary):
        return table.keys.ndim - 3
    if isinstance(table, ImageStack):
        return 0
    raise TypeError(f"tables: expected PatchDictionary or ImageStack, got {type(table).__name__}")


def _fills(table) -> tuple:
    """What a padding entry holds in each leaf: zero, and log weight PAD_LOG_WEIGHT."""
    if isinstance(table, PatchDictionary):
        return (0, np.array([0.0, PAD_LOG_WEIGHT], np.float32), 0)
    return (0, np.float32(PAD_LOG_WEIGHT))


def _log_weights(table):
    return table.aux[..., 1] if isinstance(table, PatchDictionary) else table.log_weights


def _table_spec(table):
    spec = P(*([None] * _entry_axis(table)), ENTRIES)
    return type(table)(*([spec] * len(table)))


def _real_entries(table, axis: int) -> int:
    """Entries before the trailing padding (the largest over a grouped table's groups)."""
    w = np.asarray(_log_weights(table))
    w = w.reshape(w.shape[:axis] + (-1,))
    real = w > PAD_LOG_WEIGHT / 2
    # Padding is trailing in every group: the count of real entries is the index after the last real one.
    last = np.where(real.any(axis=-1), real.shape[-1] - np.argmax(real[..., ::-1], axis=-1), 0)
    return int(last.max(initial=0))


def _gather(values) -> np.ndarray:
    """Every process's ``values`` (small non-negative integers), ``[processes, len]``; no communication with one
    process."""
    values = np.asarray(values, np.int64)
    if jax.process_count() == 1:
        return values[None]
    values = values.astype(np.int32)  # JAX's default integer width (entry counts stay far below 2**31)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values)).reshape(jax.process_count(), -1)


def shard_tables(tables, mesh: Mesh) -> tuple:
    """Places host (NumPy) tables on ``mesh``, the entry axis split over ``"entries"``.

    Each process passes the tables built from its own training images. The real entries of a process are spread
    evenly over its columns of ``"entries"`` (re-chunked: the chunk size may shrink so that every device gets
    entries); every shard is padded to one shape with zero-weight entries. Along ``"seeds"`` the shards are
    replicated.

    Args:
      tables: a tuple of :class:`~elsjax.patches.PatchDictionary` or :class:`~elsjax.patches.ImageStack` with
        NumPy leaves (``to_device=False`` builders).
      mesh: from :func:`check_mesh`.

    Returns:
      The same tables with global ``jax.Array`` leaves sharded over ``"entries"``.

    Raises:
      ValueError: processes whose dictionaries disagree in layout or storage, or a mesh that does not give each
        process whole ``"entries"`` columns.
    """
    entries = axis_size(mesh, ENTRIES)
    local_columns = entries // jax.process_count()
    out = []
    for table in tables:
        axis = _entry_axis(table)
        leaves = [np.asarray(leaf) for leaf in table]
        shape0 = leaves[0].shape
        lead, trailing = shape0[:axis], shape0[axis + 2 :]
        real = _real_entries(table, axis)
        info = _gather([real, shape0[axis + 1], int(leaves[0].dtype == np.uint8), *lead, *trailing])
        if len(set(info[:, 2].tolist())) > 1:
            raise ValueError(
                "train: the processes' training images differ in storage (8-bit codes on some, float32 on others); "
                "give every process 8-bit data, or none"
            )
        if len({tuple(row) for row in info[:, 3:].tolist()}) > 1:
            raise ValueError(f"train: the processes' dictionaries differ in layout: {info[:, 3:].tolist()}")
        n = max(max(math.ceil(int(r) / local_columns) for r in info[:, 0]), 1)  # entries per device (the largest)
        size = min(int(info[:, 1].max()), _round_up(n, 8))  # chunk size: no larger than needed
        chunks = math.ceil(n / size)  # chunks per device
        my_n = math.ceil(real / local_columns)  # this process's entries per device
        sharding = NamedSharding(mesh, P(*([None] * axis), ENTRIES))
        column_of = _columns(sharding, lead + (entries * chunks, size), axis, chunks, local_columns)
        arrays = []
        for leaf, fill in zip(leaves, _fills(table)):
            flat = leaf.reshape(lead + (-1,) + leaf.shape[axis + 2 :])
            shards, pieces = {}, []
            for device, col in column_of.items():
                if col not in shards:
                    lo, hi = min(col * my_n, real), min((col + 1) * my_n, real)
                    shards[col] = _shard(flat, lo, hi, axis, chunks, size, fill)
                pieces.append(jax.device_put(shards[col], device, may_alias=True))
            shape = lead + (entries * chunks, size) + leaf.shape[axis + 2 :]
            arrays.append(jax.make_array_from_single_device_arrays(shape, sharding, pieces))
            del shards, pieces, flat
        out.append(type(table)(*arrays))
    return tuple(out)


def _columns(sharding: NamedSharding, shape, axis: int, chunks: int, expected: int) -> dict:
    """For each addressable device, which of this process's ``"entries"`` columns it holds (0, 1, ...)."""
    index_map = sharding.addressable_devices_indices_map(tuple(shape))
    column = {device: (index[axis].start or 0) // chunks for device, index in index_map.items()}
    mine = sorted(set(column.values()))
    if len(mine) != expected:
        raise ValueError(
            f"mesh: process {jax.process_index()} holds {len(mine)} of the 'entries' columns, expected {expected}: "
            "each process must own whole columns, all their 'seeds' rows (build it with elsjax.make_mesh)"
        )
    return {device: mine.index(c) for device, c in column.items()}


def _round_up(m: int, multiple: int) -> int:
    return -(-m // multiple) * multiple


def _shard(flat, lo: int, hi: int, axis: int, chunks: int, size: int, fill):
    """Entries ``lo:hi`` of ``flat [..., M, ...]`` (entry axis ``axis``) as ``[..., chunks, size, ...]``, padded."""
    lead, trailing = flat.shape[:axis], flat.shape[axis + 1 :]
    out = aligned_zeros(lead + (chunks * size,) + trailing, flat.dtype)
    fill = np.asarray(fill, flat.dtype) if flat.dtype != np.uint8 else np.uint8(0)
    if np.any(fill != 0):
        out[...] = fill
    index = (slice(None),) * axis
    out[index + (slice(0, hi - lo),)] = flat[index + (slice(lo, hi),)]
    return out.reshape(lead + (chunks, size) + trailing)


def table_specs(tables) -> tuple:
    """The ``shard_map`` in-specs of a machine's tables: their entry axis on ``"entries"``."""
    return tuple(_table_spec(t) for t in tables)


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


def map_entries(fn: Callable, mesh: Mesh, tables, x, t):
    """``fn(tables, x, t, combine)`` run per device with the tables split over ``"entries"`` and the batch over
    ``"seeds"``; ``combine`` is :func:`merge_across`, to be applied to each partial state before ``finalize``.

    A batch that ``"seeds"`` does not divide is padded (by repetition) and the padding dropped from the result.
    """
    batch = x.shape[0]
    seeds = axis_size(mesh, SEEDS)
    x, t = pad_batch(x, seeds), pad_batch(t, seeds)
    local = lambda tables, x, t: fn(tables, x, t, merge_across)
    # check_vma=False: the kernel's scan carries start replicated and become device-varying; the output is
    # replicated over "entries" by construction (every device ends with the same merged state).
    out = jax.shard_map(
        local, mesh=mesh, in_specs=(table_specs(tables), P(SEEDS), P(SEEDS)), out_specs=P(SEEDS), check_vma=False
    )(tables, x, t)
    return out[:batch]


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
    from jax.experimental import multihost_utils

    both = np.asarray(multihost_utils.process_allgather(np.array([lo, hi], np.float32))).reshape(-1, 2)
    return float(both[:, 0].min()), float(both[:, 1].max())


def broadcast(tree):
    """Process 0's value of a pytree of arrays on every process (no communication with one process)."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def is_primary() -> bool:
    """Whether this is process 0, the one that writes a job's outputs."""
    return jax.process_index() == 0
