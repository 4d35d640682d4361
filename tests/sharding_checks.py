"""Checks of elsjax.sharding that need several devices or processes, run as subprocesses by tests/test_sharding.py.

JAX fixes its devices when its backend starts, which in a pytest process has already happened; so each check runs
in a fresh interpreter and prints one JSON line:

    python tests/sharding_checks.py meshes      # 4 fake CPU devices: every machine on each mesh, a sample
    python tests/sharding_checks.py more        # 4 fake CPU devices: longer checks (samples, a gradient)
    python tests/sharding_checks.py oracle      # 4 fake CPU devices: the oracle score cases on a 2 x 2 mesh
    python tests/sharding_checks.py worker      # one of several processes (jax.distributed, env ELSJAX_*)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

if sys.argv[1:2] in (["meshes"], ["more"], ["oracle"]):
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

KINDS = ("ideal", "ls", "els", "bbels")
# The field's denoisers that stream tables, with their knobs.
FIELD = {"pca_locality": {"tau": 0.05}, "nearest": {}, "pspc": {"k": 3}}
# The field's denoisers in the two-process check (PCA-locality: its Gaussian fit merged across the processes).
PROCESS_FIELD = {"pca_locality": {"tau": 0.05}}
PROCESS_T = np.array([0.9, 0.3, 0.6, 0.1], np.float32)  # their times (four masks)
MESHES = {"1": (1, 1), "4 entries": (1, 4), "2 seeds x 2 entries": (2, 2), "3 entries (uneven)": (1, 3)}


def relerr(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())


def data(n=7, h=9, w=9, c=1, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    train = rng.uniform(-1, 1, (n, h, w, c)).astype(np.float32)
    x = rng.normal(size=(batch, h, w, c)).astype(np.float32)
    return train, x


def meshes() -> dict:
    """Largest relative difference to one device, per machine and mesh; a conditional sample; the bad inputs."""
    import jax

    import elsjax

    out = {"devices": len(jax.devices()), "score": {}, "sample": {}, "errors": {}}
    train, x = data()
    t = np.array([0.9, 0.3, 0.6, 0.1], np.float32)
    for kind in KINDS:
        one = elsjax.score(kind, x, t, train=train, k=3, chunk_size=8)  # small chunks: every device gets entries
        out["score"][kind] = {
            name: relerr(elsjax.score(kind, x, t, train=train, k=3, chunk_size=8, mesh=elsjax.make_mesh(*m)), one)
            for name, m in MESHES.items()
        }
    out["field"] = field(train, x, t)
    # A class-conditional sample: groups of 1 and 3 seeds, each padded to a multiple of the "seeds" axis.
    out["sample"] = samples(
        "els", {k: v for k, v in MESHES.items() if k in ("2 seeds x 2 entries", "3 entries (uneven)")}
    )
    bad = {
        "batch": lambda: elsjax.score("els", x[:3], 0.5, train=train, k=3, mesh=elsjax.make_mesh(2, 2)),
        "sample batch": lambda: elsjax.sample("els", x[:3], train=train, scales=[3, 3], mesh=elsjax.make_mesh(2, 2)),
        "devices": lambda: elsjax.make_mesh(2, 3),
        "seeds devices": lambda: elsjax.make_mesh(8),
        "axis": lambda: elsjax.score("els", x, 0.5, train=train, k=3, mesh=jax.make_mesh((4,), ("data",))),
    }
    for name, call in bad.items():
        try:
            call()
            out["errors"][name] = "no error"
        except ValueError as err:
            out["errors"][name] = str(err)
    return out


def field(train, x, t) -> dict:
    """The field's sharded denoisers against one device: the score of a batch at four t on each mesh, a sample on
    two meshes, and nearest's images when the nearest training images lie on different devices."""
    import jax.numpy as jnp

    import elsjax
    from elsjax import denoisers, noise

    out = {}
    for kind, knobs in FIELD.items():
        one = elsjax.score(kind, x, t, train=train, chunk_size=8, **knobs)
        out[kind] = {
            name: relerr(elsjax.score(kind, x, t, train=train, chunk_size=8, **knobs, mesh=elsjax.make_mesh(*m)), one)
            for name, m in MESHES.items()
        }
        rest = {name: value for name, value in knobs.items() if name != "k"}  # a sample's k are its scales
        scales = [knobs.get("k", 3)] * 3
        plain = elsjax.sample(kind, x, train=train, scales=scales, chunk_size=8, **rest)
        out[kind]["sample"] = max(
            relerr(elsjax.sample(kind, x, train=train, scales=scales, chunk_size=8, **rest, mesh=elsjax.make_mesh(*m)), plain)
            for m in (MESHES["2 seeds x 2 entries"], MESHES["3 entries (uneven)"])
        )  # fmt: skip
    # Training images 6, 0, 3, 5 lie on different devices of 4 and of 3 entries (7 images: 2 or 3 per device).
    near = [6, 0, 3, 5]
    a, b = noise.signal_noise_std(jnp.asarray(t))
    noisy = np.asarray(a)[:, None, None, None] * train[near] + 0.05 * np.asarray(b)[:, None, None, None] * x
    out["nearest images"] = {
        name: bool(
            (np.asarray(denoisers.build("nearest", train, mesh=elsjax.make_mesh(*m)).denoise(noisy, t)) == train[near]).all()
        )
        for name, m in MESHES.items()
    }  # fmt: skip
    return out


def samples(kind: str, meshes: dict, scales=(3, 3, 3)) -> dict:
    """A class-conditional sample (groups of 1 and 3 seeds) on each mesh, against one device."""
    import elsjax

    train, x = data()
    labels, y = np.arange(len(train)) % 2, np.array([0, 1, 1, 1])
    kwargs = dict(train=train, scales=list(scales), labels=labels, y=y, chunk_size=8)
    one = elsjax.sample(kind, x, **kwargs)
    return {
        name: relerr(elsjax.sample(kind, x, **kwargs, mesh=elsjax.make_mesh(*m)), one) for name, m in meshes.items()
    }


