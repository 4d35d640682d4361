"""Work is never lost at the edges (issue 22): every fault found on a fresh clone, each with the test that failed
before its fix; the run lock between processes; a job killed during a write; a job on a full file system."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import datasets_for_tests as fake
import numpy as np
import pytest

from elsjax import cli, runs, software, sweeps

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated")


def sample_argv(data_dir, out, *more):
    return ["sample", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "30", "--scales", "3,3,3,3",
            "--n-seeds", "2", "--out-dir", str(out), "--no-progress", *more]  # fmt: skip


def train_argv(data_dir, out, *more, steps=4):
    return ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "30", "--width", "8", "--emb-dim",
            "8", "--num-layers", "1", "--batch-size", "8", "--num-steps", str(steps), "--n-samples", "0",
            "--out-dir", str(out), "--no-progress", *more]  # fmt: skip


def evaluate_argv(net, out, *more):
    return ["evaluate", "--net", str(net), "--machines", "e=bbels:3,3,5,ideal=ideal", "--n-seeds", "4",
            "--seeds-per-part", "2", "--net-steps", "3", "--out-dir", str(out), "--no-progress", *more]  # fmt: skip


def stderr_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny unconditional and a tiny class-conditional net (a few steps) on a fake MNIST: ``(data, net, cnet)``."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELSJAX_CACHE", str(root / "cache"))
        data = fake.mnist_dir(root / "mnist", n_train=40)
        assert cli.main(train_argv(data, root / "net")) == 0
        assert cli.main(train_argv(data, root / "cnet", "--conditional")) == 0
    return data, root / "net", root / "cnet"


def env_with_repo(**more) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **more}
    env["ELSJAX_COMPILATION_CACHE"] = "0"
    return env


# ----------------------------------------------------------------------------------------------------------------
# 1. A training set smaller than half a batch.


def test_training_on_fewer_images_than_half_a_batch(tmp_path):
    import jax

    from elsjax import train

    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    out = tmp_path / "run"
    argv = train_argv(data, out, "--batch-size", "64", "--n-samples", "2", "--sample-steps", "2", steps=3)
    argv[argv.index("--limit") + 1] = "10"
    assert cli.main(argv) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["steps"] == 3 and np.isfinite(record["final_loss"])
    for step in range(3):  # every step's batch is the 10 images, once each; the rest of the batch is masked
        idx, mask = train.batch_indices(step, num_images=10, batch_size=64, key=jax.random.key(0))
        assert int(mask.sum()) == 10 and sorted(np.asarray(idx)[np.asarray(mask)].tolist()) == list(range(10))


# ----------------------------------------------------------------------------------------------------------------
# 2. The output folder is started (writable, locked, config.json) before the computation.


def unwritable(tmp_path: Path) -> Path:
    """An output directory that cannot be created: below a regular file (root may write anywhere else)."""
    (tmp_path / "a_file").write_text("x")
    return tmp_path / "a_file" / "out"


def test_sample_calibrate_explain_find_an_unwritable_folder_before_computing(tmp_path, monkeypatch, capsys, trained):
    from elsjax.jobs import netdata
    from elsjax.jobs import sample as sample_job

    data, net, _ = trained

    def computing(*args, **kwargs):
        raise AssertionError("the job computed before finding its folder unwritable")

    monkeypatch.setattr(sample_job, "load_dataset", computing)
    monkeypatch.setattr(netdata, "load", computing)
    out = unwritable(tmp_path)
    for argv in (
        sample_argv(data, out),
        ["calibrate", "--net", str(net), "--ks", "3,5", "--n-seeds", "2", "--out-dir", str(out), "--no-progress"],
        ["explain", "--dataset", "mnist", "--data-dir", str(data), "--limit", "30", "--scales", "3,3,3",
         "--n-seeds", "2", "--out-dir", str(out), "--no-progress"],
    ):  # fmt: skip
        assert cli.main(argv) == 2
        [line] = stderr_lines(capsys)
        assert re.fullmatch(
            rf"elsjax {argv[0]}: error: out_dir: \S+/a_file/out is not writable \(Not a directory\)", line
        )


def test_config_json_and_the_lock_come_before_the_computation(tmp_path, monkeypatch):
    import elsjax
    from elsjax import runlock  # here: the other tests run without it

    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    out = tmp_path / "run"
    seen = {}

    def interrupted(*args, **kwargs):
        seen["files"] = sorted(p.name for p in out.iterdir() if p.name != "code.diff")
        seen["holder"] = runlock.holder(out)
        raise KeyboardInterrupt

    monkeypatch.setattr(elsjax, "sample", interrupted)
    assert cli.main(sample_argv(data, out)) == 130
    assert seen["files"] == ["config.json", "run.lock"] and seen["holder"]["pid"] == os.getpid()
    assert not out.exists()  # unlocked when the job ended; with no result, the folder it made is gone


# ----------------------------------------------------------------------------------------------------------------
# 3. Class labels are range-checked where a net or a machine takes them.


def test_class_labels_out_of_range(trained):
    import elsjax
    from elsjax import checkpoint, sampler

    _, _, cnet = trained
    eps_fn, params, _ = checkpoint.load_net(cnet)
    seeds = np.zeros((1, 32, 32, 1), np.float32)
    with pytest.raises(ValueError, match=r"^y: class 12 is out of range for this net \(classes 0\.\.9\)$"):
        sampler.sample_net(eps_fn, params, seeds, num_steps=2, y=[12])
    with pytest.raises(ValueError, match=r"^y: class -1 is out of range for this net \(classes 0\.\.9\)$"):
        sampler.sample_net(eps_fn, params, seeds, num_steps=2, y=-1)
    assert np.isfinite(np.asarray(sampler.sample_net(eps_fn, params, seeds, num_steps=2, y=[9]))).all()
    train = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^y: class -1 is negative"):
        elsjax.sample("bbels", train[:1], train=train, scales=[3, 3], labels=[0, 0, 1, 1], y=[-1])


# ----------------------------------------------------------------------------------------------------------------
# 4. One job per folder: the second is refused, the first finishes intact (two processes).


GATED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from elsjax import cli
    from elsjax.jobs import netdata

    real, gate = netdata.load, Path(sys.argv[1])

    def gated(*args, **kwargs):  # the job holds its folder, and waits before its first expensive step
        while not gate.exists():
            time.sleep(0.05)
        return real(*args, **kwargs)

    netdata.load = gated
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def test_two_evaluations_on_one_folder_the_second_is_refused_the_first_finishes_intact(tmp_path, trained):
    from elsjax import runlock  # here: the other tests run without it

    _, net, _ = trained
    out, script, gate = tmp_path / "ev", tmp_path / "gated.py", tmp_path / "gate"
    script.write_text(GATED)
    env = env_with_repo()
    first = subprocess.Popen([sys.executable, str(script), str(gate), *evaluate_argv(net, out)], env=env,
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while runlock.holder(out) is None and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runlock.holder(out)["pid"] == first.pid
        start = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "elsjax", *evaluate_argv(net, out, "--n-seeds", "6")],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert second.returncode == 2 and time.monotonic() - start < 60
        [line] = second.stderr.strip().splitlines()
        assert re.fullmatch(
            rf"elsjax evaluate: error: out_dir: \S+/ev is in use by another run: PID {first.pid} on "
            rf"{re.escape(socket.gethostname())}, started \S+ \(`.* evaluate .*`\); wait for it to finish",
            line,
        )
        gate.write_text("go")
        _, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    record = json.loads((out / "record.json").read_text())
    assert config["n_seeds"] == summary["n_seeds"] == record["config"]["n_seeds"] == 4
    assert sorted(p.name for p in (out / "parts").iterdir()) == [
        "machine_e_00000-00002.npz", "machine_e_00002-00004.npz", "machine_ideal_00000-00002.npz",
        "machine_ideal_00002-00004.npz", "net_3.npz"]  # fmt: skip
    assert not (out / "run.lock").exists()


def test_a_held_lock_refuses_training_at_once_and_a_stale_one_is_taken_over(tmp_path, capsys):

    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from elsjax import runlock; runlock.RunLock(sys.argv[1]).acquire();"
         " print('held', flush=True); time.sleep(300)", str(run)],
        env=env_with_repo(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        assert cli.main(train_argv(data, run)) == 2
        assert time.monotonic() - start < 30  # no minutes in orbax
        [line] = stderr_lines(capsys)
        assert f"is in use by another run: PID {holder.pid} on {socket.gethostname()}" in line
    finally:
        holder.kill()
        holder.wait()
    assert cli.main(train_argv(data, run)) == 0  # the holder was killed: its lock is stale
    [note] = stderr_lines(capsys)
    assert re.fullmatch(rf"elsjax: note: \S+/run was locked by PID {holder.pid} on .*, which is gone: the lock is "
                        r"stale, taking it over", note)  # fmt: skip
    assert runs.is_complete(run) and not (run / "run.lock").exists()


def test_lock_file_holds_the_holder_and_is_reentrant_within_a_process(tmp_path):
    from elsjax import runlock  # here: the other tests run without it

    with runlock.RunLock(tmp_path) as outer:
        info = runlock.holder(tmp_path)
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname() and info["started"]
        with runlock.RunLock(tmp_path):  # a sweep's directory, then one of its stages
            pass
        assert runlock.holder(tmp_path) == outer.info
    assert runlock.holder(tmp_path) is None


# ----------------------------------------------------------------------------------------------------------------
# 5. Input files are checked on entry.


def test_a_truncated_part_is_reported_and_recomputed(tmp_path, capsys, trained):
    _, net, _ = trained
    out = tmp_path / "ev"
    assert cli.main(evaluate_argv(net, out)) == 0
    first = json.loads((out / "summary.json").read_text())
    part = out / "parts" / "machine_e_00002-00004.npz"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    capsys.readouterr()
    assert cli.main(evaluate_argv(net, out)) == 0
    [line] = stderr_lines(capsys)
    assert re.match(r"elsjax: warning: \S+/parts/machine_e_00002-00004\.npz is unreadable \(truncated or corrupt: "
                    r"\w+.*\); recomputing it$", line)  # fmt: skip
    assert json.loads((out / "record.json").read_text())["computed_parts"] == [part.name]
    assert json.loads((out / "summary.json").read_text())["per_seed"] == first["per_seed"]


def test_bad_input_files_are_one_line_naming_the_file(tmp_path, capsys, trained):
    data, net, _ = trained
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"ks": [3, 5]}))
    assert cli.main(["evaluate", "--net", str(net), "--machines", f"e=bbels:{calibration}",
                     "--out-dir", str(tmp_path / "ev")]) == 2  # fmt: skip
    [line] = stderr_lines(capsys)
    assert (
        line
        == f"elsjax evaluate: error: machines: {calibration} has no 'median' (not a calibration.json written by elsjax calibrate)"
    )
    assert not (tmp_path / "ev").exists()

    calibration.write_text('{"median": [3, 5,\n')
    assert cli.main(["evaluate", "--net", str(net), "--machines", f"e=bbels:{calibration}",
                     "--out-dir", str(tmp_path / "ev")]) == 2  # fmt: skip
    [line] = stderr_lines(capsys)
    assert line.startswith(f"elsjax evaluate: error: machines: {calibration} is not valid JSON (Expecting value")

    garbled = fake.mnist_dir(tmp_path / "garbled", n_train=40)
    (garbled / "train-images-idx3-ubyte.gz").write_bytes(b"garbage, not gzip")
    assert cli.main(sample_argv(garbled, tmp_path / "s1")) == 2
    [line] = stderr_lines(capsys)
    assert line.startswith(f"elsjax sample: error: {garbled}/train-images-idx3-ubyte.gz: not a readable gzip file")

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"arch": "resnet",\n  "width": }')
    (run / "loss.csv").write_text("step,loss\n")
    assert cli.main(train_argv(data, run)) == 2
    [line] = stderr_lines(capsys)
    assert line.startswith(
        f"elsjax train: error: out_dir: {run}/config.json is not valid JSON (Expecting value: line 2"
    )


def test_an_unwritable_cache_is_one_warning_and_the_job_goes_on(tmp_path, monkeypatch, capsys):
    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("ELSJAX_CACHE", str(tmp_path / "a_file" / "cache"))
    assert cli.main(sample_argv(data, tmp_path / "out")) == 0
    [line] = stderr_lines(capsys)
    assert line == (f"elsjax: warning: the data cache {tmp_path}/a_file/cache/data cannot be written (Not a directory); "
                    "going on without it (set ELSJAX_CACHE to a writable directory, or pass --no-cache)")  # fmt: skip
    assert runs.is_complete(tmp_path / "out")


def test_an_unwritable_dictionary_cache_is_refused_before_the_job_starts(tmp_path, monkeypatch, capsys, trained):
    _, net, _ = trained
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("ELSJAX_DICTIONARY_CACHE_DIR", str(tmp_path / "a_file" / "dicts"))
    assert cli.main(["calibrate", "--net", str(net), "--out-dir", str(tmp_path / "cal")]) == 2
    [line] = stderr_lines(capsys)
    assert line == (f"elsjax calibrate: error: ELSJAX_DICTIONARY_CACHE_DIR: {tmp_path}/a_file/dicts is not writable "
                    "(Not a directory)")  # fmt: skip
    assert not (tmp_path / "cal").exists()


def test_a_corrupt_data_cache_is_read_again(tmp_path, monkeypatch, capsys):
    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    assert cli.main(sample_argv(data, tmp_path / "one")) == 0
    [cached] = (Path(os.environ["ELSJAX_CACHE"]) / "data").glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    capsys.readouterr()
    assert cli.main(sample_argv(data, tmp_path / "two")) == 0
    [line] = stderr_lines(capsys)
    assert line.startswith(f"elsjax: warning: the data cache {cached} is unreadable")
    with np.load(tmp_path / "one" / "samples.npz") as one, np.load(tmp_path / "two" / "samples.npz") as two:
        np.testing.assert_array_equal(one["samples"], two["samples"])


# ----------------------------------------------------------------------------------------------------------------
# 6. A sweep checks every row's values before running any.


def tiny_rows(tmp_path, n=5):
    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    train_file = tmp_path / "train_tiny.py"
    train_file.write_text(
        "from elsjax.config import train_config\n"
        "def get_config():\n"
        "    c = train_config()\n"
        f"    c.dataset, c.data_dir, c.limit = 'mnist', {str(data)!r}, 30\n"
        "    c.width, c.emb_dim, c.num_layers, c.batch_size, c.num_steps = 8, 8, 1, 8, 4\n"
        "    c.n_samples, c.progress = 0, False\n"
        "    return c\n"
    )
    return [dict(name=f"row{i}", train_config=str(train_file), ks="3,5", ls_ks="3,5", calibrate_seeds=2,
                 calibrate_steps=4, evaluate_seeds=2, net_steps="3", seeds_per_part=2) for i in range(1, n + 1)]  # fmt: skip


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"published": "MNIST_Nope"}, r"rows: row 'row5': published: scales: 'MNIST_Nope' is neither published"),
        ({"ks": "3,4"}, r"rows: row 'row5': ks: expected an odd integer >= 3, got 4"),
        ({"net_steps": "0"}, r"rows: row 'row5': net_steps: expected comma-separated positive integers"),
        ({"kind": "vae"}, r"rows: row 'row5': kind: expected one of"),
        ({"evaluate_seeds": 0}, r"rows: row 'row5': evaluate_seeds: expected an integer >= 1, got 0"),
        (
            {"train_config": "", "net": "nowhere"},
            r"rows: row 'row5': net: no checkpoint in nowhere and no train_config",
        ),
        ({"train_overrides": {"arch": "vit"}}, r"rows: row 'row5': arch: unknown architecture 'vit'"),
        ({"train_overrides": {"widht": 8}}, r"rows: row 'row5': config: unknown field 'widht'"),
        (
            {"train_overrides": {"data_dir": "/nonexistent"}},
            r"rows: row 'row5': data: dir: /nonexistent is not a directory",
        ),
    ],
)
def test_a_sweep_checks_every_row_before_running_any(tmp_path, monkeypatch, bad, message):
    rows = tiny_rows(tmp_path)
    rows[-1].update(bad)
    cfg = sweeps.sweep_config()
    cfg.out_dir, cfg.progress, cfg.rows = str(tmp_path / "sweep"), False, rows
    monkeypatch.setattr(sweeps, "run_row", lambda *a, **k: pytest.fail("a row ran before every row was checked"))
    with pytest.raises(ValueError, match=message):
        sweeps.run(cfg, log=lambda *a: None)
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_without_rows_claims_no_table(tmp_path, capsys):
    sweep_file = tmp_path / "empty.py"
    sweep_file.write_text("from elsjax.sweeps import sweep_config\ndef get_config():\n    return sweep_config()\n")
    assert cli.main(["sweep", "--config", str(sweep_file), "--out-dir", str(tmp_path / "sweep")]) == 2
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "sweep").exists()


# ----------------------------------------------------------------------------------------------------------------
# 7. A full disk leaves no half file; the re-run recomputes (a small tmpfs when this machine allows it, else
#    ENOSPC simulated).


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or done.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def fill_but(path: Path, free: int) -> Path:
    """Fills the file system of ``path`` but ``free`` bytes."""
    stat = os.statvfs(path)
    available = stat.f_bavail * stat.f_frsize
    filler = path / "filler"
    filler.write_bytes(b"\0" * max(0, available - free))
    return filler


@pytest.mark.parametrize("how", ["tmpfs", "simulated"])
def test_a_full_disk_leaves_no_half_file_and_the_rerun_recomputes(tmp_path, monkeypatch, capsys, how):

    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    reference = tmp_path / "reference"
    assert cli.main(sample_argv(data, reference)) == 0
    monkeypatch.setattr(software, "code_state", lambda: ({"commit": None, "dirty": False}, ""))  # no code.diff to fit
    with contextlib.ExitStack() as stack:
        if how == "tmpfs":
            disk = stack.enter_context(small_tmpfs(tmp_path / "disk", "1m"))
            out = disk / "out"
            # Room (in 4 kB pages) for config.json, the lock and samples.png, not for samples.npz.
            pages = lambda size: -(-size // 4096)  # noqa: E731
            sizes = {p.name: p.stat().st_size for p in reference.iterdir()}
            room = pages(sizes["config.json"]) + pages(1024) + pages(sizes["samples.png"]) + 1
            assert pages(sizes["samples.npz"]) > 1
            filler = fill_but(disk, room * 4096)
        else:
            out = tmp_path / "out"
            real = np.savez

            def full(file, **arrays):
                file.write(b"PK\x03\x04 half")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(np, "savez", full)
        capsys.readouterr()
        assert cli.main(sample_argv(data, out)) == 1
        [line] = stderr_lines(capsys)
        assert re.fullmatch(
            r"elsjax sample: error: \S+/out/samples\.npz: could not be written \(No space left on device\); nothing "
            r"half-written was left, and the run is unfinished \(no record\.json\): make room \(or fix the file "
            r"system\) and run the same command again",
            line,
        )
        left = sorted(p.name for p in out.iterdir())
        assert left == ["config.json", "samples.png"]  # no samples.npz, no temporary file, no lock
        assert not runs.is_complete(out)
        # Room again: the same command recomputes the unfinished run.
        if how == "tmpfs":
            filler.unlink()
        else:
            monkeypatch.setattr(np, "savez", real)
        assert cli.main(sample_argv(data, out)) == 0
        [note] = stderr_lines(capsys)
        assert note == f"elsjax: note: {out} holds an unfinished run of this config (no record.json): recomputing it"
        assert runs.is_complete(out)
        with np.load(out / "samples.npz") as got, np.load(reference / "samples.npz") as want:
            np.testing.assert_array_equal(got["samples"], want["samples"])
        # Another config there is refused, and the message says why.
        (out / "record.json").unlink()
        assert cli.main(sample_argv(data, out, "--seed", "1")) == 2
        [line] = stderr_lines(capsys)
        assert line.endswith("holds a run of another config (seed) that never finished (no record.json: it was "
                             "killed or a write failed); pass --overwrite to replace it, or choose another out_dir")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Crash: a job killed (SIGKILL) while it writes a part; the re-run keeps every finished part.

KILLED_DURING_A_WRITE = textwrap.dedent(
    """
    import contextlib, sys, time
    from pathlib import Path
    from elsjax import atomic, cli

    real, marker = atomic.writing, Path(sys.argv[1])

    @contextlib.contextmanager
    def slow(path):
        with real(path) as f:
            yield f
            if Path(path).name == "machine_e_00002-00004.npz":  # the second machine part: hang inside its write
                f.write(b"half")
                f.flush()
                marker.write_text("writing")
                time.sleep(600)

    atomic.writing = slow
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def test_a_job_killed_during_a_write_loses_no_finished_work(tmp_path, capsys, trained):
    from elsjax import atomic, runlock  # here: the other tests run without it

    _, net, _ = trained
    whole, out = tmp_path / "whole", tmp_path / "ev"
    assert cli.main(evaluate_argv(net, whole)) == 0
    script, marker = tmp_path / "killed.py", tmp_path / "marker"
    script.write_text(KILLED_DURING_A_WRITE)
    proc = subprocess.Popen([sys.executable, str(script), str(marker), *evaluate_argv(net, out)],
                            env=env_with_repo(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no write"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    parts = out / "parts"
    finished = sorted(p.name for p in parts.iterdir() if not atomic.is_temporary(p))
    assert finished == ["machine_e_00000-00002.npz", "net_3.npz"]  # the part being written is not there
    assert any(atomic.is_temporary(p) for p in parts.iterdir())  # only its temporary file, which nothing reads
    assert runlock.holder(out)["pid"] == proc.pid and not runs.is_complete(out)
    stamps = {name: (parts / name).stat().st_mtime_ns for name in finished}

    capsys.readouterr()
    assert cli.main(evaluate_argv(net, out)) == 0
    note = stderr_lines(capsys)
    assert len(note) == 1 and "which is gone: the lock is stale, taking it over" in note[0]
    record = json.loads((out / "record.json").read_text())
    assert not set(record["computed_parts"]) & set(finished)
    assert not [p for p in out.rglob("*") if atomic.is_temporary(p)]  # the killed write's leftover is cleaned up
    assert all((parts / name).stat().st_mtime_ns == stamps[name] for name in finished)
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, whole))
    assert got["per_seed"] == want["per_seed"]


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_a_calibration_stopped_by_sigterm_keeps_its_parts_and_resumes_to_the_same_file(tmp_path, capsys, monkeypatch,
                                                                                        trained):  # fmt: skip
    from elsjax import parts

    _, _, cnet = trained
    save = parts.save

    def save_then_sigterm(*args, **kwargs):  # a scheduler's SIGTERM arriving while the first part is written
        save(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)

    knob = ["--kind", "pca_locality", "--knob", "tau", "--knob-values", "0,0.1"]
    for name, more in (("calibration.json", ["--ks", "3,5"]), ("knob_calibration.json", knob)):
        argv = lambda out, more=more: ["calibrate", "--net", str(cnet), "--n-seeds", "2", "--num-steps", "3",
                                       "--out-dir", str(out), "--no-progress", *more]  # fmt: skip
        whole, out = tmp_path / f"whole_{name}", tmp_path / f"cal_{name}"
        assert cli.main(argv(whole)) == 0
        with monkeypatch.context() as mp:
            mp.setattr(parts, "save", save_then_sigterm)
            capsys.readouterr()
            assert cli.main(argv(out)) == 128 + signal.SIGTERM
        [first] = [p.name for p in (out / "parts").iterdir()]  # the part written before the signal, complete
        assert stderr_lines(capsys) == [f"interrupted: 1 finished part(s) saved in {out / 'parts'}; run the same "
                                        "command to resume", "elsjax calibrate: interrupted (SIGTERM)"]  # fmt: skip
        assert not runs.is_complete(out)

        assert cli.main(argv(out)) == 0
        assert (
            stderr_lines(capsys)[-1]
            == f"elsjax: note: resumed the calibration in {out}: 1 of 4 parts from earlier runs"
        )
        record = json.loads((out / "record.json").read_text())
        assert first not in record["computed_parts"] and len(record["computed_parts"]) == 3  # 2 classes x 2 candidates
        assert (out / name).read_bytes() == (whole / name).read_bytes()

    # Another config written over the run (as a sweep does): its parts are not reused.
    out = tmp_path / "cal_calibration.json"
    assert cli.main(["calibrate", "--net", str(cnet), "--n-seeds", "2", "--num-steps", "3", "--ks", "3,5", "--seed",
                     "1", "--out-dir", str(out), "--no-progress", "--overwrite"]) == 0  # fmt: skip
    assert (
        f"elsjax: note: {out / 'parts'} holds parts computed from another config (other seed, x1): recomputing them"
        in stderr_lines(capsys)
    )
    assert len(json.loads((out / "record.json").read_text())["computed_parts"]) == 4


