"""Scale-out (elsjax.sharding): meshes, the sharded machines and sampler on fake CPU devices, two real processes.

JAX fixes its devices when its backend starts (already done in this pytest process), so the multi-device checks
run in fresh interpreters (tests/sharding_checks.py) with ``--xla_force_host_platform_device_count=4``, and the
multi-process check starts two processes joined by ``jax.distributed`` over the loopback address (Gloo).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import elsjax
from conftest import relerr
from elsjax import denoisers, sharding

CHECKS = Path(__file__).parent / "sharding_checks.py"
REPO = Path(__file__).resolve().parents[1]
FLOAT32_ROUNDOFF = 1e-5  # relative to the largest score: the order of float32 additions differs, nothing else


def start_check(*args, env=None) -> subprocess.Popen:
    """Starts ``sharding_checks.py ARGS`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(CHECKS), *args], env=env, cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def result(proc: subprocess.Popen, timeout: float) -> dict:
    """A started check's JSON (its last stdout line); it is killed if it runs past ``timeout`` seconds."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def run_check(*args, timeout: float, env=None) -> dict:
    """Runs ``sharding_checks.py ARGS`` and returns its JSON."""
    return result(start_check(*args, env=env), timeout)


@pytest.fixture(scope="module", autouse=True)
def meshes_started(request):
    """The four-device check starts with the module and runs while the other tests do (it is the longest), if a
    selected test needs it."""
    wanted = any("meshes" in getattr(item, "fixturenames", ()) for item in request.session.items)
    proc = start_check("meshes") if wanted else None
    yield proc
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.communicate()


def data(n=7, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 9, 9, 1)).astype(np.float32), rng.normal(size=(batch, 9, 9, 1)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# One device (this process): the API, its checks, and a one-device mesh.


def test_make_mesh_names_its_axes_and_uses_every_device_by_default():
    mesh = elsjax.make_mesh()
    assert isinstance(mesh, Mesh) and mesh.axis_names == ("seeds", "entries")
    assert dict(mesh.shape) == {"seeds": 1, "entries": len(jax.devices())}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: elsjax.make_mesh(seeds=0), r"^seeds: expected a positive integer, got 0"),
        (lambda: elsjax.make_mesh(entries=2.5), r"^entries: expected a positive integer"),
        (lambda: elsjax.make_mesh(1, 1000), r"^entries: asked for a mesh of 1 x 1000 = 1000 devices .* only 1 cpu"),
        (lambda: elsjax.make_mesh(1000), r"^seeds: asked for 1000 devices along 'seeds', but only 1"),
        (lambda: sharding.check_mesh(jax.make_mesh((1,), ("data",))), r"^mesh: unknown axis name\(s\) \['data'\]"),
        (lambda: sharding.check_mesh("2x2"), r"^mesh: expected SEEDS,ENTRIES"),
        (lambda: sharding.check_mesh(4), r"^mesh: expected a jax.sharding.Mesh"),
    ],
)
def test_bad_meshes_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unknown_axis_through_score_names_mesh():
    train, x = data()
    with pytest.raises(ValueError, match=r"^mesh: unknown axis name"):
        elsjax.score("els", x, 0.5, train=train, k=3, mesh=jax.make_mesh((1,), ("batch",)))


def test_parse_mesh():
    assert sharding.parse_mesh("2,4") == (2, 4)
    assert sharding.parse_mesh(" 1, 0 ") == (1, None)
    assert sharding.parse_mesh("") is None
    with pytest.raises(ValueError, match="^mesh: expected SEEDS,ENTRIES"):
        sharding.parse_mesh("4")


def test_one_device_mesh_equals_no_mesh():
    train, x = data()
    t = np.array([0.9, 0.3, 0.6, 0.1], np.float32)
    plain = elsjax.score("els", x, t, train=train, k=3, chunk_size=8)
    meshed = elsjax.score("els", x, t, train=train, k=3, chunk_size=8, mesh=elsjax.make_mesh(1, 1))
    np.testing.assert_allclose(meshed, plain, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind, knobs", [("pca_locality", {"tau": 0.05}), ("nearest", {}), ("pspc", {"k": 3})])
def test_the_field_s_sharded_denoisers_take_a_one_device_mesh(kind, knobs):
    train, x = data()
    t = np.array([0.9, 0.3, 0.6, 0.1], np.float32)
    machine = denoisers.build(kind, train, knobs.pop("k", None), **knobs, mesh=elsjax.make_mesh(1, 1))
    assert machine.mesh is not None and "entries" in machine.tables[0][0].sharding.spec
    np.testing.assert_allclose(machine.score(x, t), dataclasses.replace(machine, mesh=None).score(x, t), rtol=1e-6, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("n", [20, 50])  # N <= D: the whole set's fit is an SVD; N > D: eigh, as the merged fit's
def test_the_gaussian_fit_merged_from_unequal_shares_is_the_whole_set_s(n):
    """PCA-locality's fit on several processes: each one's moments, merged (float64, to round-off), with a pixel
    constant over the set (variance exactly 0, as the masks tell varying pixels by ``> 0``) and one constant within
    each share but not over the set (varying)."""
    from elsjax.denoisers import _field

    rng = np.random.default_rng(n)
    train = rng.uniform(-1, 1, (n, 4, 4, 2)).astype(np.float32)
    train[:, 0, 0, 0] = 0.3
    cuts = [0, 3, 11, n]
    for lo, hi in zip(cuts, cuts[1:]):
        train[lo:hi, 2, 1, 1] = lo / n
    parts = [_field.moments(train[lo:hi]) for lo, hi in zip(cuts, cuts[1:])]
    parts.insert(1, _field.moments(train[:0]))  # a process with no images
    shares = _field.Moments(*map(np.stack, zip(*parts)))
    got = _field.fit_moments(_field.merge_moments(shares))
    want = _field.gaussian_fit(train)
    scale = want.eigenvalues[0]
    np.testing.assert_allclose(got.mean, want.mean, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got.variance, want.variance, rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(got.eigenvalues, want.eigenvalues, rtol=0, atol=1e-13 * scale)
    covariance = lambda fit: (fit.eigenvectors * fit.eigenvalues) @ fit.eigenvectors.T
    np.testing.assert_allclose(covariance(got), covariance(want), rtol=0, atol=1e-13 * scale)
    constant = np.ravel_multi_index((0, 0, 0), train.shape[1:])
    assert got.variance[constant] == 0.0 and want.variance[constant] == 0.0
    np.testing.assert_array_equal(got.variance > 0, want.variance > 0)
    assert (got.variance > 0).sum() == train[0].size - 1
    # One process: the fit of its images is gaussian_fit's own (the same cached object), and allgather a copy.
    assert _field.gaussian_fit_of_processes(train) is want
    gathered = sharding.allgather(parts[0])
    assert all(np.array_equal(g[0], p) and g.dtype == np.asarray(p).dtype for g, p in zip(gathered, parts[0]))


def test_sharded_machine_is_a_pytree_with_its_mesh():
    train, x = data()
    mesh = elsjax.make_mesh(1, 1)
    m = denoisers.build("els", train, 3, mesh=mesh)
    assert m.mesh == mesh
    leaves, treedef = jax.tree_util.tree_flatten(m)
    assert all(leaf.sharding.spec == jax.sharding.PartitionSpec(None, "entries") for leaf in leaves)
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    np.testing.assert_array_equal(again.score(x, 0.5), m.score(x, 0.5))


def test_calibration_takes_a_mesh():
    from elsjax import calibrate

    train, x = data(n=5, batch=3)
    net = denoisers.build("els", train, 5)  # a "net": the ELS machine with k = 5, so the sharded k = 5 machine is it
    cal = calibrate.calibrate_seeds(
        denoisers.Denoiser.eps, net, x, kind="els", train=train, ks=[5], num_steps=2, mesh=elsjax.make_mesh(1, 1)
    )
    assert np.all(cal.cosine > 1 - 1e-6)


def test_local_share_is_everything_with_one_process():
    images, labels = np.zeros((5, 2, 2, 1)), np.array([0, 1, 0, 1, 1])
    got, got_labels = sharding.local_share(images, labels)
    assert got is images and got_labels is labels
    assert sharding.local_indices(5, labels).tolist() == [0, 1, 2, 3, 4]
    assert sharding.initialize("") is False  # no coordinator anywhere: one process


# ----------------------------------------------------------------------------------------------------------------
# Two real processes on this machine (jax.distributed over loopback, Gloo collectives).


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_each_holding_half_the_dictionary_give_the_one_process_score(tmp_path):
    port = free_port()
    procs = []
    for i in range(2):
        env = {
            "ELSJAX_COORDINATOR": f"127.0.0.1:{port}",
            "ELSJAX_NUM_PROCESSES": "2",
            "ELSJAX_PROCESS_ID": str(i),
            "ELSJAX_CHECK_OUT": str(tmp_path / f"process{i}.npz"),
        }
        procs.append(start_check("worker", env=env))
    try:
        infos = [result(p, timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert [i["process"] for i in infos] == [0, 1]
    assert all(i["processes"] == 2 and i["devices"] == 2 and i["local_devices"] == 1 for i in infos)
    assert sum(i["own_images"] for i in infos) == 10
    assert all(i["els_bytes_held"] * 2 == i["els_bytes_global"] for i in infos)  # each holds half

    # The one-process reference, in this process, from all ten images.
    from sharding_checks import KINDS, PROCESS_FIELD, PROCESS_T
    from sharding_checks import data as check_data

    train, x = check_data(n=10)
    labels = np.arange(10) % 2
    want = {kind: elsjax.score(kind, x, 0.4, train=train, k=3) for kind in KINDS}
    want.update({kind: elsjax.score(kind, x, PROCESS_T, train=train, **knobs) for kind, knobs in PROCESS_FIELD.items()})
    want["els, conditional"] = elsjax.score("els", x, 0.4, train=train, k=3, labels=labels, y=[0, 1, 1, 0])
    for i in range(2):
        got = np.load(tmp_path / f"process{i}.npz")
        for name, value in want.items():
            assert relerr(got[name], value) <= FLOAT32_ROUNDOFF, (i, name, relerr(got[name], value))


# ----------------------------------------------------------------------------------------------------------------
# Four fake CPU devices (a subprocess).


@pytest.fixture(scope="module")
def meshes(meshes_started):
    return result(meshes_started, timeout=300)


def test_four_fake_devices(meshes):
    assert meshes["devices"] == 4


@pytest.mark.parametrize("kind", ["ideal", "ls", "els", "bbels"])
def test_every_machine_on_every_mesh_equals_one_device(meshes, kind):
    errors = meshes["score"][kind]
    assert set(errors) == {"1", "4 entries", "2 seeds x 2 entries", "3 entries (uneven)"}
    assert errors["1"] <= 1e-6
    assert max(errors.values()) <= FLOAT32_ROUNDOFF, errors


@pytest.mark.parametrize("kind", ["pca_locality", "nearest", "pspc"])
def test_the_field_s_sharded_denoisers_on_every_mesh_equal_one_device(meshes, kind):
    """A batch of 4 images at 4 t, 7 training images over 1, 4, 2 x 2 and 3 (uneven) devices; elsjax.score and
    elsjax.sample."""
    errors = meshes["field"][kind]
    assert set(errors) == {"1", "4 entries", "2 seeds x 2 entries", "3 entries (uneven)", "sample"}
    assert errors["1"] <= 1e-6, (errors, meshes["field"]["nearest images"])
    assert max(errors.values()) <= (0.0 if kind == "nearest" else FLOAT32_ROUNDOFF), errors


def test_nearest_on_a_mesh_reads_the_best_device_s_image(meshes):
    assert meshes["field"]["nearest images"] == dict.fromkeys(
        ["1", "4 entries", "2 seeds x 2 entries", "3 entries (uneven)"], True
    )


def test_a_conditional_sample_on_sharded_meshes_equals_one_device(meshes):
    assert set(meshes["sample"]) == {"2 seeds x 2 entries", "3 entries (uneven)"}
    assert max(meshes["sample"].values()) <= FLOAT32_ROUNDOFF, meshes["sample"]


@pytest.mark.slow
def test_samples_gradients_calibration_evaluation_on_four_devices():
    more = run_check("more", timeout=900)
    assert set(more["sample"]) == {"1", "4 entries", "2 seeds x 2 entries", "3 entries (uneven)"}
    assert max(more["sample"].values()) <= FLOAT32_ROUNDOFF, more["sample"]
    assert more["grad"] <= FLOAT32_ROUNDOFF
    assert max(more["default chunks"].values()) <= FLOAT32_ROUNDOFF, more["default chunks"]
    assert more["jax.make_mesh"] <= FLOAT32_ROUNDOFF
    assert more["calibration"]["same_choices"] and more["calibration"]["cosine"] <= 1e-5
    assert more["evaluation"] <= FLOAT32_ROUNDOFF


def test_bad_meshes_on_four_devices(meshes):
    errors = meshes["errors"]
    assert errors["batch"].startswith("mesh: its 'seeds' axis has 2 devices, which does not divide the batch of 3")
    assert errors["sample batch"].startswith("mesh: its 'seeds' axis has 2 devices")
    assert errors["devices"].startswith("entries: asked for a mesh of 2 x 3 = 6 devices")
    assert errors["seeds devices"].startswith("seeds: asked for 8 devices along 'seeds', but only 4 cpu devices")
    assert errors["axis"].startswith("mesh: unknown axis name(s) ['data']")


@pytest.mark.slow
def test_oracle_scores_on_a_sharded_mesh():
    result = run_check("oracle", timeout=1200)
    assert all(r["ok"] for r in result.values()), result


# ----------------------------------------------------------------------------------------------------------------
# The command line.


def tiny_sample_argv(data_dir, out_dir, *more):
    return ["sample", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "30", "--scales", "3,3,3",
            "--kind", "els", "--n-seeds", "2", "--out-dir", str(out_dir), "--no-progress", *more]  # fmt: skip


def test_sample_command_takes_a_mesh(isolated, tmp_path):
    import datasets_for_tests as fake

    from elsjax import cli

    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    assert cli.main(tiny_sample_argv(data_dir, tmp_path / "run", "--mesh", "1,1")) == 0
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["mesh"] == {"seeds": 1, "entries": 1, "platform": "cpu", "processes": 1}
    assert record["config"]["mesh"] == [1, 1]  # typed: a pair of ints (given as "1,1" on the command line)


@pytest.mark.slow
def test_sample_command_on_two_processes_equals_one(isolated, tmp_path):
    """``elsjax sample`` run by two processes (each building the dictionaries of its share of every class; process
    0 writing) gives the samples of the one-process command."""
    import datasets_for_tests as fake

    from elsjax import cli

    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    assert cli.main(tiny_sample_argv(data_dir, tmp_path / "one")) == 0
    run_two_processes(tiny_sample_argv(data_dir, tmp_path / "two"), cwd=tmp_path, timeout=300)
    with np.load(tmp_path / "one" / "samples.npz") as one, np.load(tmp_path / "two" / "samples.npz") as two:
        assert relerr(two["samples"], one["samples"]) <= FLOAT32_ROUNDOFF
    record = json.loads((tmp_path / "two" / "record.json").read_text())
    assert record["mesh"] == {"seeds": 1, "entries": 2, "platform": "cpu", "processes": 2}


def run_two_processes(argv, cwd, timeout=600):
    """``python -m elsjax ARGV --coordinator ... --num-processes 2 --process-id I`` for I = 0, 1; waits for both."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "ELSJAX_COMPILATION_CACHE": "0"}
    extra = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id"]
    procs = [
        subprocess.Popen([sys.executable, "-m", "elsjax", *argv, *extra, str(i)], env=env, cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    try:
        for p in procs:
            _, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


@pytest.mark.slow
def test_calibrate_and_evaluate_commands_on_two_processes_equal_one(isolated, tmp_path):
    import datasets_for_tests as fake

    from elsjax import cli

    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    net = tmp_path / "net"
    train = ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "30", "--width", "8", "--emb-dim",
             "8", "--num-layers", "1", "--batch-size", "8", "--num-steps", "4", "--n-samples", "0",
             "--out-dir", str(net), "--no-progress"]  # fmt: skip
    assert cli.main(train) == 0
    calibrate = ["calibrate", "--net", str(net), "--kind", "bbels", "--ks", "3,5", "--n-seeds", "2", "--num-steps",
                 "3", "--no-progress", "--out-dir"]  # fmt: skip
    assert cli.main([*calibrate, str(tmp_path / "cal1")]) == 0
    run_two_processes([*calibrate, str(tmp_path / "cal2")], cwd=tmp_path)
    one, two = (json.loads((tmp_path / d / "calibration.json").read_text()) for d in ("cal1", "cal2"))
    assert two["per_seed"] == one["per_seed"]
    np.testing.assert_allclose(two["cosine"], one["cosine"], atol=1e-5)

    evaluate = ["evaluate", "--net", str(net), "--machines", "e=els:3+3+5,ideal=ideal", "--n-seeds", "3",
                "--net-steps", "3", "--seeds-per-part", "2", "--no-progress", "--out-dir"]  # fmt: skip
    assert cli.main([*evaluate, str(tmp_path / "ev1")]) == 0
    run_two_processes([*evaluate, str(tmp_path / "ev2"), "--mesh", "1,2"], cwd=tmp_path)
    with np.load(tmp_path / "ev1" / "samples.npz") as one, np.load(tmp_path / "ev2" / "samples.npz") as two:
        for key in ("machine_e", "machine_ideal", "net_3"):
            assert relerr(two[key], one[key]) <= FLOAT32_ROUNDOFF, key
    record = json.loads((tmp_path / "ev2" / "record.json").read_text())
    assert record["mesh"]["processes"] == 2 and len(record["computed_parts"]) == 5
    run_two_processes([*evaluate, str(tmp_path / "ev2"), "--mesh", "1,2"], cwd=tmp_path)  # resumed: nothing to do
    assert json.loads((tmp_path / "ev2" / "record.json").read_text())["computed_parts"] == []
