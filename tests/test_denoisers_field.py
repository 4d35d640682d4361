"""The field's training-free denoisers (docs/maths.md §12) against float64 brute forces, and the equivalences
between them and the machines, on small data: smooth random images, 40 of 12x12x1 and 24 of 8x8x3, at several t.

Errors are the largest absolute difference of the posterior mean over the largest absolute value of the brute
force's. The float32 round-off they show grows at small t, where logits reach 1e4 (docs/maths.md §5.6). Run with
``-s`` to see the tables the tests print.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import brute_force  # noqa: E402
import brute_force_field as bf  # noqa: E402

import elsjax  # noqa: E402
from elsjax import denoisers, metrics, nets, noise, sampler  # noqa: E402
from elsjax.denoisers import _field  # noqa: E402

T = np.array([0.05, 0.3, 0.6, 0.95], np.float32)
SHAPES = {"12x12x1": (40, 12, 1), "8x8x3": (24, 8, 3)}
# float32 round-off of the posterior mean, relative to its largest value: the logits of IS-like posteriors at
# t = 0.05 on these images reach ~1e4, where float32 leaves ~1e-3 in a logit and ~1e-4 in a weight.
TOL = {0.05: 3e-4, 0.3: 5e-5, 0.6: 5e-5, 0.95: 5e-5}


def smooth_images(n, h, c, seed):
    """Random fields with a correlation length of about 1.5 pixels (circular), squashed into (-1, 1)."""
    raw = np.random.default_rng(seed).normal(size=(n, h, h, c))
    f = np.fft.fftfreq(h)
    gain = np.exp(-(f[:, None] ** 2 + f[None, :] ** 2) * (2 * np.pi * 1.5) ** 2 / 2)
    smooth = np.real(np.fft.ifft2(np.fft.fft2(raw, axes=(1, 2)) * gain[None, :, :, None], axes=(1, 2)))
    return np.tanh(1.2 * smooth / smooth.std()).astype(np.float32)


def noisy(x0, t, seed):
    """``a_t x0 + b_t eps`` per image, each at its own t (float32)."""
    t = np.broadcast_to(np.asarray(t, np.float64), (len(x0),))
    a, b = (np.array(v)[:, None, None, None] for v in zip(*map(brute_force.schedule_ab, t)))
    return (a * x0 + b * np.random.default_rng(seed).normal(size=x0.shape)).astype(np.float32)


def data(shape="12x12x1"):
    n, h, c = SHAPES[shape]
    train = smooth_images(n, h, c, 0)
    return train, noisy(smooth_images(len(T), h, c, 1), T, 2)


def rel_err(got, want):
    return float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())


def check_against(machine, brute, train, x, label):
    """Compares ``machine.denoise`` at every t of T (one image each) with ``brute(x_i, t_i)``; prints the errors."""
    got = np.asarray(machine.denoise(x, T))
    errors = [rel_err(got[i], brute(x[i], float(T[i]))) for i in range(len(T))]
    print(f"\n{label}: max relative error per t {dict(zip(T.tolist(), [f'{e:.1e}' for e in errors]))}")
    for t, e in zip(T.tolist(), errors):
        assert e < TOL[round(t, 2)], (label, t, e)
    return errors


# ------------------------------------------------------------------------------------------------------------------
# Each denoiser against its float64 brute force.


@pytest.mark.parametrize("shape", SHAPES)
def test_wiener_matches_brute_force(shape):
    train, x = data(shape)
    check_against(
        denoisers.build("wiener", train), lambda xi, t: bf.wiener_mean(xi, t, train), train, x, f"wiener {shape}"
    )


@pytest.mark.parametrize(
    "shape, tau, scope",
    [("12x12x1", 0.05, "matrix"), ("12x12x1", 0.1, "matrix"), ("8x8x3", 0.02, "matrix"), ("12x12x1", 0.25, "row")],
)
def test_pca_locality_matches_brute_force(shape, tau, scope):
    train, x = data(shape)
    margins = [bf.pca_mask(float(t), train, tau, scope)[1] for t in T]
    # No mask entry within float32 reach of the threshold, else the comparison would test rounding, not the maths.
    assert min(margins) > 1e-5, margins
    machine = denoisers.build("pca_locality", train, tau=tau, scope=scope)
    masks = np.asarray(machine.masks(jnp.asarray(T)))
    for t, mask in zip(T, masks):
        np.testing.assert_array_equal(mask, bf.pca_mask(float(t), train, tau, scope)[0])
    kept = masks.mean(axis=(1, 2))
    assert 0.0 < kept.min() and kept.max() < 1.0  # the masks are local, not trivial
    label = f"pca_locality {shape} tau={tau} scope={scope}"
    print(f"\n{label}: fraction of mask entries kept per t {kept.round(3).tolist()}")
    check_against(machine, lambda xi, t: bf.pca_locality_mean(xi, t, train, tau, scope), train, x, label)


@pytest.mark.parametrize("shape", SHAPES)
def test_nearest_matches_brute_force(shape):
    train, x = data(shape)
    got = np.asarray(denoisers.build("nearest", train).denoise(x, T))
    for i, t in enumerate(T):
        np.testing.assert_array_equal(got[i], bf.nearest_mean(x[i], t, train))  # a training image, bit for bit


def test_scfdm_matches_brute_force_with_its_draws():
    train, x = data("8x8x3")
    machine = denoisers.build("scfdm", train, smoothing=0.3, samples=8, key=jax.random.key(3))
    draws = np.asarray(machine.perturbations)
    assert draws.shape == (8, 8, 8, 3)
    check_against(machine, lambda xi, t: bf.scfdm_mean(xi, t, train, 0.3, draws), train, x, "scfdm 8x8x3 sigma=0.3")
    again = denoisers.build("scfdm", train, smoothing=0.3, samples=8, key=jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(again.denoise(x, T)), np.asarray(machine.denoise(x, T)))  # keyed


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_scfdm_monte_carlo_error_falls_as_one_over_sqrt_samples():
    """The estimate's error against a 4096-draw float64 reference, over 8 keys: RMS error ~ 1/sqrt(samples)."""
    train, x = data("12x12x1")
    t, sigma = 0.3, 0.5
    xi = x[1:2]
    ref_draws = np.random.default_rng(7).normal(size=(4096,) + xi.shape[1:])
    reference = bf.scfdm_mean(xi[0], t, train, sigma, ref_draws)
    spread = np.abs(reference - train.mean(axis=0)).max()
    rms = {}
    for samples in (4, 16, 64):
        errors = [
            np.abs(
                np.asarray(denoisers.build("scfdm", train, smoothing=sigma, samples=samples, key=key).denoise(xi, t))[0]
                - reference
            ).max()  # fmt: skip
            for key in range(8)
        ]
        rms[samples] = float(np.sqrt(np.mean(np.square(errors))) / spread)
    print(f"\nscfdm Monte Carlo error (max over pixels, RMS over 8 keys, / max|mu - mean|) by samples: {rms}")
    assert rms[64] < rms[16] < rms[4]
    assert 2.5 < rms[4] / rms[64] < 6.5  # 1 / sqrt(samples): a factor 4 from 4 to 64 draws