# ----------------------------------------------------------------------------------------------------------------
# 8. The smaller faults.


def test_explain_refuses_a_training_runs_samples(tmp_path, capsys):
    run = tmp_path / "train_run"
    assert cli.main(train_argv(fake.mnist_dir(tmp_path / "mnist"), run, "--n-samples", "2", "--sample-steps", "2",
                               steps=2)) == 0  # fmt: skip
    capsys.readouterr()
    assert cli.main(["explain", "--samples", str(run / "samples.npz"), "--out-dir", str(tmp_path / "why")]) == 2
    [line] = stderr_lines(capsys)
    assert line == (f"elsjax explain: error: samples: {run}/samples.npz was written by elsjax train, not by elsjax "
                    "sample; explain takes the samples of a score machine (`elsjax sample --out-dir DIR`, then "
                    "--samples DIR/samples.npz)")  # fmt: skip
    assert not (tmp_path / "why").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_coordinator_times_out_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELSJAX_COORDINATOR_TIMEOUT", "1.5")
    port = closed_port()
    start = time.monotonic()
    argv = sample_argv(fake.mnist_dir(tmp_path / "mnist"), tmp_path / "out", "--coordinator", f"127.0.0.1:{port}",
                       "--num-processes", "2", "--process-id", "1")  # fmt: skip
    assert cli.main(argv) == 2
    assert time.monotonic() - start < 30
    [line] = stderr_lines(capsys)
    assert line == (f"elsjax sample: error: coordinator: no coordinator answers at 127.0.0.1:{port} after 1.5 s "
                    "(Connection refused); this is process 1 of 2: start process 0 first, check the address, or set "
                    "ELSJAX_COORDINATOR_TIMEOUT to wait longer")  # fmt: skip


