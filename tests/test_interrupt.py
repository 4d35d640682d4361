"""SIGTERM (what schedulers send before a kill) during ``elsjax train`` checkpoints and exits like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import datasets_for_tests as fake  # noqa: E402

from elsjax import checkpoint, cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ELSJAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))


def train_args(data_dir, out_dir, num_steps: int):
    return ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "24", "--width", "8",
            "--emb-dim", "8", "--num-layers", "1", "--batch-size", "8", "--log-every", "10",
            "--checkpoint-every-steps", "25", "--n-samples", "0", "--num-steps", str(num_steps),
            "--out-dir", str(out_dir), "--no-progress"]  # fmt: skip


def start_training(args, log_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out, err = open(log_dir / "stdout.txt", "w"), open(log_dir / "stderr.txt", "w")
    return subprocess.Popen([sys.executable, "-m", "elsjax", *args], stdout=out, stderr=err, env=env, cwd=REPO)


def wait_for_a_checkpoint(process: subprocess.Popen, ckpt_dir: Path, log_dir: Path, timeout: float = 240.0) -> None:
    """Waits until a complete step folder exists (orbax renames a finished temporary folder to the step number)."""
    deadline = time.monotonic() + timeout
    while not (ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir())):
        if process.poll() is not None:
            pytest.fail(f"training ended early ({process.returncode}): {(log_dir / 'stderr.txt').read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.05)


def test_sigterm_checkpoints_and_the_run_resumes_to_the_same_weights(tmp_path, capsys):
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=24)
    run, straight = tmp_path / "run", tmp_path / "straight"
    process = start_training(train_args(data_dir, run, 10**7), tmp_path)  # would run for hours
    wait_for_a_checkpoint(process, run / "checkpoints", tmp_path)
    time.sleep(0.3)  # mid-training, between or during the periodic saves
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the process did not end after SIGTERM")
    stdout, stderr = (tmp_path / "stdout.txt").read_text(), (tmp_path / "stderr.txt").read_text()
    assert code == 143, stderr  # 128 + SIGTERM, as a shell reports it
    assert stderr.strip() == "elsjax train: interrupted (SIGTERM)" and "Traceback" not in stderr
    step = checkpoint.latest_step(run)
    assert f"interrupted: saved step {step} in {run / 'checkpoints'}" in stdout
    assert step >= 25
    assert all(p.name.isdigit() for p in (run / "checkpoints").iterdir()), "an orbax temporary folder was left"

    final = step + 7  # not a multiple of the checkpoint period: the resumed run ends on a save of its own
    assert cli.main(train_args(data_dir, run, final)) == 0
    assert f"resuming {run} from step {step}" in capsys.readouterr().out
    assert cli.main(train_args(data_dir, straight, final)) == 0
    _, resumed, meta = checkpoint.load_net(run)
    _, uninterrupted, _ = checkpoint.load_net(straight)
    assert meta["step"] == final
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
        np.testing.assert_array_equal(a, b)


def test_the_guard_takes_over_only_default_handlers_and_puts_them_back():
    from elsjax import interrupts

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("this test process has its own SIGTERM handler")
    guard = interrupts.SignalGuard().install()
    try:
        assert signal.getsignal(signal.SIGTERM) == guard._handle
    finally:
        guard.restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        guard = interrupts.SignalGuard().install()
        assert signal.getsignal(signal.SIGTERM) is own  # a host program's handler is left alone
        guard.restore()
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped exception, on purpose
def test_a_signal_whose_exception_python_drops_is_raised_again_at_the_next_check():
    """A handler that runs inside a garbage-collector callback (JAX registers one) raises there, and Python prints
    and drops the exception: the job would run on. The guard raises it again at the loop's next ``check``."""
    import gc

    from elsjax import interrupts

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("this test process has its own SIGTERM handler")

    def signal_inside_gc(phase, info):
        if phase == "start" and signal_inside_gc in gc.callbacks:
            gc.callbacks.remove(signal_inside_gc)
            signal.raise_signal(signal.SIGTERM)

    guard = interrupts.SignalGuard().install()
    try:
        guard.check()  # nothing received yet
        gc.callbacks.append(signal_inside_gc)
        gc.collect()  # "Exception ignored in: ...signal_inside_gc": the Interrupted never reaches this frame
        assert signal_inside_gc not in gc.callbacks
        with pytest.raises(interrupts.Interrupted, match="SIGTERM"):
            guard.check()
    finally:
        if signal_inside_gc in gc.callbacks:
            gc.callbacks.remove(signal_inside_gc)
        guard.restore()
    guard.check()  # restored: the signal is forgotten
