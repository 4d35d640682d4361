"""The trained baselines' architectures (docs/maths.md §9.1-9.3): parameter counts, shapes, receptive fields, padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elsjax import nets, noise, sampler
from elsjax.nets import embedding, unet_sa


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
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
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


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
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


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_resnet_receptive_field_is_17():
    spec = nets.spec("resnet", channels=1, width=8, emb_dim=8, num_layers=6)  # the paper's depth, narrow
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    assert _rf_extent(eps_fn, params, 32, (16, 16)) == (17, 17)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
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
     ("unet", {"padding": "circular"}, "padding"), ("unet_sa", {"padding": "circular"}, "padding"),
     ("unet_sa", {"width": 7}, "width: the UNet\\+SA needs an even width"), ("resnet", {"depth": 3}, "unknown setting"),
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


# ----------------------------------------------------------------------------------------------------------------
# The UNet with self-attention (docs/maths.md §9.5).


def unet_sa_count(channels: int, num_classes: int, w: int = 64) -> int:
    """The parameters of minimal-diffusion's ``UNet(32, C, C, num_classes)`` (base width w = 64), counted by hand
    from its module definitions: ``UNetModel(model_channels=64, num_res_blocks=3, channel_mult=(1, 2, 2, 2),
    attention_resolutions=(1, 2, 4), use_scale_shift_norm=True, resblock_updown=True)``, time embedding width 4w."""
    e = 4 * w

    def conv(i, o, k=3):  # weight and bias
        return i * o * k * k + o

    def linear(i, o):
        return i * o + o

    def norm(c):  # GroupNorm(32, c): scale and shift
        return 2 * c

    def res(i, o):  # in_layers (GN, SiLU, conv), emb_layers (SiLU, Linear(e, 2o)), out_layers (GN, ..., conv), skip
        return norm(i) + conv(i, o) + linear(e, 2 * o) + norm(o) + conv(o, o) + (0 if i == o else conv(i, o, 1))

    def attn(c):  # norm, qkv = Conv1d(c, 3c, 1), proj_out = Conv1d(c, c, 1)
        return norm(c) + linear(c, 3 * c) + linear(c, c)

    a, b = w, 2 * w  # level channels 64, 128, 128, 128
    n = linear(w, e) + linear(e, e) + num_classes * e  # time_embed (Linear, SiLU, Linear), label_emb
    n += conv(channels, a)  # input_blocks[0]
    n += 3 * (res(a, a) + attn(a)) + res(a, a)  # level 0 (32 px): 3 x (res + attention), down-sampling res
    n += res(a, b) + attn(b) + 2 * (res(b, b) + attn(b)) + res(b, b)  # level 1 (16 px)
    n += 3 * (res(b, b) + attn(b)) + res(b, b)  # level 2 (8 px)
    n += 3 * res(b, b)  # level 3 (4 px): no attention, no down-sampling
    n += res(b, b) + attn(b) + res(b, b)  # middle block
    # output_blocks: 4 per level, each concatenating one skip (input_block_chans popped from the end)
    n += 4 * res(2 * b, b) + res(b, b)  # level 3: skips 128 x 4; up-sampling res
    n += 4 * (res(2 * b, b) + attn(b)) + res(b, b)  # level 2
    n += 3 * (res(2 * b, b) + attn(b)) + res(b + a, b) + attn(b) + res(b, b)  # level 1: the last skip has 64
    n += res(b + a, a) + attn(a) + 3 * (res(2 * a, a) + attn(a))  # level 0
    return n + norm(a) + conv(a, channels)  # out: GN, SiLU, conv


@pytest.mark.parametrize("channels, num_classes", [(3, 10), (1, 0)])
@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_unet_sa_parameter_count_is_the_papers_layout(channels, num_classes):
    _, params = nets.abstract_params(nets.spec("unet_sa", channels=channels, num_classes=num_classes))
    assert nets.param_count(params) == unet_sa_count(channels, num_classes)
    # (Also equal to torch's count of minimal-diffusion's UNet(32, 3, 3, num_classes=10), 14,419,651, checked outside
    # the repository, where its outputs agreed with this net's to 1e-7 given the same weights.)
    assert unet_sa_count(3, 10) == 14_419_651


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_unet_sa_spec_defaults_follow_the_width():
    spec = nets.spec("unet_sa", channels=1, width=16)
    assert (spec["width"], spec["num_layers"], spec["emb_dim"]) == (16, 4, 64)  # the layout's E = 4 width
    assert nets.spec("unet_sa", channels=1)["emb_dim"] == 256
    _, params = nets.abstract_params(nets.spec("unet_sa", channels=1, num_classes=10, width=16))
    assert nets.param_count(params) == unet_sa_count(1, 10, w=16)  # every width scales with `width`


def test_unet_sa_timestep_embedding_is_the_layouts():
    t = jnp.array([0.137, 0.9])
    e = unet_sa.timestep_embedding(t, 8)
    freqs = np.exp(-np.log(10000.0) * np.arange(4) / 4)
    args = np.outer(1000 * np.asarray(t, np.float64), freqs)
    np.testing.assert_allclose(e, np.concatenate([np.cos(args), np.sin(args)], 1), atol=2e-4)


def _unet_sa(**settings):
    """A small UNet+SA: its jitted ``eps_fn`` and parameters drawn with NumPy, every one non-zero (drawn with
    :func:`elsjax.nets.build`, each layer shape would compile its own initialiser; and the layout starts some layers at
    zero, which would hide the paths behind them)."""
    eps_fn, abstract = nets.abstract_params(nets.spec("unet_sa", **settings))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: (0.2 * rng.standard_normal(s.shape)).astype(np.float32), abstract)
    return jax.jit(eps_fn.__call__), params


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_unet_sa_starts_at_zero():
    spec = nets.spec("unet_sa", channels=3, num_classes=10, width=2, num_layers=1)  # a small net: few layer shapes
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
    out = jax.jit(eps_fn.__call__)(params, x, jnp.array([0.3, 0.9]), jnp.array([1, 2]))
    assert out.shape == (2, 4, 4, 3) and not np.any(np.asarray(out))  # the output convolution starts at zero
    assert not np.any(np.asarray(params["decoder"][0]["res"]["conv2"]["kernel"][...]))  # so do the residual branches'
    assert np.any(np.asarray(params["decoder"][0]["res"]["conv1"]["kernel"][...]))


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_unet_sa_is_conditional():
    apply, params = _unet_sa(channels=3, num_classes=10, width=8, num_layers=2)
    x, t = jax.random.normal(jax.random.key(1), (2, 16, 16, 3)), jnp.array([0.3, 0.9])
    out = apply(params, x, t, jnp.array([1, 2]))
    assert out.shape == x.shape and np.all(np.isfinite(out))
    assert not np.allclose(out, apply(params, x, t, jnp.array([3, 4])))
    assert not np.allclose(out, apply(params, x, jnp.array([0.31, 0.9]), jnp.array([1, 2])))
    with pytest.raises(ValueError, match="y: this network is class-conditional"):
        apply(params, x, t, None)
    with pytest.raises(ValueError, match="divisible by 2"):
        apply(params, x[:, :15, :15], t, jnp.array([1, 2]))


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_unet_sa_attention_sees_the_whole_image():
    # One level, so no attention in the level: its twenty 3x3 convolutions in a row (input, 3 + 2 + 4 residual blocks
    # of two, output) reach 20 px from a pixel; the middle block's attention makes every output pixel depend on every
    # input pixel.
    apply, params = _unet_sa(channels=1, width=8, num_layers=1)
    assert _rf_extent(apply, params, 48, (0, 0)) == (48, 48)


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_unet_sa_blocked_attention_is_attention():
    # On a CPU, more than 128 positions are attended image by image and in blocks of queries: the same values and
    # gradients as all at once.
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 256, 2, 4)) for i in range(3))
    loss = jax.jit(jax.value_and_grad(lambda q, k, v: jnp.sum(jnp.sin(unet_sa.attention(q, k, v))), argnums=(0, 1, 2)))
    want = jax.value_and_grad(
        lambda q, k, v: jnp.sum(jnp.sin(jax.nn.dot_product_attention(q, k, v))), argnums=(0, 1, 2)
    )
    for a, b in zip(jax.tree.leaves(loss(q, k, v)), jax.tree.leaves(want(q, k, v))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
