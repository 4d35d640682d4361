"""Run directories: what every job (sample, train, calibrate, evaluate, sweep) writes, and how.

A *run* is one job's output directory. This module holds what the jobs share, so that each job module is only its
own computation:

* the start of every job, :func:`start_run`, before its first expensive step: it creates the directory, proves it
  writable, takes its lock (:mod:`elsjax.runlock`: a second job on the same directory is refused with one line
  naming the holder), applies the directory rules and writes ``config.json`` (and ``code.diff`` when the code that
  runs differs from its git commit). The directory rules: a job that starts afresh (:func:`new_run_dir`) refuses a
  non-empty directory unless overwriting, except that it recomputes an unfinished run of the same config; a
  resumable job (:func:`resume_run_dir`) accepts a directory holding a run of the same config and refuses anything
  else. Both raise :class:`RunDirError` (a ``ValueError``: the command line reports it in one line with exit code
  2). A job function decorated with :func:`job` gives its locks back when it returns or fails;
* the record: ``config.json`` written first, ``record.json`` (config, versions, the code's git commit, timings,
  data, whatever the job adds) written last, so a run directory with a ``record.json`` is complete
  (:func:`is_complete`); a run that is started again loses its ``record.json`` until it finishes;
* every file written atomically (:mod:`elsjax.atomic`): a crash or a full disk never leaves a half file that looks
  finished; :func:`read_json` names the file whose JSON is broken;
* :class:`Stopwatch` for the timings; the versions of the software and the state of the code come from
  :mod:`elsjax.software`;
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
    (True, ['code', 'command', 'config', 'timings', 'versions'])
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from elsjax import atomic, images, runlock, software

__all__ = [
    "RunDirError",
    "Run",
    "start_run",
    "job",
    "read_json",
    "dictionary_cache_dir",
    "new_run_dir",
    "config_differences",
    "resume_run_dir",
    "is_complete",
    "write_json",
    "write_config",
    "write_record",
    "Stopwatch",
    "seed_sample_grid",
    "save_samples",
    "StepBar",
    "CountBar",
    "PhaseTimer",
]

CONFIG_FILE = "config.json"
RECORD_FILE = "record.json"
DIFF_FILE = "code.diff"

# Config fields that say where or how a job runs, not what it computes: an unfinished run that differs only in them
# is the same run.
LOCATION_FIELDS = frozenset({"out_dir", "overwrite", "progress"})


class RunDirError(ValueError):
    """An output directory that cannot be used: it holds something else, or a run of another config."""


def _check_is_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise RunDirError(f"out_dir: {path} exists and is not a directory")


def _contents(path: Path) -> list[Path]:
    """What a run directory holds, leaving out its lock and the temporary files of unfinished writes."""
    if not path.is_dir():
        return []
    return [p for p in path.iterdir() if p.name != runlock.LOCK_FILE and not atomic.is_temporary(p)]


def read_json(path, *, name: str = "", hint: str = ""):
    """The JSON in ``path``; a ``ValueError`` that names the file (and ``name``, the field it came from) if it is
    missing, unreadable or not valid JSON.

    Example:
      >>> import tempfile, pathlib
      >>> bad = pathlib.Path(tempfile.mkdtemp()) / "x.json"
      >>> _ = bad.write_text("{")
      >>> read_json(bad, name="machines")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: machines: .../x.json is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))
    """
    prefix = f"{name}: " if name else ""
    suffix = f"; {hint}" if hint else ""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ValueError(f"{prefix}{path} does not exist{suffix}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{prefix}{path} cannot be read ({getattr(err, 'strerror', None) or err}){suffix}") from None
    try:
        return json.loads(text)
    except ValueError as err:
        raise ValueError(f"{prefix}{path} is not valid JSON ({err}){suffix}") from None


def new_run_dir(path, *, overwrite: bool = False) -> Path:
    """The output directory of a job that starts afresh; refuses a non-empty one unless ``overwrite``.

    Nothing is created (:func:`start_run` creates it, after the job's inputs are checked). A directory holding an
    unfinished run (a ``config.json`` but no ``record.json``) is refused with a message that says so; a job's
    :func:`start_run` recomputes it instead when it is a run of the same config.
    """
    path = Path(path)
    _check_is_dir(path)
    if _contents(path) and not overwrite:
        if (path / CONFIG_FILE).is_file() and not is_complete(path):
            raise RunDirError(
                f"out_dir: {path} holds a run that never finished ({CONFIG_FILE} but no {RECORD_FILE}: it was "
                "killed or a write failed); pass --overwrite to start it again, or choose another out_dir"
            )
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
    if not _contents(path):
        return False
    saved_path = path / CONFIG_FILE
    if not saved_path.is_file():
        raise RunDirError(f"out_dir: {path} is not empty and holds no {kind} (no {CONFIG_FILE}); choose another")
    saved = _saved_config(saved_path)
    current = _as_dict(config)
    differ = config_differences(saved, current, ignore=resumable_fields, defaults=defaults)
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {current.get(k)!r} now" for k in differ)
        raise RunDirError(f"out_dir: {path} holds a {kind} of a different config ({detail}); choose another out_dir")
    return True


def _saved_config(path: Path) -> dict:
    saved = read_json(path, name="out_dir", hint="delete it (or the run directory), or choose another out_dir")
    if not isinstance(saved, dict):
        raise RunDirError(f"out_dir: {path} holds no config (a JSON object); delete it, or choose another out_dir")
    return saved


def is_complete(path) -> bool:
    """Whether ``path`` holds a finished run (its ``record.json`` is written last)."""
    return (Path(path) / RECORD_FILE).is_file()


class Run:
    """A started job's run directory (:func:`start_run`): its ``path``, whether it is ``resuming`` an earlier
    run, and its lock, given back by :meth:`close` (or by the :func:`job` decorator)."""

    def __init__(self, path: Path, lock: runlock.RunLock, resuming: bool, created: bool = False):
        self.path, self.lock, self.resuming, self.created = path, lock, resuming, created

    def close(self, failed: bool = False) -> None:
        """Unlocks the directory; after a failure, a directory this run created and left without any result (only
        what :func:`start_run` wrote) is removed."""
        try:
            if failed and self.created and _holds_no_result(_contents(self.path)):
                for name in (CONFIG_FILE, DIFF_FILE):
                    (self.path / name).unlink(missing_ok=True)
        finally:
            self.lock.release()
        if failed and self.created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only if empty

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_OPEN_RUNS: contextvars.ContextVar[list | None] = contextvars.ContextVar("elsjax_open_runs", default=None)


def job(fn: Callable) -> Callable:
    """Decorates a job's ``run``: every run directory it starts (:func:`start_run`) is unlocked when it returns or
    raises; one it created and left without a result (bad input found after the start) is removed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        token = _OPEN_RUNS.set([])
        failed = True
        try:
            result = fn(*args, **kwargs)
            failed = False
            return result
        finally:
            for run in reversed(_OPEN_RUNS.get()):
                run.close(failed=failed)
            _OPEN_RUNS.reset(token)

    return wrapper


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def start_run(
    path,
    config,
    *,
    resumable: bool = False,
    overwrite: bool = False,
    rules: bool = True,
    resumable_fields=frozenset(),
    kind: str = "run",
    defaults=None,
    log: Callable[[str], None] = _note,
) -> Run:
    """Starts a job in its run directory, before any expensive step: creates it and proves it writable, takes its
    lock, applies the directory rules, forgets an earlier ``record.json`` and writes ``config.json`` (and
    ``code.diff`` when the code differs from its git commit).

    Args:
      path: the run directory.
      config: the job's resolved config.
      resumable: the job resumes a run of the same config (:func:`resume_run_dir`); else it starts afresh
        (:func:`new_run_dir`), but recomputes an unfinished run of the same config (up to :data:`LOCATION_FIELDS`)
        with a note, and reuses a directory that holds only an earlier ``config.json``.
      overwrite: a fresh job may write into a non-empty directory.
      rules: False for a directory that holds other runs and is always continued (a sweep's): no directory rules,
        only the lock and ``config.json``.
      resumable_fields, kind, defaults: see :func:`resume_run_dir`.
      log: where notes go (a stale lock taken over, an unfinished run recomputed); default: stderr.

    Returns:
      A :class:`Run`; inside a :func:`job` it is closed (unlocked) when the job ends, else call its ``close``.

    Raises:
      RunDirError: the directory cannot be used (not writable, in use by another run, holding something else).
    """
    path = Path(path)
    _check_is_dir(path)
    created = not path.exists()
    try:
        atomic.check_writable(path, "out_dir")
    except ValueError as err:
        raise RunDirError(str(err)) from None
    lock = runlock.RunLock(path, log=log)
    try:
        lock.acquire()
    except runlock.Locked as err:
        raise RunDirError(str(err)) from None
    except OSError as err:
        raise RunDirError(f"out_dir: {path} is not writable ({err.strerror or err})") from None
    run = Run(path, lock, resuming=False, created=created)
    try:
        if not rules:
            pass
        elif resumable and not _holds_no_result(_contents(path)):
            run.resuming = resume_run_dir(path, config, resumable_fields=resumable_fields, kind=kind, defaults=defaults)
        else:
            _fresh(path, config, overwrite=overwrite, defaults=defaults, log=log)
        if rules:
            (path / RECORD_FILE).unlink(missing_ok=True)  # finished again only when this run writes it
            _remove_leftovers(path)
        write_config(path, config)
        _write_code_diff(path)
    except BaseException:
        run.close(failed=True)
        raise
    open_runs = _OPEN_RUNS.get()
    if open_runs is not None:
        open_runs.append(run)
    return run


def _remove_leftovers(path: Path) -> None:
    """Removes the temporary files of writes that never finished (a killed job's): under the lock, no other job
    writes here."""
    for leftover in path.rglob(".*.tmp"):
        if atomic.is_temporary(leftover) and leftover.is_file():
            leftover.unlink(missing_ok=True)


def _holds_no_result(contents: list[Path]) -> bool:
    """Whether a run directory's contents are only what :func:`start_run` writes (an earlier start, no result)."""
    return {p.name for p in contents} <= {CONFIG_FILE, DIFF_FILE}


def dictionary_cache_dir() -> Path | None:
    """``$ELSJAX_DICTIONARY_CACHE_DIR`` (None when unset), checked writable before a job relies on it.

    Raises:
      ValueError: naming the variable, when the directory cannot be created or written.
    """
    from elsjax import envvars

    directory = envvars.get("ELSJAX_DICTIONARY_CACHE_DIR")
    return None if directory is None else atomic.check_writable(directory, "ELSJAX_DICTIONARY_CACHE_DIR")


def _fresh(path: Path, config, *, overwrite: bool, defaults, log) -> None:
    """The directory rules of a job that starts afresh (see :func:`start_run`)."""
    contents = _contents(path)
    if not contents or overwrite:
        return
    saved_path = path / CONFIG_FILE
    if _holds_no_result(contents):
        return  # an earlier start that stopped before its first result: nothing to lose
    if saved_path.is_file() and not is_complete(path):
        saved = _saved_config(saved_path)
        if not config_differences(saved, config, ignore=LOCATION_FIELDS, defaults=defaults):
            log(f"elsjax: note: {path} holds an unfinished run of this config (no {RECORD_FILE}): recomputing it")
            return
        differ = ", ".join(config_differences(saved, config, ignore=LOCATION_FIELDS, defaults=defaults))
        raise RunDirError(
            f"out_dir: {path} holds a run of another config ({differ}) that never finished (no {RECORD_FILE}: it "
            "was killed or a write failed); pass --overwrite to replace it, or choose another out_dir"
        )
    new_run_dir(path, overwrite=False)  # raises the usual message


def _as_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def write_json(path, obj) -> Path:
    """Writes ``obj`` as indented JSON, atomically (a reader never sees half a file)."""
    return atomic.write_text(path, json.dumps(obj, indent=2) + "\n")


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
    out["versions"] = software.versions()
    code = dict(software.code_state()[0])
    code["diff_file"] = DIFF_FILE if (Path(out_dir) / DIFF_FILE).is_file() and code.get("dirty") else None
    out["code"] = code
    write_json(Path(out_dir) / RECORD_FILE, out)
    return out


def _write_code_diff(out_dir: Path) -> None:
    """Writes ``code.diff`` (``git diff HEAD`` of the code this process runs) when the checkout is dirty."""
    state, diff = software.code_state()
    path = out_dir / DIFF_FILE
    if state.get("dirty") and diff:
        atomic.write_text(path, diff)
    else:
        path.unlink(missing_ok=True)


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
    seeds, samples = np.asarray(seeds, np.float32), np.asarray(samples, np.float32)
    images.save_png(out_dir / f"{name}.png", seed_sample_grid(seeds, samples), scale=png_scale)
    atomic.save_npz(
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