@pytest.mark.parametrize("shape, k", [("12x12x1", 3), ("12x12x1", 6), ("8x8x3", 4)])
def test_pspc_matches_brute_force(shape, k):
    train, x = data(shape)
    check_against(denoisers.build("pspc", train, k), lambda xi, t: bf.pspc_mean(xi, t, train, k), train, x, f"pspc {shape} k={k}")  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
def test_els_circular_data_padding_matches_brute_force(shape):
    train, x = data(shape)
    machine = denoisers.build("els", train, 3, data_padding="circular")
    assert machine.data_padding == "circular" and machine.tables[0].keys.shape[-2] >= 1
    check_against(machine, lambda xi, t: bf.els_circular_mean(xi, t, train, 3), train, x, f"els circular {shape}")
    valid = np.asarray(denoisers.build("els", train, 3).denoise(x, T))
    circ = np.asarray(machine.denoise(x, T))
    print(f"els {shape}: circular vs valid data padding, max relative difference {rel_err(circ, valid):.3f}")
    assert rel_err(circ, valid) > 1e-3  # the two conventions differ


def test_golddiff_matches_brute_force_of_its_definition():
    train, x = data("12x12x1")
    machine = denoisers.build("golddiff", train, subset=8, tail=6, pool=4, key=jax.random.key(1))
    draws = np.asarray(machine.draws)
    check_against(machine, lambda xi, t: bf.golddiff_mean(xi, t, train, 8, 6, 4, draws), train, x, "golddiff subset=8 tail=6")  # fmt: skip
    exact = denoisers.build("golddiff", train, subset=len(train), pool=2)  # the whole set: IS, no key needed
    check_against(exact, lambda xi, t: bf.ideal_mean(xi, t, train), train, x, "golddiff subset=N")
    timed = denoisers.build("golddiff", train, subset=8, tail=6, pool=4, key=jax.random.key(1), exact_above=0.5)
    got = np.asarray(timed.denoise(x, T))
    for i, t in enumerate(T):  # one time per call: above 0.5 the whole set, exactly
        want = bf.ideal_mean(x[i], t, train) if t > 0.5 else bf.golddiff_mean(x[i], t, train, 8, 6, 4, draws)
        assert rel_err(np.asarray(timed.denoise(x[i : i + 1], t))[0], want) < TOL[round(float(t), 2)]
    assert rel_err(got, np.asarray(exact.denoise(x, T))) < 1e-4  # a batch with any t above 0.5: all exact


