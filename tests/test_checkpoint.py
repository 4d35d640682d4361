"""Checkpoint content checksums (a flipped byte is an error, never silently wrong weights) and run directories."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from elsjax import checkpoint, nets, train

COMMITTED = Path(__file__).resolve().parents[1] / "experiments" / "checkpoints" / "mnist_resnet_zeros_cpu"
SPEC = nets.spec("resnet", channels=1, width=8, num_layers=1, emb_dim=8)


def committed_copy(tmp_path) -> Path:
    root = tmp_path / "ck"
    shutil.copytree(COMMITTED, root)
    return root


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def data_files(item_dir: Path) -> list[Path]:
    """Orbax's data files of one item (ocdbt chunks), largest first: the parameter bytes are in these."""
    return sorted((p for p in item_dir.rglob("d/*") if p.is_file()), key=lambda p: p.stat().st_size, reverse=True)


def flip_a_value(item_dir: Path, restore_unverified, reference) -> Path:
    """Flips one byte of a data file so that the unverified restore succeeds with a changed value; returns the file.

    orbax reads a flipped byte of a compressed chunk back as a different weight (no error of its own) at most
    positions; positions where it notices, or where the byte changes nothing, are skipped.
    """
    for path in data_files(item_dir):
        original = path.read_bytes()
        for fraction in (0.5, 0.3, 0.7, 0.9):
            garbled = bytearray(original)
            garbled[int(len(original) * fraction)] ^= 0x01
            path.write_bytes(bytes(garbled))
            try:
                restored = restore_unverified()
            except ValueError:
                restored = None
            if restored is not None and any((a != b).any() for a, b in zip(leaves(restored), reference)):
                return path
            path.write_bytes(original)
    raise AssertionError(f"no single-byte flip in {item_dir} changed a value")


def test_saved_checksums_match_the_trees(tmp_path):
    _, params = nets.build(SPEC, key=jax.random.key(0))
    tx = train.optimizer()
    state = train.init(params, tx)
    checkpoint.save(tmp_path / "ck", 3, params, (state.step, state.opt_state), spec=SPEC)
    meta = checkpoint.read_meta(tmp_path / "ck")
    assert meta["checksums"]["params"] == checkpoint.tree_checksum(params)
    assert meta["checksums"]["train"] == checkpoint.tree_checksum((state.step, state.opt_state))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint with checksums loads without a warning
        checkpoint.restore(tmp_path / "ck", params, (state.step, state.opt_state), spec=SPEC)


def test_a_flipped_parameter_byte_of_a_committed_checkpoint_is_a_clear_error(tmp_path):
    root = committed_copy(tmp_path)
    _, params, meta = checkpoint.load_net(root)
    reference = leaves(params)
    step_dir = root / str(meta["step"])
    garbled = flip_a_value(step_dir / "params", lambda: checkpoint.load_net(root, verify=False)[1], reference)
    assert garbled.stat().st_size > 0 and garbled.is_relative_to(step_dir / "params")
    with pytest.raises(ValueError, match=rf"checkpoint: {step_dir}/params is corrupted: array '[\w/]+' \(float32"):
        checkpoint.load_net(root)


def test_a_flipped_optimiser_byte_is_a_clear_error_on_resume(tmp_path):
    root = committed_copy(tmp_path)
    meta = checkpoint.read_meta(root)
    cfg = meta["config"]
    tx = train.optimizer(cfg["learning_rate"], cfg["lr_decay"], cfg["weight_decay"])
    _, params = nets.abstract_params(meta["spec"])
    target = jax.eval_shape(lambda p: tuple(train.init(p, tx))[0::2], params)  # (step, opt_state), as train saves it

    def restore_train(verify):
        return checkpoint.restore(root, params, target, spec=meta["spec"], verify=verify)[1]

    reference = leaves(restore_train(True))
    flip_a_value(root / str(meta["step"]) / "train", lambda: restore_train(False), reference)
    with pytest.raises(ValueError, match=rf"{root}/{meta['step']}/train is corrupted: array '1/0/\w+/"):
        restore_train(True)
    checkpoint.load_net(root)  # the parameters are intact: sampling from the net still works


@pytest.mark.parametrize("nbytes", [64, 4096])
def test_a_garbled_block_is_a_value_error_naming_the_checkpoint(tmp_path, nbytes):
    root = committed_copy(tmp_path)
    path = data_files(root / "1800" / "params")[0]
    garbled = bytearray(path.read_bytes())
    middle = len(garbled) // 2
    garbled[middle : middle + nbytes] = bytes(b ^ 0xFF for b in garbled[middle : middle + nbytes])
    path.write_bytes(bytes(garbled))
    # orbax may notice (a broken compressed chunk) or not (NaN or wrong weights): either way a ValueError names it
    with pytest.raises(ValueError, match=rf"checkpoint: {root}/1800(/params is corrupted| is corrupted or unreadable)"):
        checkpoint.load_net(root)


def test_a_checkpoint_without_checksums_is_a_value_error_naming_its_folder(tmp_path):
    root = committed_copy(tmp_path)
    meta_file = root / "1800" / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    del meta["checksums"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"^checkpoint: {root}/1800 has no content checksums"):
        checkpoint.load_net(root)
    # Only the check refuses it: without verification the same weights load as from the intact copy.
    _, unverified, _ = checkpoint.load_net(root, verify=False)
    _, intact, _ = checkpoint.load_net(COMMITTED)
    assert all((a == b).all() for a, b in zip(leaves(unverified), leaves(intact), strict=True))


def test_a_run_directory_is_found_through_its_checkpoints_folder(tmp_path):
    _, params = nets.build(SPEC, key=jax.random.key(0))
    run = tmp_path / "run"
    checkpoint.save(run / "checkpoints", 5, params, spec=SPEC)
    (run / "config.json").write_text("{}")
    assert checkpoint.latest_step(run) == 5 and checkpoint.read_meta(run)["step"] == 5
    _, loaded, meta = checkpoint.load_net(run)
    assert meta["step"] == 5 and all((a == b).all() for a, b in zip(leaves(loaded), leaves(params)))
    checkpoint.restore(run, nets.abstract_params(SPEC)[1], spec=SPEC)
    with pytest.raises(ValueError, match=rf"{run}/checkpoints has no step 4 \(steps there: \[5\]\)"):
        checkpoint.load_net(run, step=4)


def test_no_checkpoint_says_what_was_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no checkpoint in .*empty \(expected step folders .*checkpoints/\)"):
        checkpoint.load_net(tmp_path / "empty")


def test_periodic_steps_survive_the_extra_saves_that_would_evict_them(tmp_path):
    """A timer or an interruption saves off-period steps; with ``keep_period`` they never push out the periodic ones."""
    _, params = nets.build(SPEC, key=jax.random.key(0))
    for step in (600, 777, 1200, 1500, 1800, 1999, 2400):
        checkpoint.save(tmp_path / "ck", step, params, spec=SPEC, keep=2, keep_period=600)
    kept = sorted(int(p.name) for p in (tmp_path / "ck").iterdir() if p.name.isdigit())
    assert {600, 1200, 1800, 2400} <= set(kept)
    assert 777 not in kept and 1500 not in kept