def test_the_evaluate_progress_bar_counts_every_class_group(tmp_path, monkeypatch, trained):
    _, _, cnet = trained
    bars = []
    real = runs.StepBar

    class Recorded(real):
        def close(self):
            bars.append((self.bar.desc, self.bar.total, self.bar.n))
            super().close()

    monkeypatch.setattr(runs, "StepBar", Recorded)
    argv = evaluate_argv(cnet, tmp_path / "ev", "--n-seeds", "3", "--seeds-per-part", "3", "--progress")
    assert cli.main(argv) == 0
    # 3 seeds of classes 0, 1, 2: three class groups of 2 steps each (3 scales), for e and for the IS.
    assert bars == [("e seeds 0-2", 6, 6), ("ideal seeds 0-2", 6, 6)]


def test_machines_and_scales_take_commas(tmp_path, capsys, trained):
    from elsjax import scales
    from elsjax.jobs import evaluate as evaluate_job

    specs = evaluate_job.machine_specs("e=els:3,5,5,l=ls:3+3+5,p=bbels:MNIST_ResNet_zeros,ideal=ideal")
    assert [tuple(m) for m in specs][:2] == [("e", "els", (3, 5, 5), {}), ("l", "ls", (3, 3, 5), {})]
    assert specs[2].scales == tuple(scales.resolve("MNIST_ResNet_zeros")) and specs[3].denoiser == "ideal"
    assert scales.resolve("3+3+5") == scales.resolve("3,3,5") == [3, 3, 5]
    with pytest.raises(
        ValueError, match=r"^machines: '5' follows no NAME=DENOISER:SCALES entry; expected NAME=DENOISER"
    ):
        evaluate_job.machine_specs("5,e=els:3")
    with pytest.raises(ValueError, match=r"^machines: expected NAME=DENOISER:SCALES entries separated by commas"):
        evaluate_job.machine_specs("e=els:3,3,x")


