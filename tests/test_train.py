"""Training (docs/maths.md §9.4), checkpoints and the ``elsjax train`` run directory, on tiny nets and data."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import datasets_for_tests as fake  # noqa: E402

from elsjax import checkpoint, cli, nets, train  # noqa: E402

SPEC = nets.spec("resnet", channels=1, width=16, emb_dim=16, num_layers=2)


pytestmark = pytest.mark.usefixtures("isolated")  # never a developer's cache or prepared tfds data


def tiny_images(n=24, size=8):
    images, labels = fake.class_images(n, size=16, num_classes=4)
    x = images[:, ::2, ::2].astype(np.float32) / 127.5 - 1.0  # 8x8 in [-1, 1]
    return jnp.asarray(x[:, :size, :size]), jnp.asarray(labels)


def run_steps(state, n, tx, eps_fn, images, labels=None, key=jax.random.key(5)):
    losses = []
    for _ in range(n):
        state, loss = train.train_step(state, images, labels, eps_fn=eps_fn, tx=tx, batch_size=8, key=key)
        losses.append(float(loss))
    return state, losses


def test_batches_cover_each_epoch_once_and_keep_the_partial_batch():
    key = jax.random.key(0)
    seen = [train.batch_indices(s, num_images=10, batch_size=4, key=key) for s in range(3)]
    idx = np.concatenate([np.asarray(i)[np.asarray(m)] for i, m in seen])
    assert sorted(idx.tolist()) == list(range(10))  # 4 + 4 + 2: the last partial batch is kept
    assert [int(m.sum()) for _, m in seen] == [4, 4, 2]
    next_epoch, _ = train.batch_indices(3, num_images=10, batch_size=4, key=key)
    assert not np.array_equal(next_epoch, seen[0][0])  # a new permutation each epoch


def test_learning_rate_decays_per_step():
    tx = train.optimizer(learning_rate=1e-4, lr_decay=0.999965)
    params = jnp.zeros(1)
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update(jnp.ones(1), state, params)
    # Adam's step is lr * m_hat / (sqrt(v_hat) + eps) = lr for a constant gradient: the third uses lr * decay^2
    np.testing.assert_allclose(-updates, 1e-4 * 0.999965**2, rtol=1e-5)


def test_a_few_steps_reduce_the_loss():
    images, _ = tiny_images()
    eps_fn, params = nets.build(SPEC, key=jax.random.key(0))
    tx = train.optimizer(learning_rate=3e-3)
    _, losses = run_steps(train.init(params, tx), 40, tx, eps_fn, images)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])


def test_save_restore_round_trips_exactly(tmp_path):
    images, labels = tiny_images()
    spec = nets.spec("unet", channels=1, num_classes=4, width=4, emb_dim=8, num_layers=2)
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    tx = train.optimizer()
    state, _ = run_steps(train.init(params, tx), 2, tx, eps_fn, images, labels)
    checkpoint.save(tmp_path / "ck", 2, state.params, (state.step, state.opt_state), spec=spec, meta={"note": "x"})
    fresh = train.init(nets.build(spec, key=jax.random.key(9))[1], tx)
    params2, (step2, opt2), meta = checkpoint.restore(
        tmp_path / "ck", fresh.params, (fresh.step, fresh.opt_state), spec=spec
    )
    restored = train.TrainState(step2, params2, opt2)
    assert meta["note"] == "x" and meta["step"] == 2 and meta["spec"] == spec
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(a, b)
    eps_fn3, params3, _ = checkpoint.load_net(tmp_path / "ck")
    assert eps_fn3 == eps_fn
    x, t = images[:2], jnp.array([0.5, 0.5])
    np.testing.assert_array_equal(eps_fn(state.params, x, t, labels[:2]), eps_fn3(params3, x, t, labels[:2]))


def test_resumed_training_equals_uninterrupted(tmp_path):
    images, _ = tiny_images()
    eps_fn, params = nets.build(SPEC, key=jax.random.key(0))
    tx = train.optimizer(learning_rate=1e-3)
    full, full_losses = run_steps(train.init(params, tx), 6, tx, eps_fn, images)

    half, losses = run_steps(train.init(params, tx), 3, tx, eps_fn, images)
    checkpoint.save(tmp_path / "ck", 3, half.params, (half.step, half.opt_state), spec=SPEC)
    target = train.init(nets.build(SPEC, key=jax.random.key(1))[1], tx)
    p, (s, o), _ = checkpoint.restore(tmp_path / "ck", target.params, (target.step, target.opt_state), spec=SPEC)
    resumed, more = run_steps(train.TrainState(s, p, o), 3, tx, eps_fn, images)
    assert losses + more == full_losses
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    _, params = nets.build(SPEC, key=jax.random.key(0))
    checkpoint.save(tmp_path / "ck", 1, params, spec=SPEC)
    other = nets.spec("resnet", channels=1, width=16, emb_dim=16, num_layers=3)
    _, target = nets.abstract_params(other)
    with pytest.raises(ValueError, match=r"different architecture \(num_layers: saved 2, expected 3\)"):
        checkpoint.restore(tmp_path / "ck", target, spec=other)
    unet = nets.spec("unet", channels=1, width=4, emb_dim=8, num_layers=2)
    with pytest.raises(ValueError, match="arch: saved 'resnet', expected 'unet'"):
        checkpoint.restore(tmp_path / "ck", nets.abstract_params(unet)[1], spec=unet)


@pytest.mark.parametrize("damage", ["arrays", "meta", "empty"])
def test_corrupted_checkpoint_is_a_clear_error(tmp_path, damage):
    _, params = nets.build(SPEC, key=jax.random.key(0))
    checkpoint.save(tmp_path / "ck", 1, params, spec=SPEC)
    step_dir = tmp_path / "ck" / "1"
    if damage == "empty":
        for path in sorted((step_dir / "params").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    else:
        for path in (step_dir / ("params" if damage == "arrays" else "meta")).rglob("*"):
            if path.is_file():
                path.write_bytes(b"\x00garbage" * 3)
    with pytest.raises(ValueError, match="corrupted or unreadable"):
        checkpoint.load_net(tmp_path / "ck")


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        checkpoint.load_net(tmp_path / "nothing")


# ----------------------------------------------------------------------------------------------------------------
# The command: run directory, resume, refusals.


def train_args(data_dir, out_dir, *more):
    return ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "24", "--width", "16",
            "--emb-dim", "16", "--num-layers", "2", "--batch-size", "8", "--log-every", "4",
            "--checkpoint-every-steps", "2", "--n-samples", "3", "--sample-steps", "4", "--png-scale", "1",
            "--out-dir", str(out_dir), "--no-progress", *more]  # fmt: skip


def tree_digest(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def test_train_command_writes_a_run_directory_and_resumes_exactly(tmp_path, capsys):
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=24)
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli.main(train_args(data_dir, straight, "--num-steps", "6", "--conditional")) == 0
    names = {p.name for p in straight.iterdir()} - {"code.diff"}  # written when the checkout is dirty
    assert names == {"config.json", "checkpoints", "loss.csv", "loss.png", "samples.png", "samples.npz", "record.json"}
    record = json.loads((straight / "record.json").read_text())
    assert record["steps"] == 6 and record["spec"]["num_classes"] == 10 and np.isfinite(record["final_loss"])
    assert len((straight / "loss.csv").read_text().splitlines()) == 7
    with np.load(straight / "samples.npz") as f:
        assert f["samples"].shape == (3, 32, 32, 1) and f["labels"].tolist() == [0, 1, 2]

    assert cli.main(train_args(data_dir, split, "--num-steps", "3", "--conditional")) == 0
    assert cli.main(train_args(data_dir, split, "--num-steps", "6", "--conditional")) == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads((split / "record.json").read_text())["resumed_from"] == 3
    _, a, _ = checkpoint.load_net(straight / "checkpoints")
    _, b, _ = checkpoint.load_net(split / "checkpoints")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert (straight / "loss.csv").read_text() == (split / "loss.csv").read_text()

    # Another config into the same directory: refused, and nothing there changes.
    before = tree_digest(split)
    assert cli.main(train_args(data_dir, split, "--num-steps", "6", "--no-conditional")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different config (conditional: True there, False now)" in err
    assert tree_digest(split) == before


@pytest.mark.parametrize(
    "flags, match",
    [(["--arch", "vit"], "arch: unknown architecture 'vit'"), (["--dataset", "imagenet"], "dataset: unknown dataset"),
     (["--padding", "reflect"], "padding"), (["--batch-size", "0"], "batch_size"),
     (["--config.optimizer=sgd"], "unknown field 'optimizer'"),
     (["--ema-decay", "1.0"], "ema_decay: expected 0 (no EMA) or a decay in (0, 1)"),
     (["--ema-decay", "-0.1"], "ema_decay: expected 0 (no EMA) or a decay in (0, 1)"),
     (["--ema-debias"], "ema_debias: debiases an EMA of the weights; set ema_decay > 0")],
)  # fmt: skip
def test_train_command_bad_input(tmp_path, capsys, flags, match):
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=24)
    out = tmp_path / "run"
    assert cli.main(train_args(data_dir, out, "--num-steps", "2", *flags)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
    assert not out.exists()


def test_a_non_run_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert cli.main(train_args(fake.mnist_dir(tmp_path / "mnist", n_train=24), out, "--num-steps", "2")) == 2
    assert "holds no training run" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_experiment_configs_load():
    from elsjax import config

    root = Path(__file__).resolve().parents[1] / "experiments" / "configs"
    files = sorted(root.glob("train_*.py"))
    assert len(files) >= 4
    for path in files:
        cfg = config.merge(config.train_config(), config.load_file(path).to_dict())
        spec = nets.spec(cfg.arch, channels=1, width=cfg.width, num_layers=cfg.num_layers, emb_dim=cfg.emb_dim,
                         kernel_size=cfg.kernel_size, last_kernel_size=cfg.last_kernel_size, padding=cfg.padding)  # fmt: skip
        assert nets.param_count(nets.abstract_params(spec)[1]) > 0


COMMITTED_CHECKPOINTS = Path(__file__).resolve().parents[1] / "experiments" / "checkpoints"


@pytest.mark.parametrize("name", sorted(p.name for p in COMMITTED_CHECKPOINTS.iterdir() if p.is_dir()))
def test_committed_checkpoints_load_and_sample(name):
    from elsjax import sampler

    root = COMMITTED_CHECKPOINTS / name
    cfg = json.loads((root / "config.json").read_text())
    eps_fn, params, meta = checkpoint.load_net(root)
    if (root / "record.json").is_file():  # a finished run
        record = json.loads((root / "record.json").read_text())
        assert meta["step"] == record["steps"] == cfg["num_steps"]
        assert nets.param_count(params) == record["param_count"]
    else:  # an unfinished run directory, to be resumed (experiments/checkpoints/README.md)
        assert (root / "checkpoints").is_dir() and 0 < meta["step"] < cfg["num_steps"]
        assert meta["config"]["num_steps"] == cfg["num_steps"]
    assert meta["spec"]["arch"] == cfg["arch"] and meta["spec"]["width"] == cfg["width"]
    y = jnp.arange(2) if cfg["conditional"] else None
    x = sampler.sample_net(eps_fn, params, jax.random.normal(jax.random.key(0), (2, 32, 32, 1)), num_steps=2, y=y)
    assert x.shape == (2, 32, 32, 1) and bool(jnp.all(jnp.isfinite(x)))


# ----------------------------------------------------------------------------------------------------------------
# EMA of the weights (an option; not the paper's procedure).


def test_ema_is_updated_after_every_step_and_leaves_training_unchanged():
    images, _ = tiny_images()
    eps_fn, params = nets.build(SPEC, key=jax.random.key(0))
    tx = train.optimizer(learning_rate=1e-3)
    raw, raw_losses = run_steps(train.init(params, tx), 3, tx, eps_fn, images)
    state, ema, losses = train.init(params, tx, ema=True), params, []
    for _ in range(3):
        state, loss = train.train_step(
            state, images, None, eps_fn=eps_fn, tx=tx, batch_size=8, key=jax.random.key(5), ema_decay=0.9
        )
        losses.append(float(loss))
        ema = jax.tree.map(lambda e, p: 0.9 * np.asarray(e) + 0.1 * np.asarray(p), ema, state.params)
    assert losses == raw_losses  # the EMA does not change the optimiser's weights
    for a, b in zip(jax.tree.leaves(raw[:3]), jax.tree.leaves(state[:3])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(ema), jax.tree.leaves(state.ema)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(jax.tree.leaves(state.ema)[0], jax.tree.leaves(state.params)[0])


def test_debiased_ema_is_the_normalised_average_of_the_weights_visited():
    # sum_s d^(t-s) params_s / sum_s d^(t-s) over steps 1..t, in float64: no share of the initial weights.
    images, _ = tiny_images()
    eps_fn, params = nets.build(SPEC, key=jax.random.key(0))
    tx, d = train.optimizer(learning_rate=1e-2), 0.7
    state, visited = train.init(params, tx, ema=True), []
    for t in range(1, 5):
        state, _ = train.train_step(state, images, None, eps_fn=eps_fn, tx=tx, batch_size=8, key=jax.random.key(5),
                                    ema_decay=d, ema_debias=True)  # fmt: skip
        visited.append(jax.tree.map(lambda p: np.asarray(p, np.float64), state.params))
        if t == 1:  # step 1's decay is 0: the average is the weights themselves
            for a, b in zip(jax.tree.leaves(state.ema), jax.tree.leaves(state.params)):
                np.testing.assert_array_equal(a, b)
    w = np.array([d ** (4 - s) for s in range(1, 5)])
    expected = jax.tree.map(lambda *ps: sum(wi * p for wi, p in zip(w, ps)) / w.sum(), *visited)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(state.ema)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="ema_debias: debiases an EMA of the weights; set ema_decay > 0"):
        train.train_step(train.init(params, tx), images, None, eps_fn=eps_fn, tx=tx, batch_size=8,
                         key=jax.random.key(5), ema_debias=True)  # fmt: skip


def test_without_ema_the_step_is_the_program_it_was():
    # The step before the option existed, as it was written; the state's ema=None adds no input and no output.
    images, _ = tiny_images()
    eps_fn, params = nets.build(SPEC, key=jax.random.key(0))
    tx = train.optimizer()
    state = train.init(params, tx)
    assert state.ema is None and len(jax.tree.leaves(state)) == len(
        jax.tree.leaves((state.step, params, state.opt_state))
    )

    @functools.partial(jax.jit, static_argnames=("eps_fn", "tx", "batch_size"))
    def train_step(state, images, labels, *, eps_fn, tx, batch_size, key):
        data_key, noise_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
        idx, mask = train.batch_indices(state.step, num_images=images.shape[0], batch_size=batch_size, key=data_key)
        y = None if labels is None else labels[idx]
        loss, grads = jax.value_and_grad(train.loss_fn)(
            state.params, eps_fn, images[idx], y, mask, key=jax.random.fold_in(noise_key, state.step)
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return (state.step + 1, optax.apply_updates(state.params, updates), opt_state), loss

    args = dict(eps_fn=eps_fn, tx=tx, batch_size=8, key=jax.random.key(5))
    # The same StableHLO, up to the names of the outputs (a field of TrainState then, an index of a tuple here).
    now, before = (
        re.sub(r' ?\{?jax\.result_info = "[^"]*"\}?,?', "", f.lower(state, images, None, **args).as_text())
        for f in (train.train_step, train_step)
    )
    assert "stablehlo" in now and now == before


def test_ema_weights_are_saved_and_restored_bit_for_bit(tmp_path):
    images, labels = tiny_images()
    spec = nets.spec("unet", channels=1, num_classes=4, width=4, emb_dim=8, num_layers=2)
    eps_fn, params = nets.build(spec, key=jax.random.key(0))
    tx = train.optimizer()
    state = train.init(params, tx, ema=True)
    for _ in range(2):
        state, _ = train.train_step(
            state, images, labels, eps_fn=eps_fn, tx=tx, batch_size=8, key=jax.random.key(5), ema_decay=0.5
        )
    checkpoint.save(tmp_path / "ck", 2, state.params, (state.step, state.opt_state), spec=spec, ema=state.ema)
    assert {p.name for p in (tmp_path / "ck" / "2").iterdir()} >= {"params", "train", "meta", "ema"}
    assert set(checkpoint.read_meta(tmp_path / "ck")["checksums"]) == {"params", "train", "ema"}
    target = nets.abstract_params(spec)[1]
    ema = checkpoint.restore_ema(tmp_path / "ck", target, spec=spec)
    _, raw, meta = checkpoint.load_net(tmp_path / "ck")
    _, ema2, meta2 = checkpoint.load_net(tmp_path / "ck", weights="ema")
    assert (meta["weights"], meta2["weights"]) == ("raw", "ema") and checkpoint.has_ema(tmp_path / "ck")
    for a, b, c in zip(jax.tree.leaves(state.ema), jax.tree.leaves(ema), jax.tree.leaves(ema2)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(raw)):
        np.testing.assert_array_equal(a, b)
    # A state with EMA weights stepped without a decay is refused (and one without them stepped with a decay).
    with pytest.raises(ValueError, match="does not fit a state with EMA weights"):
        train.train_step(state, images, labels, eps_fn=eps_fn, tx=tx, batch_size=8, key=jax.random.key(5))
    # A damaged EMA item is an error, as damaged raw weights are.
    for path in (tmp_path / "ck" / "2" / "ema").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage" * 3)
    with pytest.raises(ValueError, match="corrupted"):
        checkpoint.load_net(tmp_path / "ck", weights="ema")


def test_asking_for_ema_weights_of_a_checkpoint_without_them_is_a_clear_error(tmp_path):
    _, params = nets.build(SPEC, key=jax.random.key(0))
    checkpoint.save(tmp_path / "ck", 1, params, spec=SPEC)
    assert set(checkpoint.read_meta(tmp_path / "ck")["checksums"]) == {"params"}
    assert not checkpoint.has_ema(tmp_path / "ck")
    for call in (lambda: checkpoint.load_net(tmp_path / "ck", weights="ema"),
                 lambda: checkpoint.restore_ema(tmp_path / "ck", params, spec=SPEC)):  # fmt: skip
        with pytest.raises(ValueError, match=r"holds no EMA weights \(its net was trained with ema_decay 0\)") as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"weights: expected one of \['raw', 'ema'\], got 'best'"):
        checkpoint.load_net(tmp_path / "ck", weights="best")


@pytest.mark.parametrize("debias", [(), ("--ema-debias",)], ids=["ema", "debiased"])
def test_train_command_with_ema_resumes_exactly(tmp_path, capsys, debias):
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=24)
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert cli.main(train_args(data_dir, straight, "--num-steps", "6", "--ema-decay", "0.8", *debias)) == 0
    assert {"samples_ema.png", "samples_ema.npz"} <= {p.name for p in straight.iterdir()}
    assert json.loads((straight / "config.json").read_text())["ema_decay"] == 0.8
    assert json.loads((straight / "config.json").read_text())["ema_debias"] is bool(debias)
    assert cli.main(train_args(data_dir, split, "--num-steps", "3", "--ema-decay", "0.8", *debias)) == 0
    assert cli.main(train_args(data_dir, split, "--num-steps", "6", "--ema-decay", "0.8", *debias)) == 0
    assert "resuming" in capsys.readouterr().out
    for weights in ("raw", "ema"):
        _, a, _ = checkpoint.load_net(straight, weights=weights)
        _, b, _ = checkpoint.load_net(split, weights=weights)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(x, y)
    _, raw, _ = checkpoint.load_net(straight)
    assert not np.array_equal(jax.tree.leaves(raw)[0], jax.tree.leaves(a)[0])
    assert (straight / "loss.csv").read_text() == (split / "loss.csv").read_text()
    with np.load(straight / "samples_ema.npz") as f, np.load(split / "samples_ema.npz") as g:
        np.testing.assert_array_equal(f["samples"], g["samples"])
    # The EMA's decay is part of what was trained: another one into the same directory is refused.
    assert cli.main(train_args(data_dir, split, "--num-steps", "6", "--ema-decay", "0.9", *debias)) == 2
    assert "different config (ema_decay: 0.8 there, 0.9 now)" in capsys.readouterr().err


def test_train_command_without_ema_writes_the_checkpoint_it_did(tmp_path):
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=24)
    out = tmp_path / "run"
    assert cli.main(train_args(data_dir, out, "--num-steps", "2")) == 0
    step_dir = out / "checkpoints" / "2"
    assert "ema" not in {p.name for p in step_dir.iterdir()} and {"params", "train", "meta"} <= {
        p.name for p in step_dir.iterdir()}  # fmt: skip
    assert set(checkpoint.read_meta(out)["checksums"]) == {"params", "train"}
    assert not (out / "samples_ema.png").exists()