# ------------------------------------------------------------------------------------------------------------------
# Equivalences.


def test_ls_at_2h_minus_1_equals_is():
    train, x = data("12x12x1")
    ls = denoisers.build("ls", train, 23)
    errors = check_against(ls, lambda xi, t: bf.ideal_mean(xi, t, train), train, x, "ls k=2H-1 vs IS brute force")
    ideal = np.asarray(denoisers.build("ideal", train).denoise(x, T))
    print(f"ls k=2H-1 vs ideal (float32 both): {rel_err(np.asarray(ls.denoise(x, T)), ideal):.1e}; {errors}")


@pytest.mark.parametrize("shape", SHAPES)
def test_pca_locality_with_tau_0_equals_is(shape):
    train, x = data(shape)
    machine = denoisers.build("pca_locality", train, tau=0.0)
    assert (np.asarray(denoisers.pca_locality.masks(machine.eigenvalues, machine.eigenvectors, machine.varying, 0.0, jnp.asarray(T))) == 1).all()  # fmt: skip
    check_against(machine, lambda xi, t: bf.ideal_mean(xi, t, train), train, x, f"pca_locality tau=0 vs IS {shape}")


def test_pspc_with_the_whole_image_as_crop_equals_is():
    train, x = data("8x8x3")
    check_against(
        denoisers.build("pspc", train, 8), lambda xi, t: bf.ideal_mean(xi, t, train), train, x, "pspc k=H vs IS"
    )


def test_scfdm_with_zero_smoothing_equals_is():
    train, x = data("8x8x3")
    machine = denoisers.build("scfdm", train, smoothing=0.0)  # exact: no key needed
    got, ideal = np.asarray(machine.denoise(x, T)), np.asarray(denoisers.build("ideal", train).denoise(x, T))
    np.testing.assert_array_equal(got, ideal)
    check_against(machine, lambda xi, t: bf.ideal_mean(xi, t, train), train, x, "scfdm sigma=0 vs IS")


