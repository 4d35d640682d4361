"""elsjax.evaluate: a net that is the machine agrees exactly, determinism, and summarize on hand-made numbers."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from elsjax import calibrate, denoisers, noise, sampler
from elsjax import evaluate as ev


@dataclasses.dataclass(frozen=True)
class HeldSeedMachineNet:
    """A machine used as a net whose first step (t = 1 -> 1 - 1/n) keeps x unchanged (up to rounding).

    The net sampler runs n steps from t = 1, the machine sampler n - 1 steps from t = (n - 1)/n, both from the same
    seed (docs/maths.md §3). Holding the first step makes the net's remaining steps exactly the machine's grid, so the two
    samplers evaluate the same machine at the same times: their outputs must agree to float rounding.
    """

    n: int

    def __call__(self, params, x, t, y=None):
        a, b = noise.ddim_coefficients(t, t - jnp.float32(1.0 / self.n))
        hold = x * ((1 - a) / b)[:, None, None, None]  # A x + B hold = x
        return jnp.where((t >= 1)[:, None, None, None], hold, denoisers.Denoiser.eps(params, x, t))


MACHINES = {"els": ("els", [5] * 20), "els3": ("els", [3] * 20), "ideal": ("ideal", None)}


def random_train(n=8, hw=12, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, hw, hw, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def setup():
    train = random_train()
    return train, denoisers.build("els", train, 5)


def test_machine_as_net_agrees_exactly(setup):
    train, els5 = setup
    e = ev.evaluate(HeldSeedMachineNet(20), els5, train=train, machines=MACHINES, n_seeds=4, net_steps=(20,))
    same = e.per_seed["els"][20]
    np.testing.assert_allclose(same["r"], 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(same["R2"], 1.0, rtol=0, atol=1e-5)
    assert np.all(same["mse"] < 1e-9)
    # The metric separates machines: another k and the IS predict this net badly.
    assert np.all(e.per_seed["els3"][20]["r"] < 0.9) and np.all(e.per_seed["ideal"][20]["r"] < 0.9)
    s = e.summary
    assert s["n_seeds"] == 4 and s["net_steps"] == [20] and s["machines"] == ["els", "els3", "ideal"]
    assert s["median_r"]["els"]["20"] == pytest.approx(1.0, abs=1e-6)
    assert s["frac_beats_ideal"]["els"] == {"20": 1.0} and set(s["frac_beats_ideal"]) == {"els", "els3"}
    assert e.net[20].dtype == np.float32 and e.machine["els"].shape == e.seeds.shape == (4, 12, 12, 1)
    np.testing.assert_array_equal(e.seeds, calibrate.draw(0, 4, (12, 12, 1))[0])  # the seeds of a calibration


def test_grid_mismatch_is_small_but_real(setup):
    # The same machine as a plain net (20 steps from t = 1) against the machine sampler (19 steps from the seed
    # at t = 0.95): high agreement, but not identity (docs/maths.md §3).
    train, els5 = setup
    e = ev.evaluate(
        denoisers.Denoiser.eps, els5, train=train, machines={"els": MACHINES["els"]}, n_seeds=4, net_steps=(20,)
    )
    r = e.per_seed["els"][20]["r"]
    assert np.all(r > 0.95) and np.all(r < 1 - 1e-6)
    assert e.summary["frac_beats_ideal"] == {} and e.summary["ideal"] is None


def test_machine_samples_equal_the_loop_on_the_machine_grid(setup):
    train, els5 = setup
    seeds = calibrate.draw(3, 2, train.shape[1:])[0]
    out = ev.machine_samples("els", seeds, train=train, scales=[5] * 20)
    direct = sampler.sample_loop(denoisers.Denoiser.eps, els5, jnp.asarray(seeds), noise.time_grid(20, start=19))
    m = ev.agreement({"els": out}, {19: np.asarray(direct)})["els"][19]
    np.testing.assert_allclose(m["r"], 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(m["R2"], 1.0, rtol=0, atol=1e-5)


def test_same_seed_same_summary(setup):
    train, els5 = setup
    labels = np.arange(8) % 2
    run = lambda seed: ev.evaluate(
        denoisers.Denoiser.eps,
        els5,
        train=train,
        labels=labels,
        conditional=True,
        machines={"els": MACHINES["els"]},
        n_seeds=3,
        seed=seed,
        net_steps=(3, 4),
        batch_size=2,
    )
    a, b = run(0), run(0)
    assert json.dumps(a.summary) == json.dumps(b.summary)
    for steps in (3, 4):
        np.testing.assert_array_equal(a.net[steps], b.net[steps])
    np.testing.assert_array_equal(a.machine["els"], b.machine["els"])
    assert a.y.tolist() == [0, 1, 0]
    # Conditional machines use each class's images: the same as sampling with the class labels directly.
    direct = ev.machine_samples("els", a.seeds, train=train, scales=[5] * 20, labels=labels, y=a.y)
    np.testing.assert_array_equal(a.machine["els"], direct)
    assert json.dumps(run(1).summary) != json.dumps(a.summary)


def test_net_samples_in_batches():
    @dataclasses.dataclass(frozen=True)
    class ClassShift:
        def __call__(self, params, x, t, y=None):
            return params * x + 0.1 * y[:, None, None, None]

    seeds = np.random.default_rng(1).normal(size=(5, 6, 6, 1)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    whole = ev.net_samples(ClassShift(), jnp.float32(0.9), seeds, y=y, num_steps=4)
    parts = ev.net_samples(ClassShift(), jnp.float32(0.9), seeds, y=y, num_steps=4, batch_size=2)
    assert whole.dtype == parts.dtype == np.float32 and whole.shape == seeds.shape
    np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        whole, sampler.sample_net(ClassShift(), jnp.float32(0.9), seeds, num_steps=4, y=y), rtol=1e-6
    )


def metric(r, mse=None):
    r = np.asarray(r, np.float64)
    return {"r": r, "r2": r**2, "R2": 2 * r - 1, "mse": np.zeros_like(r) if mse is None else np.asarray(mse, float)}


def test_summarize_hand_made():
    per_seed = {
        "bbels": {20: metric([0.9, 0.5, 0.7, 0.8]), 150: metric([0.2, 0.95, np.nan, 0.6])},
        "ls": {20: metric([0.3, 0.5, 0.1, 0.9]), 150: metric([np.nan] * 4)},
        "ideal": {20: metric([0.4, 0.5, 0.6, 0.7]), 150: metric([0.1, 0.9, 0.3, 0.7])},
    }
    s = ev.summarize(per_seed)
    assert s["n_seeds"] == 4 and s["net_steps"] == [20, 150] and s["ideal"] == "ideal"
    assert s["median_r"]["bbels"] == {"20": pytest.approx(0.75), "150": pytest.approx(0.6)}  # NaN left out
    assert s["median_r"]["ls"]["150"] is None and s["n_undefined"]["ls"] == {"20": 0, "150": 4}
    assert s["median_r2"]["ideal"]["20"] == pytest.approx(np.median(np.array([0.4, 0.5, 0.6, 0.7]) ** 2))
    assert s["median_R2"]["bbels"]["20"] == pytest.approx(0.5)
    # r > r(ideal): a tie (0.5 = 0.5) does not count, nor does an undefined r.
    assert s["frac_beats_ideal"] == {"bbels": {"20": 0.75, "150": 0.5}, "ls": {"20": 0.25, "150": 0.0}}
    assert s["per_seed"]["r"]["bbels"]["150"] == [0.2, 0.95, None, 0.6]
    assert json.loads(json.dumps(s)) == s  # strictly JSON (no NaN)
    assert ev.summarize(per_seed, ideal=None)["frac_beats_ideal"] == {}
    assert ev.summarize({"els": per_seed["bbels"]})["frac_beats_ideal"] == {}


def test_bad_input(setup):
    train, els5 = setup
    x = np.zeros((2, 12, 12, 1), np.float32)
    with pytest.raises(ValueError, match="^net_outputs"):
        ev.agreement({"els": x}, {20: x, 150: x[:1]})
    with pytest.raises(ValueError, match="^machine_outputs"):
        ev.agreement({"els": x[:1]}, {20: x})
    with pytest.raises(ValueError, match="^machine_outputs"):
        ev.agreement({}, {20: x})
    with pytest.raises(ValueError, match="^per_seed"):
        ev.summarize({"a": {20: metric([0.1, 0.2])}, "b": {20: metric([0.1])}})
    with pytest.raises(ValueError, match="^per_seed"):
        ev.summarize({"a": {20: {"r": np.zeros(2)}}})
    with pytest.raises(ValueError, match="^y"):
        ev.net_samples(denoisers.Denoiser.eps, els5, x, y=[0.5, 1], num_steps=2)
    with pytest.raises(ValueError, match="^num_steps"):
        ev.net_samples(denoisers.Denoiser.eps, els5, x, num_steps=0)
    with pytest.raises(ValueError, match="^scales"):
        ev.machine_samples("els", x, train=train, scales=None)
    good = dict(train=train, machines={"els": MACHINES["els"]}, n_seeds=2, net_steps=(2,))
    for change, match in [
        ({"machines": {}}, "machines"),
        ({"machines": {"els": ("foo", [3, 3])}}, "machines"),
        ({"machines": {"els": ("els", None)}}, "machines"),
        ({"machines": {"els": "els"}}, "machines"),
        ({"net_steps": (20, 20)}, "net_steps"),
        ({"net_steps": ()}, "net_steps"),
        ({"conditional": True}, "labels"),
        ({"n_seeds": 0}, "n_seeds"),
        ({"train": train * 3}, "train"),
    ]:
        with pytest.raises(ValueError, match=f"^{match}"):
            ev.evaluate(denoisers.Denoiser.eps, els5, **{**good, **change})
