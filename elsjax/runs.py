"""Run directories: what every job (sample, train, calibrate, evaluate, sweep) writes, and how.

A *run* is one job's output directory. This module holds what the jobs share, so that each job module is only its
own computation:

* the directory rules: :func:`new_run_dir` refuses a non-empty directory unless overwriting; :func:`resume_run_dir`
  accepts a directory holding a run of the same config (to resume it) and refuses anything else. Both raise
  :class:`RunDirError` (a ``ValueError``: the command line reports it in one line with exit code 2);
* the record: ``config.json`` written first, ``record.json`` (config, versions, timings, data, whatever the job
  adds) written last, so a run directory with a ``record.json`` is complete (:func:`is_complete`);
* :class:`Stopwatch` for the timings, :func:`versions` of the software;
* :func:`save_samples`: seeds above their samples as a PNG grid, and the arrays (with the PRNG seed) as ``.npz``;
* :class:`StepBar`: a progress bar over a sampler's reverse steps.

Example:
    >>> import tempfile, ml_collections
    >>> from elsjax import runs
    >>> out = runs.new_run_dir(tempfile.mkdtemp() + "/run")
    >>> clock = runs.Stopwatch()
    >>> _ = runs.write_config(out, ml_collections.ConfigDict({"n": 1}))
    >>> record = runs.write_record(out, {"command": "doc"}, config=ml_collections.ConfigDict({"n": 1}), timings=clock.laps())
    >>> runs.is_complete(out), sorted(record)
    (True, ['command', 'config', 'timings', 'versions'])
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from elsjax import images

__all__ = [
    "RunDirError",
    "new_run_dir",
    "config_differences",
    "resume_run_dir",
    "is_complete",
    "write_json",
    "write_config",
    "write_record",
    "versions",
    "Stopwatch",
    "seed_sample_grid",
    "save_samples",
    "StepBar",
    "CountBar",
    "PhaseTimer",
]

CONFIG_FILE = "config.json"
RECORD_FILE = "record.json"


class RunDirError(ValueError):
    """An output directory that cannot be used: it holds something else, or a run of another config."""


def _check_is_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise RunDirError(f"out_dir: {path} exists and is not a directory")


def new_run_dir(path, *, overwrite: bool = False) -> Path:
    """The output directory of a job that starts afresh; refuses a non-empty one unless ``overwrite``.

    Nothing is created: a job creates the directory when it writes its first file, after its inputs are checked.
    """
    path = Path(path)
    _check_is_dir(path)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise RunDirError(f"out_dir: {path} exists and is not empty (pass --overwrite to write into it)")
    return path


def config_differences(saved, current, *, ignore=frozenset(), defaults=None) -> list[str]:
    """The fields in which a saved config and the current one differ, outside ``ignore``, sorted.

    A field the saved config lacks (one added to the job since it ran) counts as its value in ``defaults`` (the
    job's default config), so an old run of what is now the default is not told apart from a new one.

    Example:
      >>> config_differences({"k": 3}, {"k": 3, "mesh": ""}, defaults={"mesh": ""})
      []
      >>> config_differences({"k": 3}, {"k": 5, "mesh": "1"}, defaults={"mesh": ""})
      ['k', 'mesh']
    """
    defaults = _as_dict(defaults) if defaults is not None else {}
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **_as_dict(saved)}
    current = _as_dict(current)
    return sorted(k for k in set(saved) | set(current) if k not in ignore and saved.get(k) != current.get(k))


def resume_run_dir(path, config, *, resumable_fields=frozenset(), kind: str = "run", defaults=None) -> bool:
    """Whether ``path`` holds a run of ``config`` to resume (True) or is new or empty (False).

    Args:
      path: the run directory.
      config: the job's resolved config (a ``ConfigDict`` or mapping).
      resumable_fields: fields that may differ between a run and its continuation (they change no result).
      kind: what the job calls its runs, for the messages (e.g. ``"training run"``).
      defaults: the job's default config: a field the saved config lacks counts as its default there.

    Raises:
      RunDirError: ``path`` is not a directory, is not empty and holds no ``config.json``, or holds a run of a
        config that differs outside ``resumable_fields``.
    """
    path = Path(path)
    _check_is_dir(path)
    if not path.is_dir() or not any(path.iterdir()):
        return False
    saved_path = path / CONFIG_FILE
    if not saved_path.is_file():
        raise RunDirError(f"out_dir: {path} is not empty and holds no {kind} (no {CONFIG_FILE}); choose another")
    saved = json.loads(saved_path.read_text())
    current = _as_dict(config)
    differ = config_differences(saved, current, ignore=resumable_fields, defaults=defaults)
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {current.get(k)!r} now" for k in differ)
        raise RunDirError(f"out_dir: {path} holds a {kind} of a different config ({detail}); choose another out_dir")
    return True


def is_complete(path) -> bool:
    """Whether ``path`` holds a finished run (its ``record.json`` is written last)."""
    return (Path(path) / RECORD_FILE).is_file()


def _as_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def write_json(path, obj) -> Path:
    """Writes ``obj`` as indented JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)
    return path


def write_config(out_dir, config) -> Path:
    """Writes the resolved config as ``config.json`` (the first file of a run)."""
    return write_json(Path(out_dir) / CONFIG_FILE, _as_dict(config))