# ----------------------------------------------------------------------------------------------------------------
# What a run folder says about the code and the software that made it.


def test_a_run_folder_records_the_commit_the_diff_and_the_versions(tmp_path):
    data = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    out = tmp_path / "run"
    assert cli.main(sample_argv(data, out)) == 0
    record = json.loads((out / "record.json").read_text())
    state, diff = software.code_state()
    if shutil.which("git") and (REPO / ".git").exists():  # read once per process, at its first job's start
        assert re.fullmatch(r"[0-9a-f]{40}", record["code"]["commit"]) and record["code"]["commit"] == state["commit"]
    assert record["code"]["dirty"] == state["dirty"]
    if state["dirty"]:
        assert record["code"]["diff_file"] == "code.diff" and (out / "code.diff").read_text() == diff
    else:
        assert record["code"]["diff_file"] is None and not (out / "code.diff").exists()
    packages = record["versions"]["packages"]
    assert {"flax", "optax", "orbax-checkpoint", "numpy", "matplotlib"} <= set(packages)
    assert packages["flax"] and packages["numpy"] == np.__version__


# ----------------------------------------------------------------------------------------------------------------
# Figures that label what they show.


def capture_figures(monkeypatch) -> list:
    from elsjax import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or Path(path))
    return drawn


def test_the_calibration_plot_labels_the_published_k(tmp_path, monkeypatch):
    from elsjax import figures
    from elsjax.calibrate import Calibration

    drawn = capture_figures(monkeypatch)
    per_seed = np.array([[3, 5, 7, 7], [3, 5, 5, 7]])
    c = Calibration(
        (3, 5, 7), [0.25, 0.5, 0.75, 1.0], per_seed, [3, 5, 5, 7], [3, 5, 5, 7], np.ones((2, 4, 3)), 0, None
    )
    figures.calibration_plot(c, tmp_path / "c.png", published=[3, 9, 11, 13])
    ticks = [int(t) for t in drawn[0].axes[0].get_yticks()]
    assert ticks == [3, 5, 7, 9, 11, 13]