def test_nearest_equals_is_as_t_goes_to_0():
    train, _ = data("12x12x1")
    x0 = smooth_images(6, 12, 1, 5)
    nearest, ideal = denoisers.build("nearest", train), denoisers.build("ideal", train)
    gaps = {}
    for t in (0.5, 0.2, 0.05, 0.01, 1e-3):
        x = noisy(x0, t, 6)
        gaps[t] = rel_err(np.asarray(ideal.denoise(x, t)), np.asarray(nearest.denoise(x, t)))
    print(f"\nnearest vs IS, max relative difference by t: { {t: f'{g:.1e}' for t, g in gaps.items()} }")
    assert gaps[1e-3] == 0.0 and gaps[0.01] < 1e-6 < gaps[0.5]


def test_wiener_converges_to_the_gaussian_posterior_mean_as_n_grows():
    """Training images drawn from a known Gaussian: the fitted Wiener filter's posterior mean tends to the exact one
    (the Gaussian's own), the error falling about as 1/sqrt(N)."""
    rng = np.random.default_rng(0)
    h = 6
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(h), indexing="ij"), -1).reshape(-1, 2)
    dist2 = np.sum((grid[:, None] - grid[None]) ** 2, axis=-1)
    cov = 0.02 * np.exp(-dist2 / (2 * 1.5**2)) + 1e-3 * np.eye(h * h)
    mu = 0.1 * np.sin(np.arange(h * h) / 5.0)
    chol = np.linalg.cholesky(cov)
    x0 = (mu + rng.normal(size=(4, h * h)) @ chol.T).reshape(4, h, h, 1)
    t = np.array([0.2, 0.4, 0.6, 0.8], np.float32)
    x = noisy(x0, t, 1)
    exact = np.stack([bf.gaussian_mean(x[i], float(t[i]), mu, cov) for i in range(4)])
    errors = {}
    for n in (50, 200, 1000, 5000, 20000):
        train = np.clip(mu + rng.normal(size=(n, h * h)) @ chol.T, -1, 1).reshape(n, h, h, 1).astype(np.float32)
        errors[n] = rel_err(np.asarray(denoisers.build("wiener", train).denoise(x, t)), exact)
    print(f"\nwiener vs the exact Gaussian posterior mean, by N: { {n: f'{e:.1e}' for n, e in errors.items()} }")
    values = list(errors.values())
    assert all(a > b for a, b in zip(values, values[1:]))
    assert errors[20000] < 0.02 and errors[50] / errors[20000] > 8  # sqrt(400) = 20, within sampling noise


def test_at_large_noise_ls_els_and_pca_locality_approach_wiener():
    """How far each posterior mean is from the Wiener filter's, relative to the Wiener estimate's own distance from
    the training mean, ||mu - mu_W|| / ||mu_W - mean|| (median over 4 images), as t -> 1.

    Measured on the 40 12x12x1 images: IS, LS at k = 2H - 1 and PCA-locality (tau = 0.02) reach 0.03 at t = 1
    (IS's softmax is the Wiener filter to first order in a/b^2, with the maximum-likelihood covariance); PCA at
    tau = 0.1 stays at 0.10 (its masks drop correlations). LS at k = 3 / 7 stay at about 0.78 / 0.56 and ELS moves
    away (4.8 at k = 3): they tend to a local (banded) filter, ELS to the mean of all patch centres rather than the
    per-pixel mean, not to the full-covariance Wiener filter of 40 images.
    """
    train, _ = data("12x12x1")
    x0 = smooth_images(4, 12, 1, 9)
    mean = train.mean(axis=0)
    wiener = denoisers.build("wiener", train)
    machines = {
        "ideal": denoisers.build("ideal", train), "ls k=23": denoisers.build("ls", train, 23),
        "ls k=3": denoisers.build("ls", train, 3), "ls k=7": denoisers.build("ls", train, 7),
        "els k=3": denoisers.build("els", train, 3), "els k=7": denoisers.build("els", train, 7),
        "pca tau=0.02": denoisers.build("pca_locality", train, tau=0.02),
        "pca tau=0.1": denoisers.build("pca_locality", train, tau=0.1),
    }  # fmt: skip
    table = {}
    for t in (0.8, 0.9, 0.95, 0.99, 1.0):
        x = noisy(x0, t, 10)
        w = np.asarray(wiener.denoise(x, t))
        scale = np.linalg.norm((w - mean).reshape(4, -1), axis=1)
        for name, m in machines.items():
            gap = np.linalg.norm((np.asarray(m.denoise(x, t)) - w).reshape(4, -1), axis=1) / scale
            table.setdefault(name, {})[t] = float(np.median(gap))
    print("\n||mu - mu_W|| / ||mu_W - mean|| by t:")
    for name, row in table.items():
        print(f"  {name:13s} " + "  ".join(f"t={t}: {v:.3f}" for t, v in row.items()))
    for name in ("ideal", "ls k=23", "pca tau=0.02"):
        assert table[name][1.0] < 0.05 and table[name][1.0] < table[name][0.9] < table[name][0.8]
    assert table["pca tau=0.1"][1.0] < 0.2


