"""The trained baselines' architectures (docs/maths.md §9.1-9.3): parameter counts, shapes, receptive fields, padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elsjax import nets, noise, sampler
from elsjax.nets import embedding


@pytest.mark.parametrize(
    "arch, channels, num_classes, expected",
    [("resnet", 1, 0, 4_009_473), ("resnet", 3, 10, 4_021_251), ("unet", 1, 0, 2_026_946), ("unet", 3, 10, 2_032_326)],
)
def test_paper_parameter_counts(arch, channels, num_classes, expected):
    _, params = nets.abstract_params(nets.spec(arch, channels=channels, num_classes=num_classes))
    assert nets.param_count(params) == expected


def test_circular_resnet_has_the_same_count():
    _, params = nets.abstract_params(nets.spec("resnet", channels=1, padding="circular"))
    assert nets.param_count(params) == 4_009_473


@pytest.mark.parametrize("arch", ["resnet", "unet"])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_output_shape_and_conditioning(arch, num_classes):
    # width 32: the ResNet's GroupNorm(8) needs several features per group, else it outputs zeros (as in PyTorch)
    spec = nets.spec(arch, channels=3, num_classes=num_classes, width=32, emb_dim=32, num_layers=2)
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    y = jnp.array([1, 2]) if num_classes else None
    out = eps_fn(params, x, jnp.array([0.3, 0.9]), y)
    assert out.shape == x.shape and out.dtype == jnp.float32
    if num_classes:
        assert not np.allclose(out, eps_fn(params, x, jnp.array([0.3, 0.9]), jnp.array([3, 4])))
        with pytest.raises(ValueError, match="y: this network is class-conditional"):
            eps_fn(params, x, jnp.array([0.3, 0.9]), None)


def test_sinusoidal_embedding_uses_unscaled_t():
    t = jnp.array([0.25, 1.0])
    e = embedding.sinusoidal(t, 8)
    freqs = 10000.0 ** (-np.arange(4) / 3)
    np.testing.assert_allclose(
        e, np.concatenate([np.sin(np.outer(t, freqs)), np.cos(np.outer(t, freqs))], 1), rtol=1e-6
    )


def test_pytorch_default_initialisation_bounds():
    _, params = nets.build(nets.spec("resnet", channels=1, width=16, emb_dim=16, num_layers=1), key=jax.random.key(0))
    bound = 1 / np.sqrt(16 * 9)  # a 3x3 conv with 16 input channels
    for leaf in jax.tree.leaves(params["convs"][0]):  # kernel and bias
        assert 0.8 * bound < float(jnp.abs(leaf).max()) <= bound
    _, params = nets.build(
        nets.spec("unet", channels=1, num_classes=10, width=4, emb_dim=64, num_layers=1), key=jax.random.key(0)
    )
    (classes,) = jax.tree.leaves(params["embed"]["classes"])
    assert abs(float(classes.std()) - 1.0) < 0.1  # N(0, 1), as torch.nn.Embedding


def _rf_extent(eps_fn, params, size, centre, key=0):
    """Rows and columns of the input that the output pixel ``centre`` depends on (gradient support)."""
    x = jax.random.normal(jax.random.key(key), (3, size, size, 1))

    def pixel(x):
        return eps_fn(params, x, jnp.full((3,), 0.5), None)[:, centre[0], centre[1], 0].sum()

    support = np.abs(np.asarray(jax.grad(pixel)(x))).sum(axis=(0, 3)) > 0
    rows, cols = np.nonzero(support)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_resnet_receptive_field_is_17():
    spec = nets.spec("resnet", channels=1, width=8, emb_dim=8, num_layers=6)  # the paper's depth, narrow
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    assert _rf_extent(eps_fn, params, 32, (16, 16)) == (17, 17)


def test_unet_receptive_field_covers_the_image():
    spec = nets.spec("unet", channels=1, width=4, emb_dim=8, num_layers=3)
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    assert _rf_extent(eps_fn, params, 32, (16, 16)) == (32, 32)
    assert _rf_extent(eps_fn, params, 64, (32, 32)) == (44, 44)  # docs/maths.md §9.3: the reference's measured extent


def test_circular_resnet_is_translation_equivariant_and_zeros_is_not():
    x = jax.random.normal(jax.random.key(1), (1, 16, 16, 1))
    t = jnp.array([0.5])
    for padding, equivariant in (("circular", True), ("zeros", False)):
        spec = nets.spec("resnet", channels=1, width=8, emb_dim=8, num_layers=2, padding=padding)
        eps_fn, params = nets.build(spec, key=jax.random.key(0))
        shifted = eps_fn(params, jnp.roll(x, (3, 5), (1, 2)), t, None)
        same = np.allclose(shifted, jnp.roll(eps_fn(params, x, t, None), (3, 5), (1, 2)), atol=1e-5)
        assert same == equivariant


@pytest.mark.parametrize(
    "arch, settings, match",
    [("vit", {}, "arch: unknown architecture"), ("resnet", {"padding": "reflect"}, "padding"),
     ("unet", {"padding": "circular"}, "padding"), ("resnet", {"depth": 3}, "unknown setting"),
     ("resnet", {"width": 16, "emb_dim": 8}, "emb_dim"), ("resnet", {"width": 0, "emb_dim": 0}, "emb_dim|width")],
)  # fmt: skip
def test_bad_specs(arch, settings, match):
    with pytest.raises(ValueError, match=match):
        nets.build(nets.spec(arch, channels=1, **settings), key=jax.random.key(0))


def test_equal_specs_share_one_eps_fn():
    spec = nets.spec("unet", channels=1, width=4, emb_dim=8, num_layers=2)
    a, _ = nets.build(spec, key=jax.random.key(0))
    b, _ = nets.build(spec, key=jax.random.key(1))
    assert a == b and hash(a) == hash(b)


def test_sample_net_is_the_shared_loop_on_the_network_grid():
    spec = nets.spec("resnet", channels=1, width=8, emb_dim=8, num_layers=1)
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    seeds = jax.random.normal(jax.random.key(2), (2, 8, 8, 1))
    out = sampler.sample_net(eps_fn, params, seeds, num_steps=5)
    grid = noise.time_grid(5)
    assert grid[0, 0] == 1.0 and grid[-1, 1] == 0.0 and len(grid) == 5  # docs/maths.md §3: n evaluations from t = 1

    x = seeds  # the same DDIM steps written out by hand
    for t, t_prev in grid:
        x = noise.ddim_step(x, eps_fn(params, x, jnp.full((2,), t), None), t, t_prev)
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-5)
