"""Every machine against the authors' PyTorch reference (tests/data/oracle, see its README).

Tolerances are the README's: per case, max|s - s_ref| <= 1e-4 max|s_ref| for t >= 0.2 and 1e-3 for t <= 0.1;
sampler outputs within 5e-3 (pixel units). Each case is also held to the independent float64 evaluation stored
beside it, at the same tolerance, and to 2e-5 for t >= 0.2 (the float32 accuracy the reference itself reaches).
"""

import itertools

import numpy as np
import pytest

import elsjax
from conftest import KIND, relerr

SCORE_FILES = ["scores_toy_c1.npz", "scores_toy_c3.npz", "scores_mnist60.npz"]


def tolerance(t):
    return 1e-4 if t >= 0.2 else 1e-3


def case_groups(ref):
    """Cases grouped by (machine, k, y); within a group the times differ, so one batched call covers them."""
    key = lambda i: (str(ref["case_machine"][i]), int(ref["case_k"][i]), int(ref["case_y"][i]))
    order = sorted(range(len(ref["case_machine"])), key=key)
    return [(k, list(g)) for k, g in itertools.groupby(order, key=key)]


@pytest.mark.parametrize("name", SCORE_FILES)
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_scores_match_reference(oracle, name):
    ref = oracle(name)
    worst = {}
    for (machine, k, y), cases in case_groups(ref):
        got = elsjax.score(
            KIND[machine],
            ref["case_x"][cases],
            ref["case_t"][cases],  # one time per image in the batch
            train=ref["train_images"],
            k=k or None,
            labels=ref["train_labels"],
            y=None if y < 0 else np.full(len(cases), y),
        )
        for i, s in zip(cases, got):
            t = float(ref["case_t"][i])
            err_ref, err_f64 = relerr(s, ref["case_score"][i]), relerr(s, ref["case_score_f64"][i])
            assert err_ref <= tolerance(t), (machine, k, y, t, err_ref)
            assert err_f64 <= tolerance(t), (machine, k, y, t, err_f64)
            if t >= 0.2:
                assert err_f64 <= 2e-5, (machine, k, y, t, err_f64)
            worst[machine] = max(worst.get(machine, 0.0), err_ref)
    print(name, {m: f"{e:.1e}" for m, e in worst.items()})


@pytest.fixture(scope="module")
def runs(oracle):
    return oracle("sampler_mnist60.npz")


@pytest.mark.parametrize("run", range(5))
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sampler_matches_reference(runs, run):
    kind, y = KIND[str(runs["run_machine"][run])], int(runs["run_y"][run])
    out = elsjax.sample(
        kind,
        runs["seed"][None],
        train=runs["train_images"],
        scales=runs["scales"],
        labels=runs["train_labels"],
        y=None if y < 0 else [y],
    )[0]
    assert np.abs(out - runs["run_output"][run]).max() <= 5e-3
    # The output is mu at t = 0.05: a convex combination of training pixels.
    lo, hi = runs["train_images"].min(), runs["train_images"].max()
    assert out.min() >= lo - 1e-5 and out.max() <= hi + 1e-5


@pytest.mark.parametrize("run", range(5))
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sampler_steps_match_reference(runs, run):
    """Each of the 19 evaluations on the reference trajectory, batched per k with one t per image."""
    kind, y = KIND[str(runs["run_machine"][run])], int(runs["run_y"][run])
    for k in np.unique(runs["traj_k"]):
        steps = np.flatnonzero(runs["traj_k"] == k)
        got = elsjax.score(
            kind,
            runs["run_traj_x"][run, steps],
            runs["traj_t"][steps],
            train=runs["train_images"],
            k=None if kind == "ideal" else int(k),
            labels=runs["train_labels"],
            y=None if y < 0 else np.full(len(steps), y),
        )
        for j, s in zip(steps, got):
            t = float(runs["traj_t"][j])
            assert relerr(s, runs["run_traj_score"][run, j]) <= tolerance(t), (kind, y, t, k)
            assert relerr(s, runs["run_traj_score_f64"][run, j]) <= tolerance(t), (kind, y, t, k)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_sampler_structure(runs):
    """19 evaluations at t = 0.95 ... 0.05 with k = scales[19] ... scales[1]; the trajectory follows the reference."""
    grid, ks = elsjax.sampler.machine_steps(runs["scales"])
    np.testing.assert_array_equal(grid[:, 0], runs["traj_t"])
    np.testing.assert_array_equal(ks, runs["traj_k"])
    _, corrected = elsjax.sampler.machine_steps(runs["scales"], "corrected")
    np.testing.assert_array_equal(corrected, runs["scales"][np.arange(18, -1, -1)])
    out, traj = elsjax.sampler.machine_trajectory("els", runs["seed"][None], runs["train_images"], runs["scales"])
    assert traj.shape == (19, 1, 32, 32, 1)
    np.testing.assert_allclose(traj[:, 0], runs["run_traj_x"][1], atol=5e-3)
    np.testing.assert_allclose(out[0], runs["run_output"][1], atol=5e-3)