# ------------------------------------------------------------------------------------------------------------------
# Through the entry points.

NEW = {
    "wiener": {},
    "pca_locality": {"tau": 0.05},
    "nearest": {},
    "scfdm": {"smoothing": 0.2, "samples": 4, "key": 0},
    "pspc": {"k": 3},
    "golddiff": {"subset": 6, "tail": 4, "key": 0},
    "els": {"k": 3, "data_padding": "circular"},
}


@pytest.mark.parametrize("name", NEW)
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_score_and_sample_through_the_entry_points(name):
    train, x = data("8x8x3")
    train, x = train[:12], x[:2]
    knobs = dict(NEW[name])
    k = knobs.pop("k", None)
    t = T[1:3]
    got = np.asarray(elsjax.score(name, x, t, train=train, k=k, **knobs))
    machine = denoisers.build(name, train, k, **knobs)
    np.testing.assert_allclose(got, np.asarray(machine.score(x, t)), rtol=1e-6, atol=1e-6)
    a, b = noise.signal_noise_std(jnp.asarray(t))
    mu = np.asarray(machine.denoise(x, t))
    np.testing.assert_allclose(got, -(x - a[:, None, None, None] * mu) / (b * b)[:, None, None, None], rtol=1e-5, atol=1e-4)  # fmt: skip
    scales = [k or 3] * 4
    out = np.asarray(elsjax.sample(name, x, train=train, scales=scales, **knobs))
    assert out.shape == x.shape and np.isfinite(out).all()
    assert out.min() >= train.min() and out.max() <= train.max()


def test_class_conditional_wiener_is_each_class_s_wiener():
    train, x = data("8x8x3")
    labels = np.arange(len(train)) % 2
    y = np.array([1, 0, 1, 0])
    got = np.asarray(elsjax.score("wiener", x, T, train=train, labels=labels, y=y))
    for c in (0, 1):
        want = np.asarray(denoisers.build("wiener", train[labels == c]).score(x[y == c], T[y == c]))
        np.testing.assert_allclose(got[y == c], want, rtol=1e-6, atol=1e-6)


def test_the_gaussian_fit_is_cached_per_training_set():
    train, _ = data("8x8x3")
    assert _field.gaussian_fit(train) is _field.gaussian_fit(train.copy())
    assert _field.gaussian_fit(train[1:]) is not _field.gaussian_fit(train)


