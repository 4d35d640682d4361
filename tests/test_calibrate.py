"""elsjax.calibrate: recovers a known schedule, finds the IS in the bbELS/LS family, determinism, class grouping."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from elsjax import calibrate as cal
from elsjax import denoisers, noise


@dataclasses.dataclass(frozen=True)
class ScheduledMachineNet:
    """A "net" that is a machine whose k changes with t: ``params[i]`` is used where ``edges[i-1] < t <= edges[i]``.

    It follows the sampler's ``eps_fn(params, x, t, y)`` contract (static, hashable, per-image t).
    """

    edges: tuple[float, ...]

    def __call__(self, params, x, t, y=None):
        index = sum((t > e).astype(jnp.int32) for e in self.edges)
        every = jnp.stack([denoisers.Denoiser.eps(m, x, t) for m in params])
        return every[index, jnp.arange(x.shape[0])]


@dataclasses.dataclass(frozen=True)
class ClassMeanNet:
    """A conditional "net" that pretends the clean image is its class's mean: ``eps = (x - a_t params[y]) / b_t``.

    Elementwise, so its output for a seed does not depend on the other seeds of the batch.
    """

    def __call__(self, params, x, t, y=None):
        a, b = noise.signal_noise_std(t)
        return (x - a[:, None, None, None] * params[y]) / b[:, None, None, None]


# k at t = (j + 1) / 10: 3 for t <= 0.3, 7 for 0.4 ... 0.7, 5 for t >= 0.8 (not monotone, so the layout shows).
SCHEDULE_KS, EDGES = (3, 7, 5), (0.35, 0.75)
EXPECTED = [3, 3, 3, 7, 7, 7, 7, 5, 5, 5]
CANDIDATES = [9, 3, 5, 7]  # unsorted on purpose


def random_train(n=8, hw=12, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, hw, hw, 1)).astype(np.float32)


def blob_train(n=8, hw=12, seed=0):
    """A bright centre on a dark ground plus noise: images with a position-dependent mean, as digits have."""
    yy, xx = np.mgrid[:hw, :hw] / (hw - 1)
    blob = np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.05)
    noise = np.random.default_rng(seed).normal(size=(n, hw, hw, 1))
    return np.clip(2 * blob[None, ..., None] - 1 + 0.4 * noise, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def scheduled():
    train = random_train()
    params = tuple(denoisers.build("bbels", train, k) for k in SCHEDULE_KS)
    run = lambda **kw: cal.calibrate(
        ScheduledMachineNet(EDGES), params, kind="bbels", train=train, ks=CANDIDATES, num_steps=10, **kw
    )
    return train, params, run, run(n_seeds=3, seed=0)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_recovers_a_known_schedule(scheduled):
    _, _, _, c = scheduled
    assert c.ks == (3, 5, 7, 9) and c.kind == "bbels" and c.seed == 0 and c.y is None
    np.testing.assert_allclose(c.times, [(j + 1) / 10 for j in range(10)])
    assert c.per_seed.shape == (3, 10) and c.cosine.shape == (3, 10, 4) and c.cosine.dtype == np.float32
    assert c.per_seed.tolist() == [EXPECTED] * 3
    assert c.median == EXPECTED and c.mode == EXPECTED
    # The true machine is the net itself: its cosine is 1 (here bit for bit the same noise estimate).
    true_col = np.searchsorted(c.ks, c.per_seed)
    np.testing.assert_allclose(np.take_along_axis(c.cosine, true_col[..., None], -1), 1.0, atol=1e-6)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_same_seed_same_calibration_bit_for_bit(scheduled):
    _, _, run, c = scheduled
    again = run(n_seeds=3, seed=0)
    for field in c._fields:
        a, b = getattr(c, field), getattr(again, field)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, field
    other = run(n_seeds=3, seed=1)
    assert not np.array_equal(other.cosine, c.cosine)
    assert other.per_seed.tolist() == [EXPECTED] * 3  # the schedule does not depend on the noise


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_batches_and_json_round_trip(scheduled):
    _, _, run, c = scheduled
    batched = run(n_seeds=3, seed=0, batch_size=7)  # 30 states in batches of 7 (the last one padded)
    assert batched.per_seed.tolist() == c.per_seed.tolist()
    np.testing.assert_allclose(batched.cosine, c.cosine, rtol=0, atol=1e-6)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["times"][0] == 0.1 and d["median"] == EXPECTED and d["num_steps"] == 10 and d["n_seeds"] == 3
    back = cal.Calibration.from_dict(d)
    for field in c._fields:
        a, b = getattr(c, field), getattr(back, field)
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b, field
    with pytest.raises(ValueError, match="d:"):
        cal.Calibration.from_dict({"ks": [3]})


def test_one_dictionary_per_k(scheduled, monkeypatch):
    train, params, run, _ = scheduled
    builds = []
    build = denoisers.build
    monkeypatch.setattr(
        denoisers,
        "build",
        lambda kind, images, k, **kw: builds.append((k, len(images))) or build(kind, images, k, **kw),
    )
    calls = []
    run(n_seeds=3, seed=5, progress=lambda *a: calls.append(a))
    assert builds == [(3, 8), (5, 8), (7, 8), (9, 8)]
    assert calls[0] == ("net", 0, 4, 0) and calls[-1] == ("evaluate", 4, 4, 9)
    # Each k reports the end of its build, its compilation and its evaluation, in that order.
    assert [c[0] for c in calls[1:4]] == ["build", "compile", "evaluate"] and len(calls) == 1 + 3 * 4


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_ideal_net_picks_the_largest_k_at_high_t():
    # bbELS grows towards the IS as k grows (bbELS(k >= H) = LS(k), LS(k >= 2H - 1) = IS), so an IS "net" is
    # matched best by the largest candidate at high noise (here at every t >= 0.6). Circular ELS is not in this
    # family: on the same data it prefers small k at high t (as the published circular MNIST schedule does).
    train = blob_train()
    ideal = denoisers.build("ideal", train)
    c = cal.calibrate(
        denoisers.Denoiser.eps, ideal, kind="bbels", train=train, ks=[3, 5, 7, 9, 11], n_seeds=4, num_steps=10
    )
    assert (c.per_seed[:, -5:] == 11).all(), c.per_seed
    assert c.median[-5:] == [11] * 5


def test_ideal_kind_ignores_k():
    train = random_train(n=4, hw=8)
    net = denoisers.build("ls", train, 5)
    c = cal.calibrate(denoisers.Denoiser.eps, net, kind="ideal", train=train, ks=[3, 5], n_seeds=2, num_steps=3)
    np.testing.assert_array_equal(c.cosine[..., 0], c.cosine[..., 1])
    assert c.median == [3, 3, 3]  # a tie: the smallest candidate


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_conditional_grouping_equals_each_class_alone(monkeypatch):
    train = random_train(n=9, hw=10, seed=4)
    labels = np.arange(9) % 3
    means = jnp.asarray(np.stack([train[labels == c].mean(0) for c in range(3)]))
    net, ks = ClassMeanNet(), [3, 5, 7]
    builds = []
    build = denoisers.build
    monkeypatch.setattr(
        denoisers,
        "build",
        lambda kind, images, k, **kw: builds.append((k, len(images))) or build(kind, images, k, **kw),
    )
    grouped = cal.calibrate(
        net, means, kind="bbels", train=train, ks=ks, labels=labels, conditional=True, n_seeds=6, seed=2, num_steps=6
    )
    assert grouped.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert builds == [(3, 3), (5, 3), (7, 3)] * 3  # each class's dictionaries once, with that class's 3 images
    seeds, y = cal.draw(2, 6, train.shape[1:], labels=labels, conditional=True)
    np.testing.assert_array_equal(y, grouped.y)
    for c in range(3):
        index = np.flatnonzero(y == c)
        alone = cal.calibrate_seeds(
            net,
            means,
            seeds[index],
            kind="bbels",
            train=train[labels == c],
            labels=labels[labels == c],
            y=y[index],
            ks=ks,
            num_steps=6,
        )
        np.testing.assert_array_equal(grouped.per_seed[index], alone.per_seed)
        np.testing.assert_allclose(grouped.cosine[index], alone.cosine, rtol=0, atol=1e-6)


def test_lower_median_and_mode():
    per_seed = np.array([[3, 9], [5, 9], [7, 5], [9, 5], [9, 7], [3, 7]])
    assert cal.lower_median(per_seed).tolist() == [5, 7]  # sorted columns 3 3 5 7 9 9 and 5 5 7 7 9 9: 3rd smallest
    assert cal.mode(per_seed).tolist() == [3, 5]  # ties: the smallest
    assert cal.lower_median([[1], [2], [3]]).tolist() == [2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "foo"}, "kind"),
        ({"ks": []}, "ks"),
        ({"ks": [3, 4]}, "ks"),
        ({"ks": [1, 3]}, "ks"),
        ({"ks": [3, 3]}, "ks"),
        ({"ks": [3.0]}, "ks"),
        ({"ks": [True]}, "ks"),
        ({"kind": "els", "ks": [3, 9]}, "ks"),
        ({"train": np.full((4, 8, 8, 1), 2.0, np.float32)}, "train"),
        ({"train": np.zeros((4, 1, 8, 8), np.float32)}, "train"),
        ({"train": np.zeros((8, 8, 1), np.float32)}, "train"),
        ({"conditional": True}, "labels"),
        ({"conditional": True, "labels": np.zeros(3, int)}, "labels"),
        ({"conditional": True, "labels": np.zeros(4, int), "num_classes": 2}, "y"),
        ({"conditional": True, "labels": np.zeros(4, int), "num_classes": 0}, "num_classes"),
        ({"n_seeds": 0}, "n_seeds"),
        ({"num_steps": 0}, "num_steps"),
        ({"seed": -1}, "seed"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input(kwargs, match):
    train = random_train(n=4, hw=8)
    args = {"kind": "bbels", "train": train, "ks": [3, 5], "n_seeds": 2, "num_steps": 2, **kwargs}
    with pytest.raises(ValueError, match=f"^{match}:"):
        cal.calibrate(denoisers.Denoiser.eps, None, **args)


def test_bad_seeds():
    train = random_train(n=4, hw=8)
    with pytest.raises(ValueError, match="^seeds:"):
        cal.calibrate_seeds(denoisers.Denoiser.eps, None, np.zeros((2, 9, 9, 1)), kind="ls", train=train, ks=[3])
    with pytest.raises(ValueError, match="^y:"):
        cal.calibrate_seeds(
            denoisers.Denoiser.eps,
            None,
            np.zeros((2, 8, 8, 1)),
            kind="ls",
            train=train,
            ks=[3],
            labels=np.zeros(4, int),
            y=[0.5, 1],
        )


# ----------------------------------------------------------------------------------------------------------------
# One value of a knob.


@pytest.fixture(scope="module")
def tau_net():
    train = blob_train(n=16, hw=6)
    return train, denoisers.build("pca_locality", train, tau=0.3)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_knob_calibration_recovers_the_nets_tau(tau_net):
    train, net = tau_net
    c = cal.calibrate_knob(denoisers.Denoiser.eps, net, kind="pca_locality", knob="tau", candidates=[0.6, 0.3, 0, 0.1],
                           train=train, n_seeds=3, num_steps=5)  # fmt: skip
    assert c.candidates == (0, 0.1, 0.3, 0.6) and c.best == 0.3 and c.kind == "pca_locality" and c.knob == "tau"
    assert c.per_step == [0.3] * 5 and c.scales is None and c.knobs == {}
    assert c.cosine.shape == (3, 5, 4) and c.cosine.dtype == np.float32
    np.testing.assert_allclose(c.cosine[..., 2], 1.0, atol=1e-5)  # the net itself
    # Another tau is another denoiser here (the mean cosine is below 1), so the choice means something.
    assert max(c.mean_cosine[i] for i in (0, 1, 3)) < 1 - 1e-4
    assert c.mean_cosine[2] == pytest.approx(float(np.mean(c.cosine[..., 2], dtype=np.float64)), abs=1e-6)
    back = cal.KnobCalibration.from_dict(json.loads(json.dumps(c.to_dict())))
    for field in c._fields:
        a, b = getattr(c, field), getattr(back, field)
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b, field
    with pytest.raises(ValueError, match="^d:"):
        cal.KnobCalibration.from_dict(c.to_dict() | {"format": cal.FORMAT})


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_knob_calibration_recovers_the_nets_smoothing():
    # sCFDM with the same key and samples: the candidate equal to the net's smoothing is the net itself.
    train = blob_train(n=10, hw=6)
    fixed = {"samples": 4, "key": 0}
    net = denoisers.build("scfdm", train, smoothing=0.4, **fixed)
    c = cal.calibrate_knob(denoisers.Denoiser.eps, net, kind="scfdm", knob="smoothing", candidates=[0, 0.4, 1.5],
                           knobs=fixed, train=train, n_seeds=2, num_steps=4)  # fmt: skip
    assert c.best == 0.4 and c.knobs == fixed
    np.testing.assert_allclose(c.cosine[..., 1], 1.0, atol=1e-5)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_knob_calibration_at_fixed_scales_builds_once_per_candidate_and_k(monkeypatch):
    # ELS has no numeric knob: a test denoiser with k and a numeric knob (a temperature on ELS's logits' noise).
    import dataclasses

    @denoisers.register("test_tempered_els", replace=True)
    @dataclasses.dataclass(frozen=True)
    class Tempered(denoisers.get("els")):
        knobs = ("scale",)

        @classmethod
        def build(cls, images, k=None, *, scale=1.0, **options):
            if scale <= 0:
                raise ValueError(f"scale: expected a positive number, got {scale}")
            return super().build(images * scale, k, **options)

    try:
        train = random_train(n=6, hw=8) * 0.9
        net = denoisers.build("test_tempered_els", train, 5, scale=0.5)
        builds = []
        build = denoisers.build
        monkeypatch.setattr(denoisers, "build", lambda kind, images, k=None, **kw: builds.append((k, kw.get("scale"), len(images))) or build(kind, images, k, **kw))  # fmt: skip
        c = cal.calibrate_knob(denoisers.Denoiser.eps, net, kind="test_tempered_els", knob="scale",
                               candidates=[0.5, 1.0], k=[3, 5, 5, 5], train=train, n_seeds=2, num_steps=4)  # fmt: skip
        # Two checks on two images, then per candidate one build per distinct k (3 at t = 0.25, 5 above).
        assert builds == [(3, 0.5, 2), (3, 1.0, 2), (5, 0.5, 6), (3, 0.5, 6), (5, 1.0, 6), (3, 1.0, 6)]
        assert c.scales == (3, 5, 5, 5) and c.per_step[1:] == [0.5] * 3 and c.best == 0.5
        np.testing.assert_allclose(c.cosine[:, 1:, 0], 1.0, atol=1e-5)  # the net itself where k = 5
        with pytest.raises(ValueError, match="^scale: expected a positive"):  # the denoiser's own check, first
            cal.calibrate_knob(denoisers.Denoiser.eps, None, kind="test_tempered_els", knob="scale",
                               candidates=[1.0, -1.0], k=3, train=train, n_seeds=2, num_steps=2)  # fmt: skip
    finally:
        denoisers.unregister("test_tempered_els")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"candidates": []}, "candidates: expected at least one value"),
        ({"candidates": [0.1, -0.1]}, "tau: expected a number >= 0"),
        ({"candidates": [0.1, 0.1]}, "candidates: candidates must be distinct"),
        ({"candidates": [0.1, "a"]}, "candidates: expected finite numbers"),
        ({"candidates": [float("nan")]}, "candidates: expected finite numbers"),
        ({"candidates": [True]}, "candidates: expected finite numbers"),
        ({"knob": "sigma"}, "knob: the 'pca_locality' denoiser has no knob 'sigma'"),
        ({"kind": "ls", "knob": "tau"}, "knob: the 'ls' denoiser has no knob 'tau'"),
        ({"k": 5}, "k: the 'pca_locality' denoiser takes no patch size"),
        ({"knobs": {"tau": 0.1}}, "knobs: 'tau' is the knob calibrated"),
        ({"n_seeds": 0}, "n_seeds:"),
        ({"num_steps": 0}, "num_steps:"),
    ],
)
def test_knob_bad_input(kwargs, match):
    def boom(*a):
        raise AssertionError("the net ran before the inputs were checked")

    args = {"kind": "pca_locality", "knob": "tau", "candidates": [0, 0.1], "train": random_train(n=4, hw=6),
            "n_seeds": 2, "num_steps": 2, **kwargs}  # fmt: skip
    with pytest.raises(ValueError, match=f"^{match}"):
        cal.calibrate_knob(boom, None, **args)


# ----------------------------------------------------------------------------------------------------------------
# Resuming: each unit (a class group and a candidate) kept in parts as soon as it is done.


def interrupted_after(store, units: int):
    """``store`` whose ``save`` raises KeyboardInterrupt (as Ctrl-C would) once ``units`` parts are saved."""
    save = store.save

    def saving(*args, **kwargs):
        save(*args, **kwargs)
        if len(store.computed) >= units:
            raise KeyboardInterrupt

    store.save = saving
    return store


def same(a, b) -> bool:
    """Two calibrations whose JSON files would be byte for byte the same."""
    return json.dumps(a.to_dict()) == json.dumps(b.to_dict())


@pytest.fixture(scope="module")
def class_means():
    """A conditional "net" on 6 images of 2 classes, and a calibration of 2 seeds (one per class) over 2 ks."""
    train = random_train(n=6, hw=8, seed=3)
    labels = np.arange(6) % 2
    means = jnp.asarray(np.stack([train[labels == c].mean(0) for c in range(2)]))
    run = lambda store, **kw: cal.calibrate(ClassMeanNet(), means, kind="bbels", labels=labels, conditional=True,
                                            n_seeds=2, parts=store, **{"train": train, "ks": [3, 5], "num_steps": 3,
                                                                       **kw})  # fmt: skip
    return run, run(None)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_an_interrupted_calibration_resumes_to_the_same_result_computing_only_the_missing_units(
    tmp_path, class_means, monkeypatch
):
    from elsjax import parts, scoring

    run, whole = class_means
    notes = []
    store = lambda: parts.Store(tmp_path, {"net": "n"}, log=notes.append)
    first = interrupted_after(store(), 1)
    with pytest.raises(KeyboardInterrupt):
        run(first)
    assert [p.name for p in tmp_path.glob("*.npz")] == first.computed == ["cosine_class0_c00_k3.npz"]

    resumed = store()
    assert same(run(resumed), whole)
    assert resumed.reused == first.computed and len(resumed.computed) == 3  # 2 classes x 2 ks, one saved before
    assert not notes

    # Every unit saved: the net is not even run, and nothing is computed.
    monkeypatch.setattr(scoring, "net_states", lambda *a: pytest.fail("the net ran with every unit saved"))
    done = store()
    assert same(run(done), whole) and done.computed == [] and len(done.reused) == 4


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_parts_of_another_config_are_recomputed_with_a_note(tmp_path, class_means):
    from elsjax import parts

    run, whole = class_means
    run(parts.Store(tmp_path, {"net": "n"}))
    for changed, kwargs, base in (
        ("x1", {"seed": 1}, {"net": "n"}),  # other seeds
        ("num_steps, rows", {"num_steps": 4}, {"net": "n"}),  # other steps
        ("net", {}, {"net": "other"}),  # another net (what the job's tag records)
        ("train", {"train": random_train(n=6, hw=8, seed=4)}, {"net": "n"}),  # other data
    ):
        notes = []
        store = parts.Store(tmp_path, base, log=notes.append)
        assert same(run(store, **kwargs), run(None, **kwargs))
        assert notes == [f"elsjax: note: {tmp_path} holds parts computed from another config (other {changed}): "
                         "recomputing them"], kwargs  # fmt: skip
        assert store.reused == [] and len(store.computed) == 4
        run(parts.Store(tmp_path, {"net": "n"}))  # back to the first config's parts
    # Another candidate list: the parts of the candidates it shares are kept.
    store = parts.Store(tmp_path, {"net": "n"}, log=notes.append)
    assert same(run(store, ks=[3, 7]), run(None, ks=[3, 7]))
    assert store.reused == ["cosine_class0_c00_k3.npz", "cosine_class1_c00_k3.npz"] and len(store.computed) == 2
    assert same(run(parts.Store(tmp_path, {"net": "n"})), whole)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_an_interrupted_knob_calibration_resumes_and_another_candidate_is_recomputed(tmp_path, tau_net):
    from elsjax import parts

    train, net = tau_net
    run = lambda store, values=(0, 0.3): cal.calibrate_knob(
        denoisers.Denoiser.eps, net, kind="pca_locality", knob="tau", candidates=values, train=train, n_seeds=2,
        num_steps=3, parts=store,
    )  # fmt: skip
    whole, notes = run(None), []
    first = interrupted_after(parts.Store(tmp_path, {}, log=notes.append), 1)
    with pytest.raises(KeyboardInterrupt):
        run(first)
    resumed = parts.Store(tmp_path, {}, log=notes.append)
    assert same(run(resumed), whole)
    assert resumed.reused == first.computed == ["cosine_all_c00.npz"] and resumed.computed == ["cosine_all_c01.npz"]
    assert not notes

    other = parts.Store(tmp_path, {}, log=notes.append)  # tau 0.3 -> 0.6 in the second column: recomputed
    assert same(run(other, (0, 0.6)), run(None, (0, 0.6)))
    assert other.reused == ["cosine_all_c00.npz"] and other.computed == ["cosine_all_c01.npz"]
    assert notes == [f"elsjax: note: {tmp_path} holds parts computed from another config (other knobs): "
                     "recomputing them"]  # fmt: skip