def test_the_explain_title_clears_the_legend(tmp_path, monkeypatch):
    from matplotlib.text import Text

    from elsjax import figures

    drawn = capture_figures(monkeypatch)
    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (6, 16, 16, 1))
    steps = 5
    figures.provenance_figure(
        tmp_path / "p.png", sample=train[0], mosaic=train[0], source=rng.integers(0, 6, (steps, 16, 16)),
        entropy=rng.uniform(0, 2, (steps, 16, 16)), estimates=train[:steps], t=np.linspace(0.9, 0.1, steps),
        k=[3] * steps, train=train, count=rng.integers(0, 20, (steps, 16, 16)), title="bbels on mnist, seed 0: " * 4,
    )  # fmt: skip
    fig = drawn[0]
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent(renderer)
    legend = next(t for t in fig.findobj(Text) if t.get_text().startswith("most used training images"))
    assert not title.overlaps(legend.get_window_extent(renderer))
    assert title.y0 > legend.get_window_extent(renderer).y1


def test_loss_png_draws_a_smoothed_curve_even_for_a_short_run():
    from elsjax import images

    values = np.tile([1.0, 0.25], 20)  # a loss that jumps every step: its mean is flat
    image = images.line_plot(values)
    blue = np.all(image == (31, 119, 180), axis=-1)
    rows = np.flatnonzero(blue[40:-40].any(axis=1))  # inside the plot (the key sits in the top margin)
    assert rows.size and rows.max() - rows.min() < 0.2 * image.shape[0]