def test_provenance_of_pca_locality_and_nearest():
    train, x = data("12x12x1")
    machine = denoisers.build("pca_locality", train, tau=0.05)
    post = machine.posterior(x, T, top=3)
    np.testing.assert_allclose(np.asarray(post.mean), np.asarray(machine.denoise(x, T)), rtol=1e-4, atol=1e-5)
    assert post.weight.shape == (len(T), 12, 12, 3) and (np.diff(np.asarray(post.weight), axis=-1) <= 0).all()
    p = elsjax.explain("pca_locality", train[4:5], 1e-3, train=train, top=2)
    assert (p.image[0, :, :, 0] == 4).all() and np.allclose(p.weight[0, :, :, 0], 1.0)
    assert (p.position[0, 3, 5, 0] == [3, 5]).all()
    n = elsjax.explain("nearest", 0.9 * train[7:8] + 0.01, 0.5, train=train, top=3)
    assert (n.image[0, :, :, 0] == 7).all() and (n.weight[0, :, :, 0] == 1).all() and (n.weight[0, :, :, 1:] == 0).all()
    assert (n.entropy == 0).all() and np.array_equal(n.mean[0], train[7])
    with pytest.raises(ValueError, match="'wiener' has no provenance"):
        elsjax.explain("wiener", x, 0.5, train=train)
    with pytest.raises(ValueError, match="provenance needs one channel"):
        color, xc = data("8x8x3")
        denoisers.build("pca_locality", color).posterior(xc, T, top=2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda tr: denoisers.build("pca_locality", tr, tau=-0.1), r"^tau: expected a number >= 0, got -0.1$"),
        (lambda tr: denoisers.build("pca_locality", tr, tau=float("nan")), r"^tau: expected a number >= 0"),
        (
            lambda tr: denoisers.build("pca_locality", tr, scope="column"),
            r"^scope: expected one of \('matrix', 'row'\)",
        ),  # fmt: skip
        (
            lambda tr: denoisers.build("pspc", tr, 13),
            r"^k: PSPC needs an integer crop size 1 <= k <= min\(H, W\) = 12, got 13$",
        ),  # fmt: skip
        (lambda tr: denoisers.build("pspc", tr, 0), r"^k: PSPC needs an integer crop size"),
        (lambda tr: denoisers.build("pspc", tr), r"^k: the 'pspc' denoiser needs a crop size k"),
        (
            lambda tr: denoisers.build("scfdm", tr, smoothing=0.5),
            r"^key: the 'scfdm' denoiser with smoothing > 0 is a Monte Carlo estimate; pass key=",
        ),  # fmt: skip
        (lambda tr: denoisers.build("scfdm", tr, smoothing=-1.0), r"^smoothing: expected a number >= 0"),
        (
            lambda tr: denoisers.build("scfdm", tr, smoothing=0.5, samples=0, key=0),
            r"^samples: expected an integer >= 1",
        ),  # fmt: skip
        (lambda tr: denoisers.build("golddiff", tr, subset=4), r"^key: the 'golddiff' denoiser draws a random tail"),
        (lambda tr: denoisers.build("golddiff", tr, pool=5, key=0), r"^pool: must divide the image height and width"),
        (
            lambda tr: denoisers.build("golddiff", tr, key=0, exact_above=2.0),
            r"^exact_above: expected a time in \[0, 1\]",
        ),  # fmt: skip
        (
            lambda tr: denoisers.build("els", tr, 3, data_padding="reflect"),
            r"^data_padding: expected one of \('valid', 'circular'\), got 'reflect'$",
        ),  # fmt: skip
        (
            lambda tr: denoisers.build("wiener", tr, mesh=elsjax.make_mesh(seeds=1, entries=1)),
            r"^mesh: the 'wiener' denoiser runs on one device",
        ),  # fmt: skip
        (lambda tr: denoisers.build("wiener", tr, tau=0.1), r"^tau: the 'wiener' denoiser has no such knob"),
        (lambda tr: elsjax.score("pca_locality", tr[:1], 0.5, train=tr, tau=-1), r"^tau: expected a number >= 0"),
    ],
)
def test_bad_knobs_give_a_one_line_value_error(call, message):
    train, _ = data("12x12x1")
    with pytest.raises(ValueError, match=message) as err:
        call(train)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------------------------
# The EDM parameterisation, the Heun sampler, and the studio's R^2.


def test_sigma_is_b_over_a_and_time_of_sigma_inverts_it():
    t = jnp.asarray([1e-3, 0.05, 0.5, 0.95, 1.0])
    a, b = noise.signal_noise_std(t)
    np.testing.assert_allclose(sampler.sigma_of_time(t), b / a, rtol=1e-6)
    np.testing.assert_allclose(sampler.time_of_sigma(sampler.sigma_of_time(t)), t, rtol=2e-6)
    assert abs(sampler.SIGMA_MAX - float(sampler.sigma_of_time(1.0))) < 1e-3 * sampler.SIGMA_MAX
    sigmas = sampler.karras_sigmas(5)
    assert sigmas[0] == np.float32(80.0) and sigmas[-1] == 0 and (np.diff(sigmas) < 0).all()
    with pytest.raises(ValueError, match="sigma_max"):
        sampler.karras_sigmas(5, sigma_max=100.0)


