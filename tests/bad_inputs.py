"""Bad inputs and faults, each with what the user gets: the source of ``docs/bad_inputs.md``.

Every entry of :data:`CASES` triggers one bad input or fault cheaply (tiny arrays, a fresh temporary directory)
and says what must come of it: an exception type and message, a ``elsjax`` exit code and stderr line, a warning,
or a result. ``tests/test_bad_inputs.py`` runs every case and checks that ``docs/bad_inputs.md`` is exactly what
:func:`render` makes of the outcomes, so the table cannot drift from the code. After changing a message or adding
a case, regenerate it from the repository root::

    python -m tests.bad_inputs --write        # or: python -m tests.bad_inputs > docs/bad_inputs.md

Adding a case is one entry, e.g.::

    raises("elsjax.score", "t = 1e-5", lambda tmp: score(t=1e-5), ValueError, r"t: "),

The callables receive the case's temporary directory; in the table it reads ``TMP`` (and the repository ``REPO``).
Regexes are searched in the text as the table shows it (after those replacements).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import datasets_for_tests as fake  # noqa: E402

from elsjax.datasources import SourceUnavailable  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad_inputs.md"
COMMITTED_CHECKPOINT = REPO / "experiments" / "checkpoints" / "mnist_resnet_zeros_cpu"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What happened: ``ok`` (as expected) and the one line the user sees."""

    ok: bool
    text: str


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input or fault.

    Attributes:
      area: where it enters (``"elsjax.score"``, ``"data.load"``, ``"elsjax sample"``, ...); the doc's sections.
      what: the input or fault, in a few words.
      run: ``run(tmp) -> Outcome``, built by :func:`raises`, :func:`exits` or :func:`returns`.
    """

    area: str
    what: str
    run: Callable[[Path], Outcome]


def _placeholders(text: str, tmp: Path) -> str:
    for path, name in ((tmp.resolve(), "TMP"), (tmp, "TMP"), (REPO, "REPO")):
        text = text.replace(str(path), name)
    text = re.sub(rf"\b{re.escape(socket.gethostname())}\b", "HOST", text)  # this machine's name, in lock messages
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)  # a free port, different every time
    return " ".join(text.split())  # one line


def _judge(text: str, tmp: Path, good: bool, match: str) -> Outcome:
    text = _placeholders(text, tmp)
    return Outcome(good and re.search(match, text) is not None, text)


def raises(area: str, what: str, call, exception: type[BaseException], match: str) -> Case:
    """``call(tmp)`` raises ``exception`` (or a subclass) with a message matching ``match``."""

    def run(tmp):
        try:
            result = call(tmp)
        except exception as err:
            return _judge(f"{type(err).__name__}: {err}", tmp, True, match)
        except Exception as err:  # noqa: BLE001 - reported as the outcome, so the table test shows it
            return _judge(f"unexpected {type(err).__name__}: {err}", tmp, False, match)
        return _judge(f"no error; returned {result!r}"[:300], tmp, False, match)

    return Case(area, what, run)


def returns(area: str, what: str, call, match: str) -> Case:
    """``call(tmp)`` succeeds and returns a description (a string) matching ``match``."""

    def run(tmp):
        return _judge(f"works: {call(tmp)}", tmp, True, match)

    return Case(area, what, run)


def exits(
    area: str,
    what: str,
    argv,
    code: int,
    match: str,
    during=None,
    stdout: bool = False,
    quiet: bool = False,
    around=contextlib.nullcontext,
) -> Case:
    """``elsjax ARGV`` (``argv`` a list, or ``argv(tmp)``) exits with ``code`` and one stderr line; the text
    ``exit CODE: STDERR`` must match ``match``.

    ``during(tmp)``, if given, runs in a thread while the command runs (to send it a signal). ``stdout`` adds the
    last stdout line to the text (``... | stdout: LINE``, numbers replaced by ``N``, which vary with timing).
    ``quiet``: the command prints nothing on stderr (a run that works). ``around()``: a context the command runs in
    (e.g. a simulated full disk).
    """

    def run(tmp):
        from elsjax import cli

        args = argv(tmp) if callable(argv) else list(argv)
        stdout_buffer, stderr = io.StringIO(), io.StringIO()
        helper = threading.Thread(target=during, args=(tmp,), daemon=True) if during else None
        with contextlib.redirect_stdout(stdout_buffer), contextlib.redirect_stderr(stderr):
            if helper:
                helper.start()
            try:
                with around():
                    got = cli.main(args)
            except SystemExit as err:
                got = err.code
            if helper:
                helper.join()
        lines = stderr.getvalue().strip().splitlines()
        text = f"exit {got}: " + (lines[-1] if lines else "(nothing on stderr)")
        if stdout:
            printed = stdout_buffer.getvalue().strip().splitlines()
            text += " | stdout: " + re.sub(r"\d+", "N", _placeholders(printed[-1], tmp) if printed else "(nothing)")
        good = got == code and len(lines) == (0 if quiet else 1) and "Traceback" not in stderr.getvalue()
        return _judge(text, tmp, good, match)

    return Case(area, what, run)


# ----------------------------------------------------------------------------------------------------------------
# Tiny inputs.

RNG = np.random.default_rng(0)
TRAIN = RNG.uniform(-1, 1, (6, 8, 8, 1)).astype(np.float32)
LABELS = np.array([0, 0, 1, 1, 2, 2])
X = RNG.normal(size=(2, 8, 8, 1)).astype(np.float32)


def score(**overrides):
    import elsjax

    args = dict(kind="els", x=X, t=0.5, train=TRAIN, k=3)
    args.update(overrides)
    return elsjax.score(args.pop("kind"), args.pop("x"), args.pop("t"), **args)


def sample(**overrides):
    import elsjax

    args = dict(kind="bbels", seeds=X, train=TRAIN, scales=[3, 3, 5, 5])
    args.update(overrides)
    return elsjax.sample(args.pop("kind"), args.pop("seeds"), **args)


def provenance(**overrides):
    import elsjax

    args = dict(kind="bbels", x=X, t=0.5, train=TRAIN, k=3, top=2)
    args.update(overrides)
    return elsjax.explain(args.pop("kind"), args.pop("x"), args.pop("t"), **args)


def sharded_posterior(tmp):
    import elsjax
    from elsjax import denoisers

    return denoisers.build("els", TRAIN, 3, mesh=elsjax.make_mesh(seeds=1, entries=1)).posterior(X, 0.5, top=2)


def explain_argv(*more):
    return lambda tmp: ["explain", "--dataset", "mnist", "--data-dir", str(mnist(tmp)), "--limit", "30",
                        "--scales", "3,3,3", "--n-seeds", "2", "--out-dir", str(tmp / "out"), "--no-progress",
                        *more]  # fmt: skip


def finite(value) -> str:
    return "finite, shape " + str(tuple(np.shape(value))) if np.all(np.isfinite(np.asarray(value))) else "NOT FINITE"


def calibrate_knob(**overrides):
    """A PCA-locality tau calibration on TRAIN against a "net" that must never run (the inputs fail first)."""
    from elsjax import calibrate

    def net(*args):
        raise AssertionError("the net ran before the inputs were checked")

    args = dict(kind="pca_locality", knob="tau", candidates=[0, 0.02], train=TRAIN, n_seeds=2, num_steps=2)
    return calibrate.calibrate_knob(net, None, **{**args, **overrides})


def build_denoiser(*args):
    from elsjax import denoisers

    return denoisers.build(*args)


def load(tmp, name="mnist", **options):
    from elsjax import data

    return data.load(name, **options)


def mnist(tmp: Path) -> Path:
    return fake.mnist_dir(tmp / "mnist", n_train=40)


def sample_argv(*more):
    return lambda tmp: ["sample", "--dataset", "mnist", "--data-dir", str(mnist(tmp)), "--limit", "30",
                        "--scales", "3,3,3,3", "--n-seeds", "2", "--out-dir", str(tmp / "out"), "--no-progress",
                        *more]  # fmt: skip


def train_argv(*more, num_steps=2):
    return lambda tmp: ["train", "--dataset", "mnist", "--data-dir", str(mnist(tmp)), "--limit", "24", "--width", "8",
                        "--emb-dim", "8", "--num-layers", "1", "--batch-size", "8", "--checkpoint-every-steps", "25",
                        "--n-samples", "0", "--num-steps", str(num_steps), "--out-dir", str(tmp / "run"),
                        "--no-progress", *more]  # fmt: skip


def non_empty(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "keep.txt").write_text("mine")
    return path


def no_network(call):
    """``call(tmp)`` with the download host unreachable (the check is replaced: no case touches the network)."""

    def run(tmp):
        from elsjax import datasources

        saved = datasources.reachable
        datasources.reachable = lambda host, port, timeout=3.0: False
        try:
            return call(tmp)
        finally:
            datasources.reachable = saved

    return run


TINY_SPEC = dict(arch="resnet", channels=1, width=8, num_layers=1, emb_dim=8)


def tiny_checkpoint(root: Path, step: int = 5) -> Path:
    import jax

    from elsjax import checkpoint, nets

    spec = nets.spec(**TINY_SPEC)
    checkpoint.save(root, step, nets.build(spec, key=jax.random.key(0))[1], spec=spec)
    return root


def restore_as(tmp, **changes):
    from elsjax import checkpoint, nets

    root = tiny_checkpoint(tmp / "ck")
    other = nets.spec(**{**TINY_SPEC, **changes})
    return checkpoint.restore(root, nets.abstract_params(other)[1], spec=other)


def committed_copy(tmp: Path) -> Path:
    return Path(shutil.copytree(COMMITTED_CHECKPOINT, tmp / "ck"))


def flip_one_byte(tmp):
    """Flips one byte in the middle of the largest parameter data file (orbax reads it back as another weight)."""
    from elsjax import checkpoint

    root = committed_copy(tmp)
    files = sorted((root / "1800" / "params").rglob("d/*"), key=lambda p: p.stat().st_size)
    garbled = bytearray(files[-1].read_bytes())
    garbled[len(garbled) // 2] ^= 0x01
    files[-1].write_bytes(bytes(garbled))
    return checkpoint.load_net(root)


def garble_meta(tmp):
    from elsjax import checkpoint

    root = tiny_checkpoint(tmp / "ck")
    (root / "5" / "meta" / "metadata").write_bytes(b"\x00garbage")
    return checkpoint.load_net(root)


def without_checksums(tmp):
    from elsjax import checkpoint

    root = committed_copy(tmp)
    meta_file = root / "1800" / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    del meta["checksums"]
    meta_file.write_text(json.dumps(meta))
    return checkpoint.load_net(root)


def load_run_directory(tmp):
    from elsjax import checkpoint

    tiny_checkpoint(tmp / "run" / "checkpoints", step=5)
    (tmp / "run" / "config.json").write_text("{}")
    _, params, meta = checkpoint.load_net(tmp / "run")
    return f"checkpoint.load_net(TMP/run) loads step {meta['step']} from TMP/run/checkpoints"


def sigterm_after_first_checkpoint(tmp, timeout: float = 180.0):
    """Sends SIGTERM to this process once training has a checkpoint and has taken over SIGTERM.

    Training runs ``num_steps`` = 10**7, so it is still running then. If it never takes SIGTERM over, sending it
    would kill this process: SIGINT stops the training instead, and the case fails on its stderr.
    """
    ckpt_dir = tmp / "run" / "checkpoints"
    default = signal.getsignal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        saved = ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir())
        if saved and signal.getsignal(signal.SIGTERM) is not default:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        time.sleep(0.05)
    print("SIGTERM was not taken over by training", file=sys.stderr)
    os.kill(os.getpid(), signal.SIGINT)


def images_grid(tmp):
    from elsjax import images

    return images.grid(X, columns=2)


def below_a_file(tmp: Path) -> Path:
    """A path that cannot be created: below a regular file (root may write anywhere else)."""
    (tmp / "file").write_text("x")
    return tmp / "file" / "out"


def quietly(argv) -> int:
    """``elsjax ARGV`` with its output swallowed (the preparation of a case)."""
    from elsjax import cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli.main(argv)


def with_env(argv, **env):
    """``argv`` run with environment variables set (the case's environment restores them afterwards)."""

    def build(tmp):
        os.environ.update(env)
        return argv(tmp) if callable(argv) else list(argv)

    return build


DEAD_PID = 2**22 + 1  # above Linux's largest PID: no such process


def plant_lock(directory: Path, pid: int, host: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    info = {"pid": pid, "host": host, "started": "2025-01-01T00:00:00+00:00", "command": "elsjax sample"}
    (directory / "run.lock").write_text(json.dumps(info))


def locked_elsewhere(tmp):
    plant_lock(tmp / "run", 1, "otherhost")
    return train_argv()(tmp)


def stale_lock(tmp):
    plant_lock(tmp / "out", DEAD_PID, socket.gethostname())
    return sample_argv()(tmp)


def broken_config(tmp):
    run = non_empty(tmp / "run")
    (run / "config.json").write_text('{"arch": "resnet",\n  "width": }')
    return train_argv()(tmp)


def garbled_gz(tmp):
    argv = sample_argv()(tmp)
    (tmp / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"garbage, not gzip")
    return argv


def unwritable_cache(tmp):
    (tmp / "file").write_text("x")
    os.environ["ELSJAX_CACHE"] = str(tmp / "file" / "cache")
    return sample_argv()(tmp)


@contextlib.contextmanager
def disk_full():
    """Writing ``samples.npz`` fails as on a full disk (ENOSPC) after a few bytes."""
    import errno

    real = np.savez

    def full(file, **arrays):
        if "samples.npz" not in str(getattr(file, "name", file)):
            return real(file, **arrays)
        file.write(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    np.savez = full
    try:
        yield
    finally:
        np.savez = real


def after_disk_full(tmp):
    argv = sample_argv()(tmp)
    with disk_full():
        assert quietly(argv) == 1
    return argv


def unfinished_other_config(tmp):
    argv = sample_argv()(tmp)
    with disk_full():
        assert quietly(argv) == 1
    return argv + ["--seed", "1"]


def calibration_file(tmp, text: str) -> list[str]:
    (tmp / "cal.json").write_text(text)
    return ["evaluate", "--net", "ck", "--machines", f"e=bbels:{tmp / 'cal.json'}", "--out-dir", str(tmp / "ev")]


def truncated_part(tmp):
    assert quietly(train_argv()(tmp)) == 0
    argv = ["evaluate", "--net", str(tmp / "run"), "--machines", "e=ls:3,3", "--n-seeds", "2", "--net-steps", "2",
            "--out-dir", str(tmp / "ev"), "--no-progress"]  # fmt: skip
    assert quietly(argv) == 0
    part = tmp / "ev" / "parts" / "machine_e_00000-00002.npz"
    part.write_bytes(part.read_bytes()[:200])
    return argv


def train_run_samples(tmp):
    from elsjax import config

    run = tmp / "train_run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config.train_config().to_dict()))
    np.savez(run / "samples.npz", samples=np.zeros((2, 32, 32, 1)), seeds=np.zeros((2, 32, 32, 1)), labels=[-1, -1])
    return ["explain", "--samples", str(run / "samples.npz"), "--out-dir", str(tmp / "why"), "--no-progress"]


def tiny_train_file(tmp) -> Path:
    data = mnist(tmp)
    path = tmp / "train_tiny.py"
    path.write_text(
        "from elsjax.config import train_config\n"
        "def get_config():\n"
        "    c = train_config()\n"
        f"    c.dataset, c.data_dir, c.limit, c.num_steps = 'mnist', {str(data)!r}, 24, 2\n"
        "    return c\n"
    )
    return path


def sweep_file(tmp, rows: str) -> list[str]:
    path = tmp / "sweep.py"
    path.write_text(f"from elsjax.sweeps import sweep_config\ndef get_config():\n    c = sweep_config()\n"
                    f"    c.rows = {rows}\n    return c\n")  # fmt: skip
    return ["sweep", "--config", str(path), "--out-dir", str(tmp / "sweep"), "--no-progress"]


def bad_last_row(tmp):
    train = str(tiny_train_file(tmp))
    rows = [dict(name=name, train_config=train, published="MNIST_ResNet_zeros") for name in ("a", "b", "c")]
    rows[-1]["published"] = "MNIST_Resnet_zero"
    return sweep_file(tmp, repr(rows))


def syntax_error_sweep(tmp):
    path = tmp / "sweep.py"
    path.write_text("def get_config():\n    return sweep_config(\n")
    return ["sweep", "--config", str(path)]


def conditional_net():
    import jax

    from elsjax import nets

    return nets.build(nets.spec(**TINY_SPEC, num_classes=10), key=jax.random.key(0))


def sample_net(y):
    from elsjax import sampler

    eps_fn, params = conditional_net()
    return sampler.sample_net(eps_fn, params, np.zeros((1, 8, 8, 1), np.float32), num_steps=2, y=y)


def unreachable_coordinator(tmp):
    os.environ["ELSJAX_COORDINATOR_TIMEOUT"] = "1"
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return sample_argv("--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1")(tmp)


# ----------------------------------------------------------------------------------------------------------------
# The cases, in the order of the doc.

CASES: list[Case] = [
    # elsjax.score and elsjax.sample
    raises("elsjax.score", "unknown kind `'elss'`", lambda tmp: score(kind="elss"), ValueError, r"^ValueError: kind: expected one of"),
    raises("elsjax.score", "even patch size k = 4", lambda tmp: score(k=4), ValueError, r"k: expected an odd integer >= 3, got 4"),
    raises("elsjax.score", "patch size k = 1 (too small)", lambda tmp: score(k=1), ValueError, r"k: expected an odd integer >= 3, got 1"),
    raises("elsjax.score", "ELS with k = 9 on 8x8 images (k > H)", lambda tmp: score(k=9), ValueError, r"k: ELS needs k <= H"),
    raises("elsjax.score", "k missing for ELS", lambda tmp: score(k=None), ValueError, r"k: the 'els' machine needs"),
    raises("elsjax.score", "NCHW arrays (channels first)", lambda tmp: score(x=X.transpose(0, 3, 1, 2), train=TRAIN.transpose(0, 3, 1, 2)), ValueError, r"train: expected NHWC.*NCHW"),
    raises("elsjax.score", "training pixels in [0, 255] instead of [-1, 1]", lambda tmp: score(train=(TRAIN + 1) * 127.5), ValueError, r"train: pixel values must lie in \[-1, 1\]"),
    raises("elsjax.score", "NaN in the noisy images", lambda tmp: score(x=np.where(X > 1, np.nan, X)), ValueError, r"x: contains NaN or infinite values"),
    raises("elsjax.score", "NaN in the training images", lambda tmp: score(train=np.where(TRAIN > 0.9, np.nan, TRAIN)), ValueError, r"train: contains NaN"),
    raises("elsjax.score", "x of another image size than train", lambda tmp: score(x=X[:, :4]), ValueError, r"x: image shape \(4, 8, 1\) does not match"),
    raises("elsjax.score", "t = 0 (outside (0, 1])", lambda tmp: score(t=0.0), ValueError, r"t: every time must lie in .*got \[0\.0, 0\.0\]"),
    raises("elsjax.score", "t = 1.5 (outside (0, 1])", lambda tmp: score(t=1.5), ValueError, r"t: every time must lie in .*got \[1\.5, 1\.5\]"),
    raises("elsjax.score", "class y without training labels", lambda tmp: score(y=[0, 1]), ValueError, r"labels: class-conditional sampling"),
    raises("elsjax.score", "class 7 has no training images", lambda tmp: score(y=[0, 7], labels=LABELS), ValueError, r"y: class 7 has no training images"),
    raises("elsjax.score", "class -1", lambda tmp: score(y=[0, -1], labels=LABELS), ValueError, r"^ValueError: y: class -1 is negative"),
    raises("elsjax.sample", "even k in the schedule", lambda tmp: sample(scales=[3, 4, 5]), ValueError, r"scales\[1\]: expected an odd integer"),
    raises("elsjax.sample", "schedule of one entry", lambda tmp: sample(scales=[3]), ValueError, r"scales: need at least 2 entries"),
    raises("elsjax.sample", "ELS schedule entry k = 11 > H = 8", lambda tmp: sample(kind="els", scales=[3, 3, 11]), ValueError, r"scales\[2\]: ELS needs k <= H"),
    raises("elsjax.sample", "unknown convention", lambda tmp: sample(convention="shifted"), ValueError, r"convention: expected one of"),
    returns("elsjax.score", "t = 1e-5 (where the reference's score is NaN)", lambda tmp: finite(score(t=1e-5)), r"finite"),
    raises("elsjax.score", "t = 1e-13 (below noise.MIN_TIME)", lambda tmp: score(t=1e-13), ValueError, r"t: every time must lie in \[1e-12, 1\]"),
    raises("elsjax.score", "training images traced inside jax.jit", lambda tmp: jax.jit(lambda tr: score(train=tr))(TRAIN), ValueError, r"train: the training images must be concrete"),
    returns("elsjax.score", "x traced inside jax.jit", lambda tmp: finite(jax.jit(lambda x: score(x=x))(X)), r"finite"),
    raises("elsjax.score", "`mesh=(1, 64)`: more devices than exist", lambda tmp: score(mesh=(1, 64)), ValueError, r"^ValueError: entries: asked for a mesh of 1 x 64 = 64 devices \(seeds x entries\), but only 1 cpu device exists"),
    raises("elsjax.score", "a mesh with an unknown axis name", lambda tmp: score(mesh=jax.make_mesh((1,), ("data",))), ValueError, r"^ValueError: mesh: unknown axis name\(s\) \['data'\]"),
    raises("elsjax.make_mesh", "`seeds=0`", lambda tmp: __import__("elsjax").make_mesh(seeds=0), ValueError, r"^ValueError: seeds: expected a positive integer, got 0"),
    raises("sampler.sample_net", "`y=[12]` on a 10-class net", lambda tmp: sample_net([12]), ValueError, r"^ValueError: y: class 12 is out of range for this net \(classes 0\.\.9\)$"),
    raises("sampler.sample_net", "`y=-1` on a 10-class net", lambda tmp: sample_net(-1), ValueError, r"^ValueError: y: class -1 is out of range for this net \(classes 0\.\.9\)$"),
    raises("denoisers.build", "even patch size k = 4", lambda tmp: build_denoiser("els", TRAIN, 4), ValueError, r"k: expected an odd integer >= 3, got 4"),
    raises("denoisers.build", "k = 9 > H = 8 for ELS", lambda tmp: build_denoiser("els", TRAIN, 9), ValueError, r"k: ELS needs k <= H"),
    raises("denoisers.build", "NCHW training images", lambda tmp: build_denoiser("els", TRAIN.transpose(0, 3, 1, 2), 3), ValueError, r"images: expected NHWC.*NCHW"),
    raises("denoisers.build", "NaN training images", lambda tmp: build_denoiser("els", np.where(TRAIN > 0.9, np.nan, TRAIN), 3), ValueError, r"images: contains NaN"),
    returns("Denoiser.score", "a scalar t", lambda tmp: finite(build_denoiser("bbels", TRAIN, 3).score(X, 0.5)), r"finite"),
    # the field's denoisers' knobs (docs/maths.md §12)
    raises("denoiser knobs", "PCA-locality `tau=-0.1`", lambda tmp: score(kind="pca_locality", tau=-0.1), ValueError, r"^ValueError: tau: expected a number >= 0, got -0.1$"),
    raises("denoiser knobs", "PSPC crop `k=9` on 8x8 images", lambda tmp: score(kind="pspc", k=9), ValueError, r"^ValueError: k: PSPC needs an integer crop size 1 <= k <= min\(H, W\) = 8, got 9$"),
    raises("denoiser knobs", "sCFDM `smoothing=0.5` without a key", lambda tmp: score(kind="scfdm", smoothing=0.5), ValueError, r"^ValueError: key: the 'scfdm' denoiser with smoothing > 0 is a Monte Carlo estimate"),
    raises("denoiser knobs", "golddiff with a random tail but no key", lambda tmp: score(kind="golddiff", subset=2), ValueError, r"^ValueError: key: the 'golddiff' denoiser draws a random tail"),
    raises("denoiser knobs", "ELS `data_padding='reflect'`", lambda tmp: score(data_padding="reflect"), ValueError, r"^ValueError: data_padding: expected one of \('valid', 'circular'\), got 'reflect'$"),
    raises("denoiser knobs", "a knob the denoiser does not have", lambda tmp: score(kind="wiener", tau=0.1), ValueError, r"^ValueError: tau: the 'wiener' denoiser has no such knob"),
    raises("calibrate.calibrate_knob", "PCA-locality candidates `[0.02, -0.1]` (negative tau), before the net runs", lambda tmp: calibrate_knob(candidates=[0.02, -0.1]), ValueError, r"^ValueError: tau: expected a number >= 0, got -0.1$"),
    raises("calibrate.calibrate_knob", "no candidate (`candidates=[]`)", lambda tmp: calibrate_knob(candidates=[]), ValueError, r"^ValueError: candidates: expected at least one value of the knob 'tau'$"),
    raises("calibrate.calibrate_knob", "a knob the denoiser lacks (`knob=\"sigma\"`)", lambda tmp: calibrate_knob(knob="sigma"), ValueError, r"^ValueError: knob: the 'pca_locality' denoiser has no knob 'sigma' \(its knobs: tau, scope\)$"),
    # elsjax.explain
    raises("elsjax.explain", "`top=0`", lambda tmp: provenance(top=0), ValueError, r"^ValueError: top: expected an integer >= 1, got 0"),
    raises("elsjax.explain", "`top` above a pixel's dictionary occurrences", lambda tmp: provenance(top=7), ValueError, r"^ValueError: top: asked for 7 entries but some pixel's posterior has only 6 dictionary occurrences"),
    raises("elsjax.explain", "unknown kind `'elss'`", lambda tmp: provenance(kind="elss"), ValueError, r"^ValueError: kind: expected one of"),
    raises("Denoiser.posterior", "a machine sharded over a mesh", sharded_posterior, ValueError, r"^ValueError: mesh: provenance runs on one device"),
    exits("elsjax explain", "`--top 0`", explain_argv("--top", "0"), 2, r"top: expected a positive integer, got 0"),
    exits("elsjax explain", "`--samples` that does not exist", explain_argv("--samples", "nothing.npz"), 2, r"samples: no such file 'nothing.npz'"),
    exits("elsjax explain", "`--which 5` with 2 seeds", explain_argv("--which", "5", "--top", "2"), 2, r"which: seed indices run from 0 to 1, got 5"),
    exits("elsjax explain", "`--samples` of a training run (`elsjax train`'s samples.npz)", train_run_samples, 2, r"samples: TMP/train_run/samples\.npz was written by elsjax train, not by elsjax sample; explain takes the samples of a score machine"),
    exits("elsjax explain", "`--out-dir` that cannot be created (below a file), found before sampling", lambda tmp: explain_argv()(tmp)[:-3] + ["--out-dir", str(below_a_file(tmp)), "--no-progress"], 2, r"out_dir: TMP/file/out is not writable \(Not a directory\)"),
    # data.load
    raises("data.load", "unknown dataset `'svhn'`", lambda tmp: load(tmp, "svhn"), ValueError, r"dataset: unknown dataset 'svhn'"),
    raises("data.load", "unknown split `'valid'`", lambda tmp: load(tmp, split="valid"), ValueError, r"split: mnist has splits"),
    raises("data.load", "class 10 of a 10-class dataset", lambda tmp: load(tmp, label=10), ValueError, r"label: class 10 is out of range"),
    raises("data.load", "limit larger than the split", lambda tmp: load(tmp, data_dir=mnist(tmp), limit=41), ValueError, r"limit: asked for the first 41 images but dir:TMP/mnist has 40"),
    raises("data.load", "class with no images in the subset", lambda tmp: load(tmp, data_dir=mnist(tmp), limit=2, label=5), ValueError, r"label: class 5 has no images in the first 2 images"),
    raises("data.load", "unknown source", lambda tmp: load(tmp, source="s3"), ValueError, r"source: unknown source 's3'"),
    raises("data.load", "data_dir that does not exist", lambda tmp: load(tmp, data_dir=tmp / "nothing"), SourceUnavailable, r"dir: TMP/nothing is not a directory"),
    raises("data.load", "Debian package not installed (`source='debian'`)", lambda tmp: load(tmp, "fashion_mnist", source="debian"), SourceUnavailable, r"^SourceUnavailable: debian: .*apt-get install -y dataset-fashion-mnist"),
    exits("data.load", "a garbled `.gz` in `--data-dir`", garbled_gz, 2, r"TMP/mnist/train-images-idx3-ubyte\.gz: not a readable gzip file \(.*\); replace it with a good copy"),
    exits("data.load", "`ELSJAX_CACHE` that cannot be written (below a file)", unwritable_cache, 0, r"^exit 0: elsjax: warning: the data cache TMP/file/cache/data cannot be written \(Not a directory\); going on without it"),
    raises("data.load", "`source='tfds', download=True` without network", no_network(lambda tmp: load(tmp, source="tfds", download=True)), SourceUnavailable, r"^SourceUnavailable: tfds: cannot download mnist: no connection to .* nothing was written\. To get mnist offline"),
    # elsjax sample
    exits("elsjax sample", "`--kind vae`", sample_argv("--kind", "vae"), 2, r"^exit 2: elsjax sample: error: kind: expected one of"),
    exits("elsjax sample", "`--scales 3,4` (even k)", sample_argv("--scales", "3,4"), 2, r"odd integer"),
    exits("elsjax sample", "`--scales MNIST_nope`", sample_argv("--scales", "MNIST_nope"), 2, r"'MNIST_nope' is neither"),
    exits("elsjax evaluate", "no `--net`", lambda tmp: ["evaluate", "--out-dir", str(tmp / "ev")], 2, r"net: give the trained net"),
    exits("elsjax evaluate", "`--machines e=bbels` (no scales)", lambda tmp: ["evaluate", "--machines", "e=bbels", "--out-dir", str(tmp / "ev")], 2, r"machines: 'e=bbels' needs scales"),
    exits("elsjax evaluate", "`--machines e=bbels:3,3,x` (a stray entry)", lambda tmp: ["evaluate", "--machines", "e=bbels:3,3,x", "--out-dir", str(tmp / "ev")], 2, r"machines: expected NAME=DENOISER:SCALES entries separated by commas, .*; got 'x'"),
    exits("elsjax evaluate", "`--machines e=bbels:cal.json`, a calibration.json without `median`", lambda tmp: calibration_file(tmp, '{"ks": [3, 5]}'), 2, r"machines: TMP/cal\.json has no 'median' \(not a calibration\.json written by elsjax calibrate\)"),
    exits("elsjax evaluate", "`--machines e=bbels:cal.json`, a calibration.json that is not valid JSON", lambda tmp: calibration_file(tmp, '{"median": [3, 5,\n'), 2, r"machines: TMP/cal\.json is not valid JSON \(Expecting value: line 2 column 1"),
    exits("elsjax evaluate", "a truncated part in `parts/` (a resumed evaluation)", truncated_part, 0, r"^exit 0: elsjax: warning: TMP/ev/parts/machine_e_00000-00002\.npz is unreadable \(truncated or corrupt: .*\); recomputing it$"),
    exits("elsjax calibrate", "`--ks 3,4` (even candidate)", lambda tmp: ["calibrate", "--net", str(tiny_checkpoint(tmp / "ck")), "--ks", "3,4", "--out-dir", str(tmp / "cal")], 2, r"ks: expected an odd integer >= 3, got 4"),
    exits("elsjax calibrate", "`--out-dir` that cannot be created (below a file), found before loading the net", lambda tmp: ["calibrate", "--net", str(tiny_checkpoint(tmp / "ck")), "--out-dir", str(below_a_file(tmp))], 2, r"out_dir: TMP/file/out is not writable \(Not a directory\)"),
    exits("elsjax calibrate", "`ELSJAX_DICTIONARY_CACHE_DIR` that cannot be written (below a file)", with_env(lambda tmp: ["calibrate", "--net", str(tiny_checkpoint(tmp / "ck")), "--out-dir", str(below_a_file(tmp).parent.parent / "cal")], ELSJAX_DICTIONARY_CACHE_DIR="file/dicts"), 2, r"ELSJAX_DICTIONARY_CACHE_DIR: file/dicts is not writable \(Not a directory\)"),
    exits("elsjax sweep", "no sweep file", lambda tmp: ["sweep"], 2, r"config: give a sweep file"),
    exits("elsjax sweep", "a bad `published` name in the last of three rows (checked before any row runs)", bad_last_row, 2, r"rows: row 'c': published: scales: 'MNIST_Resnet_zero' is neither published"),
    exits("elsjax sweep", "a sweep file without rows", lambda tmp: sweep_file(tmp, "[]"), 2, r"rows: the sweep has no rows: nothing to run, and no table written"),
    exits("elsjax sweep", "a sweep file with a syntax error", syntax_error_sweep, 2, r"config: TMP/sweep\.py fails to load \(SyntaxError: .*, line 2\)"),
    exits("elsjax sample", "`--n-seeds many`", sample_argv("--n-seeds", "many"), 2, r"n_seeds"),
    exits("elsjax sample", "`--mesh 2,2` on one device", sample_argv("--mesh", "2,2"), 2, r"^exit 2: elsjax sample: error: mesh: entries: asked for a mesh of 2 x 2 = 4 devices"),
    exits("elsjax sample", "`--mesh 4` (one number)", sample_argv("--mesh", "4"), 2, r"mesh: expected SEEDS,ENTRIES"),
    exits("elsjax sample", "`--label 10`", sample_argv("--label", "10"), 2, r"label: class 10 is out of range"),
    exits("elsjax sample", "`--bogus` (unknown flag)", sample_argv("--bogus"), 2, r"unrecognized argument '--bogus'"),
    exits("elsjax sample", "`--config.nope=1` (unknown config field)", sample_argv("--config.nope=1"), 2, r"unknown field 'nope'"),
    exits("elsjax sample", "`--config missing.py` (no such file)", sample_argv("--config", "missing.py"), 2, r"missing\.py"),
    exits("elsjax sample", "non-empty `--out-dir`", lambda tmp: non_empty(tmp / "out") and sample_argv()(tmp), 2, r"out_dir: TMP/out exists and is not empty \(pass --overwrite"),
    exits("elsjax sample", "`--out-dir` that cannot be created (below a file), found before loading data", lambda tmp: sample_argv("--out-dir", str(below_a_file(tmp)))(tmp), 2, r"out_dir: TMP/file/out is not writable \(Not a directory\)"),
    exits("elsjax sample", "a stale lock in `--out-dir` (its process is gone)", stale_lock, 0, rf"^exit 0: elsjax: note: TMP/out was locked by PID {DEAD_PID} on HOST, started 2025-01-01T00:00:00\+00:00 \(`elsjax sample`\), which is gone: the lock is stale, taking it over$"),
    exits("elsjax sample", "a full disk while writing `samples.npz` (ENOSPC, simulated)", sample_argv(), 1, r"^exit 1: elsjax sample: error: TMP/out/samples\.npz: could not be written \(No space left on device\); nothing half-written was left, and the run is unfinished", around=disk_full),
    exits("elsjax sample", "the same command after the full disk", after_disk_full, 0, r"^exit 0: elsjax: note: TMP/out holds an unfinished run of this config \(no record\.json\): recomputing it$"),
    exits("elsjax sample", "another config in a folder whose run never finished", unfinished_other_config, 2, r"out_dir: TMP/out holds a run of another config \(seed\) that never finished \(no record\.json: it was killed or a write failed\); pass --overwrite"),
    exits("elsjax sample", "`ELSJAX_BUILD_THREADS=many`", with_env(sample_argv(), ELSJAX_BUILD_THREADS="many"), 2, r"^exit 2: elsjax sample: error: ELSJAX_BUILD_THREADS: expected a positive integer, got 'many'$"),
    exits("elsjax sample", "`ELSJAX_COMPILATION_CACHE=maybe`", with_env(sample_argv(), ELSJAX_COMPILATION_CACHE="maybe"), 2, r"ELSJAX_COMPILATION_CACHE: expected 1 or 0 \(or true/false, yes/no, on/off\), got 'maybe'"),
    exits("elsjax sample", "`ELSJAX_PROCESS_ID=-1`", with_env(sample_argv(), ELSJAX_PROCESS_ID="-1"), 2, r"ELSJAX_PROCESS_ID: expected an integer >= 0, got '-1'"),
    exits("elsjax sample", "an unreachable coordinator (process 1 of 2; `ELSJAX_COORDINATOR_TIMEOUT=1`)", unreachable_coordinator, 2, r"coordinator: no coordinator answers at 127\.0\.0\.1:PORT after 1 s \(Connection refused\); this is process 1 of 2: start process 0 first"),
    exits("elsjax sample", "`--source tfds --download` without network", no_network(lambda tmp: ["sample", "--source", "tfds", "--download", "--out-dir", str(tmp / "out"), "--no-progress"]), 2, r"tfds: cannot download fashion_mnist: no connection"),
    # elsjax train
    exits("elsjax train", "`--arch vit`", train_argv("--arch", "vit"), 2, r"arch: unknown architecture 'vit'"),
    exits("elsjax train", "`--batch-size 0`", train_argv("--batch-size", "0"), 2, r"batch_size: expected a positive integer"),
    exits("elsjax train", "`--out-dir` holding something else", lambda tmp: non_empty(tmp / "run") and train_argv()(tmp), 2, r"out_dir: TMP/run is not empty and holds no training run"),
    exits("elsjax train", "`--limit 10 --batch-size 64` (fewer images than half a batch)", lambda tmp: train_argv("--limit", "10", "--batch-size", "64")(tmp), 0, r"^exit 0: \(nothing on stderr\) \| stdout: wrote TMP/run/: config\.json, checkpoints/", stdout=True, quiet=True),
    exits("elsjax train", "`--out-dir` in use by a run on another host", locked_elsewhere, 2, r"out_dir: TMP/run is in use by another run: PID 1 on otherhost, started 2025-01-01T00:00:00\+00:00 \(`elsjax sample`\); wait for it to finish, or, if that run is gone, delete TMP/run/run\.lock$"),
    exits("elsjax train", "`--out-dir` whose config.json is not valid JSON", broken_config, 2, r"out_dir: TMP/run/config\.json is not valid JSON \(Expecting value: line 2 column 12 \(char 30\)\); delete it"),
    exits("elsjax train", "SIGTERM during training (what schedulers send)", train_argv(num_steps=10**7), 143, r"^exit 143: elsjax train: interrupted \(SIGTERM\) \| stdout: interrupted: saved step N in TMP/run/checkpoints; run the same command to resume$", during=sigterm_after_first_checkpoint, stdout=True),
    # checkpoints
    raises("checkpoint", "load a directory without checkpoints", lambda tmp: __import__("elsjax.checkpoint").checkpoint.load_net(tmp / "nothing"), ValueError, r"no checkpoint in TMP/nothing"),
    raises("checkpoint", "a step that is not there", lambda tmp: __import__("elsjax.checkpoint").checkpoint.load_net(tiny_checkpoint(tmp / "ck"), step=4), ValueError, r"TMP/ck has no step 4 \(steps there: \[5\]\)"),
    raises("checkpoint", "restore into another architecture", lambda tmp: restore_as(tmp, num_layers=2), ValueError, r"different architecture \(num_layers: saved 1, expected 2\)"),
    raises("checkpoint", "one flipped byte in a parameter data file", flip_one_byte, ValueError, r"TMP/ck/1800/params is corrupted: array '[\w/]+'"),
    raises("checkpoint", "garbled metadata", garble_meta, ValueError, r"TMP/ck/5 is corrupted or unreadable"),
    raises("checkpoint", "a checkpoint whose metadata records no checksums", without_checksums, ValueError, r"checkpoint: TMP/ck/1800 has no content checksums in its metadata"),
    returns("checkpoint", "an `elsjax train` run directory", load_run_directory, r"loads step 5 from TMP/run/checkpoints"),
    # images
    raises("images.grid", "float images (not converted)", images_grid, ValueError, r"images: expected uint8, got float32; .*images\.to_uint8"),
]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Running and rendering.


@contextlib.contextmanager
def _isolated(tmp: Path):
    """The case's environment: caches and data dirs inside ``tmp``, no Debian package, ``tmp`` as working dir."""
    env = {
        "ELSJAX_CACHE": str(tmp / "cache"),
        "TFDS_DATA_DIR": str(tmp / "tfds"),
        "ELSJAX_DEBIAN_FASHION_MNIST": str(tmp / "no-debian"),
        "ELSJAX_COMPILATION_CACHE": "0",
    }
    saved = dict(os.environ)  # all of it: a case may set more (see with_env)
    cwd = os.getcwd()
    os.environ.update(env)
    os.chdir(tmp)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def run_case(case: Case) -> Outcome:
    """Runs one case in a fresh temporary directory (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="elsjax-bad-input-") as name:
        tmp = Path(name)
        with _isolated(tmp):
            return case.run(tmp)


def _code(text: str) -> str:
    """``text`` as a markdown code span that survives backticks and table pipes."""
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}".replace("|", "\\|")


def _what_user_gets(text: str) -> str:
    if text.startswith("exit "):
        code, _, line = text.partition(": ")
        line, _, printed = line.partition(" | stdout: ")
        said = "nothing on stderr" if line == "(nothing on stderr)" else f"stderr {_code(line)}"
        return f"{code}, {said}" + (f", stdout {_code(printed)}" if printed else "")
    head, _, rest = text.partition(": ")
    if head == "works":
        return f"works: {_code(rest)}"
    return f"{head}: {_code(rest)}"


def render(outcomes: list[tuple[Case, Outcome]]) -> str:
    """The markdown of ``docs/bad_inputs.md``: one section per area, one row per case."""
    lines = [
        "# Bad inputs and faults, and what each gets",
        "",
        "Generated from `tests/bad_inputs.py` by `python -m tests.bad_inputs --write` (from the repository root);",
        "`tests/test_bad_inputs.py` runs every case and fails when this file differs from what they produce now.",
        "`TMP` stands for the case's temporary directory, `REPO` for the repository root. Messages are one line,",
        "as printed; the command line prints them after `elsjax COMMAND: error:` with exit code 2.",
    ]
    area = None
    for case, outcome in outcomes:
        if case.area != area:
            area = case.area
            lines += ["", f"## {area}", "", "| input or fault | what the user gets |", "|---|---|"]
        lines.append(f"| {case.what} | {_what_user_gets(outcome.text)} |")
    return "\n".join(lines) + "\n"


def run_all(cases=None) -> list[tuple[Case, Outcome]]:
    return [(case, run_case(case)) for case in (CASES if cases is None else cases)]


def main(argv) -> int:
    outcomes = run_all()
    failed = [(c, o) for c, o in outcomes if not o.ok]
    for case, outcome in failed:
        print(f"unexpected outcome for {case.area}: {case.what}: {outcome.text}", file=sys.stderr)
    text = render(outcomes)
    if "--write" in argv:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
        print(f"wrote {DOC} ({len(outcomes)} cases, {len(failed)} unexpected)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
