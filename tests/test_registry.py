"""The denoiser registry: denoisers written outside the package, registered once, work everywhere a machine does.

Two plug-ins are defined here, as a user would: ``BoxMean`` (the training set's mean image, box-blurred by k; it
streams no dictionary, so it has no provenance) and ``ZeroQueryELS`` (the ELS dictionary of valid patches queried with
zero-padded patches, built from the public ``PatchDenoiser``). Neither edits elsjax.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import brute_force  # noqa: E402
import datasets_for_tests as fake  # noqa: E402

import elsjax  # noqa: E402
from elsjax import calibrate, cli, denoisers, evaluate, noise, patches, sweeps  # noqa: E402


@dataclasses.dataclass(frozen=True)
class BoxMean(denoisers.Denoiser):
    """The mean training image, blurred by a k x k box (zero padding): a denoiser with a patch size, no dictionary."""

    blurred: jax.Array

    @classmethod
    def build(cls, images, k=None, **options):
        mean = np.mean(images, axis=0)
        d = k // 2
        padded = np.pad(mean, ((d, d), (d, d), (0, 0)))
        h, w = mean.shape[:2]
        blurred = sum(padded[i : i + h, j : j + w] for i in range(k) for j in range(k)) / (k * k)
        return cls(jnp.asarray(blurred, jnp.float32))

    def posterior_mean(self, x, t):
        return jnp.broadcast_to(self.blurred, x.shape)


@dataclasses.dataclass(frozen=True)
class ZeroQueryELS(denoisers.PatchDenoiser):
    """ELS's dictionary of valid patches, queried with zero-padded (not circular) patches."""

    @classmethod
    def regions(cls, h, w, k):
        return patches.els_regions(h, w, k)

    @classmethod
    def fewest_occurrences(cls, shape, k):
        n, h, w = shape[:3]
        return n * (h - k + 1) * (w - k + 1)


PLUGINS = {"test_box_mean": BoxMean, "test_els_zero_queries": ZeroQueryELS}


@pytest.fixture(autouse=True, scope="module")
def registered():
    """The plug-ins are registered while this module's tests run (other modules see the built-in names only)."""
    for name, cls in PLUGINS.items():
        denoisers.register(name)(cls)
    yield
    for name in PLUGINS:
        denoisers.unregister(name)


def data(n=6, hw=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, hw, hw, 1)).astype(np.float32), rng.normal(size=(2, hw, hw, 1)).astype(np.float32)


def test_registered_names_and_classes():
    assert {"ideal", "ls", "els", "bbels", "test_box_mean", "test_els_zero_queries"} <= set(denoisers.names())
    assert denoisers.get("test_box_mean") is BoxMean and BoxMean.name == "test_box_mean"
    with pytest.raises(ValueError, match="kind: expected one of .*test_box_mean"):
        denoisers.get("no_such_denoiser")


def test_registration_refuses_a_taken_name_and_non_dataclasses():
    with pytest.raises(ValueError, match="'els' is taken"):
        denoisers.register("els")(dataclasses.dataclass(frozen=True)(type("Other", (denoisers.Denoiser,), {})))
    with pytest.raises(TypeError, match="frozen dataclass"):
        denoisers.register("test_not_a_dataclass")(type("Plain", (denoisers.Denoiser,), {}))
    with pytest.raises(TypeError, match="not a subclass"):
        denoisers.register("test_not_a_denoiser")(dataclasses.dataclass(frozen=True)(type("Other", (), {})))
    assert "test_not_a_dataclass" not in denoisers.names()
    with pytest.raises(ValueError, match="'no_such' is not registered"):
        denoisers.unregister("no_such")