def test_heun_converges_to_the_exact_flow_of_a_gaussian_at_second_order():
    """For the Wiener denoiser of training set (mean mu, covariance U diag(l) U^T), the probability-flow ODE has the
    solution x~(0) = mu + U diag(sqrt(l / (l + sigma_max^2))) U^T (x~(sigma_max) - mu). Heun's error falls ~4x per
    doubling of steps, Euler's ~2x."""
    h = 4
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(h * h, h * h)))[0]
    cov = basis @ np.diag(np.geomspace(0.05, 0.004, h * h)) @ basis.T
    train = (rng.normal(size=(4000, h * h)) @ np.linalg.cholesky(cov).T).reshape(-1, h, h, 1).clip(-1, 1)
    train = train.astype(np.float32)
    fit = _field.gaussian_fit(train)
    machine = denoisers.build("wiener", train)
    seeds = rng.normal(size=(3, h, h, 1)).astype(np.float32)
    sigma_max = 20.0
    start = (sigma_max * seeds).reshape(3, -1) - fit.mean
    gain = np.sqrt(fit.eigenvalues / (fit.eigenvalues + sigma_max**2))
    exact = fit.mean + (start @ fit.eigenvectors) * gain @ fit.eigenvectors.T
    errors = {}
    for method in ("heun", "euler"):
        for n in (8, 16, 32):
            sigmas = sampler.karras_sigmas(n, sigma_min=0.02, sigma_max=sigma_max)
            got = np.asarray(sampler.sample_edm(denoisers.Denoiser.eps, machine, seeds, sigmas, method=method)).reshape(
                3, -1
            )
            errors[method, n] = float(np.abs(got - exact).max() / np.abs(exact).max())
    print(f"\nEDM sampler vs the exact Gaussian flow: { {k: f'{v:.1e}' for k, v in errors.items()} }")
    assert errors["heun", 16] / errors["heun", 32] > 3.0 and errors["euler", 16] / errors["euler", 32] < 2.6
    assert errors["heun", 32] < errors["euler", 32] / 10


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_edm_sampling_takes_a_net_and_any_denoiser():
    train, x = data("8x8x3")
    spec = nets.spec(arch="resnet", channels=3, width=8, num_layers=1, emb_dim=8)
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    sigmas = sampler.karras_sigmas(3)
    assert sampler.sample_edm(eps_fn, params, x[:2], sigmas).shape == (2, 8, 8, 3)
    out = sampler.sample_edm(denoisers.Denoiser.eps, denoisers.build("nearest", train), x[:2], sigmas)
    assert np.isfinite(np.asarray(out)).all()
    with pytest.raises(ValueError, match="method: expected one of"):
        sampler.sample_edm(eps_fn, params, x[:2], sigmas, method="rk4")


def test_studio_r2_uses_the_unbiased_variance_and_works_per_step():
    rng = np.random.default_rng(0)
    target, pred = rng.normal(size=(2, 3, 4, 4, 1)), rng.normal(size=(2, 3, 4, 4, 1))
    d = 16
    want = 1 - np.sum((target - pred) ** 2, axis=(2, 3, 4)) / (d * np.var(target.reshape(2, 3, -1), axis=-1, ddof=1))
    got = metrics.per_step(metrics.studio_r2, pred, target)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    r2 = metrics.per_step(metrics.determination, pred, target)
    np.testing.assert_allclose(got, 1 - (1 - r2) * (d - 1) / d, rtol=1e-12)
    assert np.isnan(metrics.studio_r2(pred[0], np.ones_like(target[0]))).all()