def more() -> dict:
    """The longer checks: a bbELS sample over two k on every mesh, a gradient, the default chunk sizes, a mesh from
    ``jax.make_mesh`` (Explicit axes, one axis)."""
    import jax

    import elsjax

    train, x = data()
    t = np.array([0.9, 0.3, 0.6, 0.1], np.float32)
    out = {"sample": samples("bbels", MESHES, scales=(3, 3, 5, 5))}
    grad = lambda mesh: jax.grad(lambda x: elsjax.score("els", x, 0.4, train=train, k=3, mesh=mesh).sum())(x)
    out["grad"] = relerr(grad(elsjax.make_mesh(2, 2)), grad(None))
    one = elsjax.score("els", x, t, train=train, k=5)  # one chunk per dictionary: other devices hold only padding
    out["default chunks"] = {
        name: relerr(elsjax.score("els", x, t, train=train, k=5, mesh=elsjax.make_mesh(*m)), one)
        for name, m in MESHES.items()
    }
    # Calibration and evaluation: 3 seeds, padded to the 2 seed devices.
    from elsjax import calibrate, denoisers, evaluate

    net = denoisers.build("els", train, 5)
    cal = lambda mesh: calibrate.calibrate_seeds(
        denoisers.Denoiser.eps, net, x[:3], kind="bbels", train=train, ks=[3, 5], num_steps=3, mesh=mesh
    )
    one, two = cal(None), cal(elsjax.make_mesh(2, 2))
    out["calibration"] = {"same_choices": bool(np.array_equal(one.per_seed, two.per_seed)),
                          "cosine": float(np.abs(one.cosine - two.cosine).max())}  # fmt: skip
    ev = lambda mesh: evaluate.machine_samples("els", x[:3], train=train, scales=[3, 3, 5], mesh=mesh)
    out["evaluation"] = relerr(ev(elsjax.make_mesh(2, 2)), ev(None))
    plain = jax.make_mesh((4,), ("entries",))
    out["jax.make_mesh"] = relerr(
        elsjax.score("ls", x, t, train=train, k=3, mesh=plain), elsjax.score("ls", x, t, train=train, k=3)
    )
    return out


def oracle() -> dict:
    """The oracle score cases (tests/test_oracle.py) on a 2 seeds x 2 entries mesh; worst error per file."""
    from test_oracle import SCORE_FILES, case_groups, tolerance

    import elsjax
    from conftest import KIND, ORACLE

    mesh = elsjax.make_mesh(2, 2)
    out = {}
    for name in SCORE_FILES:
        ref = np.load(ORACLE / name)
        worst, ok = 0.0, True
        for (machine, k, y), cases in case_groups(ref):
            cases = cases + cases[-1:] * (len(cases) % 2)  # an even batch for the two seed devices
            got = elsjax.score(
                KIND[machine], ref["case_x"][cases], ref["case_t"][cases], train=ref["train_images"],
                k=k or None, labels=ref["train_labels"], y=None if y < 0 else np.full(len(cases), y), mesh=mesh,
            )  # fmt: skip
            for i, s in zip(cases, np.asarray(got)):
                t = float(ref["case_t"][i])
                err = relerr(s, ref["case_score"][i])
                ok = ok and err <= tolerance(t) and relerr(s, ref["case_score_f64"][i]) <= tolerance(t)
                worst = max(worst, err)
        out[name] = {"worst_vs_reference": worst, "ok": bool(ok)}
    return out


def worker() -> dict:
    """One process of a multi-process run: its half of the training images, the combined score.

    Environment: ELSJAX_COORDINATOR, ELSJAX_NUM_PROCESSES, ELSJAX_PROCESS_ID (read by elsjax.sharding.initialize);
    ELSJAX_CHECK_OUT, a file for this process's scores (.npz).
    """
    from elsjax import sharding

    assert sharding.initialize()  # from the environment
    import jax

    import elsjax

    start = time.perf_counter()
    train, x = data(n=10)
    labels = np.arange(len(train)) % 2
    mine, my_labels = sharding.local_share(train, labels)
    mesh = elsjax.make_mesh()  # one device per process: 2 along "entries"
    scores = {}
    for kind in KINDS:
        scores[kind] = np.asarray(elsjax.score(kind, x, 0.4, train=mine, k=3, chunk_size=8, mesh=mesh))
    for kind, knobs in PROCESS_FIELD.items():
        scores[kind] = np.asarray(elsjax.score(kind, x, PROCESS_T, train=mine, chunk_size=4, **knobs, mesh=mesh))
    scores["els, conditional"] = np.asarray(
        elsjax.score("els", x, 0.4, train=mine, k=3, labels=my_labels, y=[0, 1, 1, 0], mesh=mesh)
    )
    machine = elsjax.denoisers.build("els", mine, 3, chunk_size=8, mesh=mesh)
    held = sum(s.data.nbytes for leaf in jax.tree_util.tree_leaves(machine) for s in leaf.addressable_shards)
    total = sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(machine))
    np.savez(os.environ["ELSJAX_CHECK_OUT"], **scores)
    info = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "own_images": len(mine),
        "els_bytes_held": int(held),
        "els_bytes_global": int(total),
        "seconds": round(time.perf_counter() - start, 2),
    }
    jax.distributed.shutdown()
    return info


if __name__ == "__main__":
    print(json.dumps({"meshes": meshes, "more": more, "oracle": oracle, "worker": worker}[sys.argv[1]]()))