def write_record(out_dir, record: Mapping, *, config=None, timings: Mapping | None = None) -> dict:
    """Writes ``record.json`` (the last file of a run): ``record`` plus the config, timings and versions."""
    out = dict(record)
    if config is not None:
        out["config"] = _as_dict(config)
    if timings is not None:
        out["timings"] = dict(timings)
    out["versions"] = versions()
    write_json(Path(out_dir) / RECORD_FILE, out)
    return out


def versions() -> dict:
    """Versions of the software that produced a result, and the command line."""
    import jax
    import jaxlib

    import elsjax

    return {
        "elsjax": elsjax.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "argv": list(sys.argv),
    }


class Stopwatch:
    """Named laps of a job's wall time: ``lap("data")`` records the time since the previous lap.

    Example:
      >>> clock = Stopwatch()
      >>> _ = clock.lap("setup")
      >>> sorted(clock.laps())
      ['setup_s', 'total_s']
    """

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.times: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.last
        self.last = now
        return self.times[name]

    def elapsed(self) -> float:
        """Seconds since the stopwatch started."""
        return time.perf_counter() - self.start

    def laps(self) -> dict:
        """Every lap and the total, in seconds (keys ``NAME_s``), rounded to milliseconds."""
        out = {f"{name}_s": round(value, 3) for name, value in self.times.items()}
        out["total_s"] = round(time.perf_counter() - self.start, 3)
        return out


def seed_sample_grid(seeds: np.ndarray, samples: np.ndarray, columns: int = 10) -> np.ndarray:
    """uint8 grid of blocks of two rows: up to ``columns`` seeds (clipped to [-1, 1]), their samples below."""
    width = min(columns, seeds.shape[0])
    blocks = []
    for start in range(0, seeds.shape[0], width):
        count = min(width, seeds.shape[0] - start)
        block = np.ones((2 * width,) + seeds.shape[1:], np.float32)  # white where the last block is short
        block[:count] = seeds[start : start + count]
        block[width : width + count] = samples[start : start + count]
        blocks.append(images.grid(images.to_uint8(block), columns=width))
    return np.concatenate(blocks, axis=0)


def save_samples(out_dir, seeds, samples, *, labels=None, prng_seed: int, png_scale: int = 2, name: str = "samples"):
    """Writes ``NAME.png`` (seeds above samples) and ``NAME.npz`` (``samples``, ``seeds``, ``labels`` with -1 when
    unconditional, ``prng_seed``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds, samples = np.asarray(seeds, np.float32), np.asarray(samples, np.float32)
    images.save_png(out_dir / f"{name}.png", seed_sample_grid(seeds, samples), scale=png_scale)
    np.savez(
        out_dir / f"{name}.npz",
        samples=samples,
        seeds=seeds,
        labels=np.full(len(seeds), -1, np.int32) if labels is None else np.asarray(labels, np.int32),
        prng_seed=np.int64(prng_seed),
    )


class PhaseTimer:
    """A ``progress(phase, done, total, k)`` callback that adds the time since the previous call to ``phase``.

    For callbacks that report the phase that just *finished* (:func:`elsjax.calibrate.calibrate`: ``"net"``,
    ``"build"``, ``"compile"``, ``"evaluate"``), ``seconds`` is the wall time split by phase; ``then`` (another
    callback, e.g. a progress bar) is called after.

    Example:
      >>> timer = PhaseTimer()
      >>> timer("build", 1, 2, 3)
      >>> sorted(timer.seconds)
      ['build']
    """

    def __init__(self, then=None):
        self.then, self.last = then, time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, phase: str, done: int, total: int, k: int) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now
        if self.then is not None:
            self.then(phase, done, total, k)

    @staticmethod
    def chain(*callbacks):
        """One progress callback that calls each of ``callbacks`` in turn."""
        return lambda *args: [c(*args) for c in callbacks if c is not None] and None

    def laps(self, prefix: str = "") -> dict:
        """The split in seconds, keys ``PREFIXPHASE_s``."""
        return {f"{prefix}{phase}_s": round(value, 3) for phase, value in self.seconds.items()}


class CountBar:
    """A tqdm bar driven by ``progress(phase, done, total, k)`` callbacks that count work items."""

    def __init__(self, desc: str, enabled: bool = True):
        from tqdm.auto import tqdm

        self.bar = tqdm(desc=desc, disable=not enabled, file=sys.stderr)

    def __call__(self, phase: str, done: int, total: int, k: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.set_postfix_str(f"{phase} k={k}" if k else phase)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class StepBar:
    """A tqdm bar over all reverse steps of all class groups, fed by the sampler's ``progress`` callback.

    The sampler reports once per class group (``steps_done`` restarts at 0), so the bar keeps the offset.
    """

    def __init__(self, total_steps: int, enabled: bool = True, desc: str = "reverse steps"):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_steps, unit="step", desc=desc, disable=not enabled, file=sys.stderr)
        self.done_in_group = 0
        self.group = 0

    def __call__(self, phase: str, steps_done: int, total_steps: int, k: int) -> None:
        if not self.bar.total:
            self.bar.total = total_steps
        if phase == "built":
            return
        if phase == "build":
            if steps_done == 0 and self.done_in_group:
                self.done_in_group, self.group = 0, self.group + 1
            self.bar.set_postfix_str(f"group {self.group + 1}, building k={k}")
        else:
            self.bar.update(steps_done - self.done_in_group)
            self.done_in_group = steps_done
            self.bar.set_postfix_str(f"group {self.group + 1}, k={k}")

    def close(self) -> None:
        self.bar.close()