def test_agreement_png_has_every_column_of_the_table(tmp_path, monkeypatch):
    from elsjax import figures

    drawn = []
    monkeypatch.setattr(figures, "agreement_by_row", lambda *args, **kw: drawn.append(args))
    medians = {m: {"20": 0.5} for m in ("bbels", "ls", "ideal", "bbels_published", "ls_published")}
    record = {"name": "a", "key": ["mnist", "resnet", "zeros", False], "kind": "bbels", "net_step": 1,
              "net_batch_size": 64, "summary": {"median_r": medians}}  # fmt: skip
    sweeps.figure([record], tmp_path / "a.png")
    (panels, _, _) = drawn[0]
    assert set(panels["net sampled with 20 DDIM steps"]) == {"(E)LS", "LS", "IS", "(E)LS published", "LS published"}


def test_the_wall_time_counts_only_the_sweeps_own_work():
    record = {"name": "a", "key": ["mnist", "resnet", "zeros", False], "kind": "bbels", "net_step": 1800,
              "net_batch_size": 64, "net_params": None, "train_images": 500, "published": None, "calibrated": {},
              "summary": {"n_seeds": 3, "median_r": {"bbels": {"20": 0.5}}, "frac_beats_ideal": {}},
              "wall_s": {"train": None, "net_training_elsewhere": 900.0, "calibrate_bbels": 60.0, "calibrate_ls": 30.0,
                         "evaluate": 90.0}}  # fmt: skip
    assert "| 3 min |" in sweeps.table([record], machine="m")