def test_score_of_a_plugin_is_its_posterior_mean_and_composes():
    train, x = data()
    t = np.array([0.3, 0.7], np.float32)
    a, b = noise.signal_noise_std(jnp.asarray(t))
    got = elsjax.score("test_box_mean", x, t, train=train, k=3)
    blurred = BoxMean.build(train, 3).blurred
    want = -(x - a[:, None, None, None] * blurred) / (b * b)[:, None, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    machine = denoisers.build("test_box_mean", train, 3)
    assert jax.jit(lambda m, x: m.score(x, 0.5))(machine, jnp.asarray(x)).shape == x.shape
    with pytest.raises(ValueError, match="k: expected an odd integer >= 3, got 4"):
        elsjax.score("test_box_mean", x, 0.5, train=train, k=4)


def zero_query_els_brute(x, t, train, k):
    """float64, pixel by pixel: each zero-padded query patch against every valid training patch."""
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    a, b = brute_force.schedule_ab(t)
    h, w, _ = x.shape
    d = k // 2
    centres = [(r, c) for r in range(d, h - d) for c in range(d, w - d)]
    psis = np.stack([brute_force.padded_patch(img, r, c, k, "zeros") for img in train for r, c in centres])
    values = np.stack([img[r, c] for img in train for r, c in centres])
    mu = np.zeros_like(x)
    for r in range(h):
        for c in range(w):
            q = brute_force.padded_patch(x, r, c, k, "zeros")
            logits = -np.sum((q[None] - a * psis) ** 2, axis=(1, 2, 3)) / (2 * b * b)
            mu[r, c] = brute_force.softmax_mean(logits, values)
    return -(x - a * mu) / (b * b)


def test_a_plugin_patch_denoiser_matches_a_float64_brute_force():
    train, x = data()
    m = denoisers.build("test_els_zero_queries", train, 3)
    t = np.array([0.2, 0.6], np.float32)
    got = np.asarray(m.score(x, t))
    for i in range(len(x)):
        want = zero_query_els_brute(x[i], t[i], train, 3)
        assert np.abs(got[i] - want).max() / np.abs(want).max() < 1e-5


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sample_and_provenance_through_the_entry_points():
    train, x = data()
    out = elsjax.sample("test_els_zero_queries", x, train=train, scales=[3, 3, 5, 5])
    assert out.shape == x.shape and np.isfinite(np.asarray(out)).all()
    assert elsjax.sample("test_box_mean", x, train=train, scales=[3, 5, 5]).shape == x.shape
    p = elsjax.explain("test_els_zero_queries", train[:1], 1e-3, train=train, k=3, top=2)
    assert p.image[0, 4, 4, 0] == 0 and p.position[0, 4, 4, 0].tolist() == [4, 4]
    np.testing.assert_allclose(p.weight[0, 4, 4, 0], 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="'test_box_mean'.* no provenance"):
        elsjax.explain("test_box_mean", x, 0.5, train=train, k=3)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_calibration_and_evaluation_take_a_plugin():
    train, x = data(n=5)
    net = denoisers.build("test_els_zero_queries", train, 5)
    cal = calibrate.calibrate(
        denoisers.Denoiser.eps, net, kind="test_els_zero_queries", train=train, ks=[3, 5, 7], n_seeds=2, num_steps=3
    )
    assert cal.kind == "test_els_zero_queries" and cal.median == [5, 5, 5]
    ev = evaluate.evaluate(
        denoisers.Denoiser.eps, net, train=train, n_seeds=2, net_steps=(3,),
        machines={"plug": ("test_box_mean", [3, 3, 3]), "ideal": ("ideal", None)},
    )  # fmt: skip
    assert set(ev.summary["median_r"]) == {"plug", "ideal"}


@pytest.mark.usefixtures("isolated")
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_the_command_line_samples_a_plugin(tmp_path):
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    out = tmp_path / "run"
    args = ["sample", "--kind", "test_els_zero_queries", "--dataset", "mnist", "--data-dir", str(data_dir),
            "--limit", "30", "--scales", "3,3,3", "--n-seeds", "2", "--out-dir", str(out), "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    assert json.loads((out / "config.json").read_text())["kind"] == "test_els_zero_queries"
    assert np.load(out / "samples.npz")["samples"].shape[0] == 2


@pytest.mark.integration
@pytest.mark.usefixtures("isolated")
def test_a_sweep_row_runs_a_plugin(tmp_path):
    from test_sweeps import tiny_sweep

    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))
    cfg.rows = [{**cfg.rows[0], "kind": "test_els_zero_queries"}]
    (record,) = sweeps.run(cfg, log=lambda *a: None)
    summary = json.loads((tmp_path / "sweep" / "a" / "evaluate" / "summary.json").read_text())
    assert summary["machines_spec"]["test_els_zero_queries"]["kind"] == "test_els_zero_queries"
    assert record["name"] == "a"


def test_knobs_are_checked_by_name():
    train, x = data()
    with pytest.raises(
        ValueError, match=r"^tau: the 'els' denoiser has no such knob \(its knobs: \['data_padding'\]\)"
    ):
        denoisers.build("els", train, 3, tau=0.1)
    with pytest.raises(ValueError, match="^tau: the 'bbels' denoiser has no such knob"):
        elsjax.score("bbels", x, 0.5, train=train, k=3, tau=0.1)
