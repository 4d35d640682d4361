"""elsjax.config and elsjax.fieldtypes: typed fields from text, files and flags; help beside each field; old saved
configs (lists as text) read as today's typed ones, so that committed sweep stages stay reusable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from elsjax import checkpoint, cli, config, denoisers, fieldtypes, runs, sweeps
from elsjax.jobs import evaluate as evaluate_job

REPO = Path(__file__).resolve().parents[1]
TABLES = {"sample": config.SAMPLE_FIELDS, "train": config.TRAIN_FIELDS, "calibrate": config.CALIBRATE_FIELDS,
          "evaluate": config.EVALUATE_FIELDS, "explain": config.EXPLAIN_FIELDS}  # fmt: skip


def test_text_becomes_typed_values():
    cfg = config.override(config.calibrate_config(), {"ks": "3,5+7", "knobs": "tau=0.05, scope=pixel", "mesh": "2,0"})
    assert cfg.ks == (3, 5, 7) and cfg.mesh == (2, 0)
    assert cfg.knobs.to_dict() == {"tau": 0.05, "scope": "pixel"}
    assert config.scale_out(cfg)["mesh"] == "2,0" and config.scale_out(config.calibrate_config())["mesh"] == ""
    cfg = config.override(config.evaluate_config(), {"net_steps": "20", "machines": "e=els:3,5,5:data_padding=same,"
                                                     "p=pca_locality:tau=0.02:scope=pixel,ideal=ideal"})  # fmt: skip
    assert cfg.net_steps == (20,)
    assert cfg.machines == (
        {"name": "e", "denoiser": "els", "scales": (3, 5, 5), "knobs": {"data_padding": "same"}},
        {"name": "p", "denoiser": "pca_locality", "scales": "", "knobs": {"tau": 0.02, "scope": "pixel"}},
        {"name": "ideal", "denoiser": "ideal", "scales": "", "knobs": {}},
    )
    explain = config.override(config.explain_config(), {"which": "0,3", "steps": ""})
    assert explain.which == (0, 3) and explain.steps == ()
    # The same values given typed (a config file's lists, tuples and dicts) are the same config.
    typed = config.merge(config.evaluate_config(), {"net_steps": [20], "machines": [dict(m) for m in cfg.machines]})
    assert typed.to_dict() == {**config.evaluate_config().to_dict(), "net_steps": (20,), "machines": cfg.machines}
    assert fieldtypes.as_scales("scales", "MNIST_ResNet_zeros") == "MNIST_ResNet_zeros"
    assert fieldtypes.as_scales("scales", "runs/cal/calibration.json") == "runs/cal/calibration.json"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ks", "3,x", r"^ks: expected integers separated by commas \(e\.g\. 3,5,7\), got '3,x'$"),
        ("ks", [3, 5.5], r"^ks: expected integers"),
        ("knobs", "tau", r"^knobs: expected NAME=VALUE pairs \(e\.g\. tau=0\.05\), got 'tau'$"),
        ("knobs", {"tau": [1, 2]}, r"^knobs: 'tau': expected a number, text, true/false or none"),
        ("machines", "5,e=els:3", r"^machines: '5' follows no NAME=DENOISER:SCALES entry"),
        ("machines", [{"name": "e", "denoiser": "els", "k": 3}], r"^machines: entry .*: unknown key\(s\) \['k'\]"),
        ("machines", [{"name": "e"}], r"^machines: entry \{'name': 'e'\} needs a name and a denoiser$"),
        ("machines", "e=els:3+3:MNIST_ResNet_zeros", r"^machines: 'e=els:3\+3:MNIST_ResNet_zeros' has more than one"),
    ],
)
def test_bad_typed_values_are_one_line(key, value, message):
    schema = config.evaluate_config() if key == "machines" else config.calibrate_config()
    with pytest.raises(ValueError, match=message):
        config.merge(schema, {key: value})


def test_knobs_are_checked_against_the_denoisers():
    assert config.denoiser_knobs("scfdm", "smoothing=0.1,key=3") == {"smoothing": 0.1, "key": 3}
    with pytest.raises(ValueError) as caught:
        config.denoiser_knobs("pca_locality", {"tau": 0.02, "taus": 1})
    assert str(caught.value) == "knobs: the 'pca_locality' denoiser has no knob 'taus' (its knobs: tau, scope)"
    with pytest.raises(ValueError, match=r"^machines: p: knobs: the 'pca_locality' denoiser has no knob 'k'"):
        evaluate_job.machine_specs("p=pca_locality:k=3")
    with pytest.raises(ValueError, match=r"^kind: expected one of"):
        evaluate_job.machine_specs([{"name": "x", "denoiser": "nope"}])
    (spec,) = evaluate_job.machine_specs([{"name": "p", "denoiser": "pca_locality", "knobs": {"tau": 0.02}}])
    assert spec == ("p", "pca_locality", None, {"tau": 0.02})


def test_every_field_has_its_help_and_the_flags_take_text():
    for command, table in TABLES.items():
        assert set(table) == set(config.schema(table)), command
        for key, field in table.items():
            assert isinstance(field, config.Field) and len(field.help) > 10, (command, key)
    parser = argparse.ArgumentParser()
    config.add_flags(parser, config.CALIBRATE_FIELDS)
    text = parser.format_help()
    assert "candidate patch sizes" in text and "(default: 3,5,7,9,11,13,15,17)" in text
    args, extra = parser.parse_known_args(["--ks", "3,5", "--knobs", "tau=0.5", "--config.mesh=1,2"])
    cfg = config.resolve(config.calibrate_config(), args, extra)
    assert (cfg.ks, cfg.knobs.to_dict(), cfg.mesh) == ((3, 5), {"tau": 0.5}, (1, 2))
    parser = argparse.ArgumentParser()
    config.add_flags(parser, config.EVALUATE_FIELDS)
    text = "".join(parser.format_help().split())  # (argparse wraps long words)
    assert "(default:bbels=bbels:MNIST_ResNet_zeros,ls=ls:MNIST_ResNet_zeros,ideal=ideal)" in text


def test_a_config_file_gives_tuples_lists_and_dicts(tmp_path):
    path = tmp_path / "ev.py"
    path.write_text(
        "from elsjax.config import evaluate_config\n"
        "def get_config():\n"
        "    c = evaluate_config()\n"
        "    c.net_steps = [20]\n"
        "    c.machines = ({'name': 'p', 'denoiser': 'pca_locality', 'knobs': {'tau': 0.02}},\n"
        "                  {'name': 'e', 'denoiser': 'els', 'scales': [3, 3, 5]})\n"
        "    return c\n"
    )
    args = argparse.Namespace(config=str(path))
    cfg = config.resolve(config.evaluate_config(), args, ["--config.net_steps=20,150"])
    assert cfg.net_steps == (20, 150)
    assert [(m["name"], m["scales"], m["knobs"]) for m in cfg.machines] == [("p", "", {"tau": 0.02}),
                                                                           ("e", (3, 3, 5), {})]  # fmt: skip
    assert json.loads(json.dumps(config.as_saved(cfg)))["machines"][1]["scales"] == [3, 3, 5]


def test_the_renamed_command_and_field_are_gone(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["schedules"])
    assert caught.value.code == 2 and "invalid choice: 'schedules'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown field 'schedule'"):
        config.merge(config.sample_config(), {"schedule": "MNIST_ResNet_zeros"})


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_calibration_and_evaluation_pass_the_knobs_to_the_denoiser():
    from elsjax import calibrate
    from elsjax import evaluate as evaluate_lib

    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (6, 8, 8, 1)).astype(np.float32)
    seeds = rng.normal(size=(2, 8, 8, 1)).astype(np.float32)
    ideal = denoisers.build("ideal", train)
    run = lambda **kw: calibrate.calibrate_seeds(
        denoisers.Denoiser.eps, ideal, seeds, kind="els", train=train, ks=[3, 5], num_steps=3, **kw
    )
    assert not np.array_equal(run().cosine, run(knobs={"data_padding": "circular"}).cosine)
    with pytest.raises(ValueError, match="no such knob"):
        run(knobs={"tau": 0.1})
    sample = lambda **kw: evaluate_lib.machine_samples("pca_locality", seeds, train=train, scales=None, **kw)
    assert not np.array_equal(sample(), sample(knobs={"tau": 0.5}))


# ---------------------------------------------------------------------------------------------------------------
# Committed sweep stages (experiments/results/*/), saved with lists as text, are the sweeps' stages of today.


def committed_stages():
    """``(sweep file, row, stage directory, today's config of that stage)`` of every committed stage."""
    found = []
    for sweep_file in sorted((REPO / "experiments" / "sweeps").glob("*.py")):
        cfg = config.load_file(sweep_file)
        out_dir = Path(cfg.out_dir)  # relative to the repository, as the sweep files give it
        for row in sweeps._rows(cfg):
            if not (REPO / out_dir / row["name"]).is_dir():
                continue
            meta = checkpoint.read_meta(REPO / sweeps._net_dir(row, out_dir), row["net_step"] or None)
            kind = row["kind"] or ("els" if meta["spec"].get("padding") == "circular" else "bbels")
            for stage, stage_cfg in sweeps.stage_configs(row, out_dir, kind).items():
                if runs.is_complete(REPO / out_dir / row["name"] / stage):  # finished stages (a sweep may be running)
                    found.append((sweep_file.stem, row, out_dir / row["name"] / stage, stage_cfg))
    return found


def test_committed_stage_configs_are_todays_stage_configs(monkeypatch):
    monkeypatch.chdir(REPO)  # the stages name their nets and calibrations relative to the repository
    stages = committed_stages()
    assert len(stages) >= 30 and {s[0] for s in stages} >= {"cpu_scale", "cpu_budget"}
    old = json.loads((REPO / "experiments/results/cpu_scale/mnist_resnet_zeros/evaluate/config.json").read_text())
    assert isinstance(old["machines"], str) and old["net_steps"] == "20,150"  # saved as text
    for _, _, stage_dir, cfg in stages:
        defaults = config.evaluate_config() if stage_dir.name == "evaluate" else config.calibrate_config()
        # Every committed stage is reused, evaluations copied from another sweep (naming that sweep's calibration
        # files, with the same contents) included.
        assert sweeps._done_with(stage_dir, cfg, defaults), stage_dir
    # A changed calibration config is not the committed one.
    name, row, stage_dir, cfg = next(s for s in stages if s[2].name.startswith("calibrate_"))
    changed = config.merge(cfg, {"ks": (3, 5)})
    assert not sweeps._done_with(stage_dir, changed, config.calibrate_config())


def test_a_copied_evaluation_is_reused_only_while_its_calibrations_hold_the_same_schedules(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    stage = REPO / "experiments/results/cpu_variance/mnist_resnet_zeros_seed0_step2400/evaluate"
    saved = json.loads((stage / "config.json").read_text())
    defaults = config.evaluate_config()
    paths = [
        m["scales"] for m in fieldtypes.as_machines("machines", saved["machines"]) if str(m["scales"]).endswith(".json")
    ]
    assert paths and all("cpu_budget" in p for p in paths)  # the other sweep's files
    # The same schedules in files elsewhere: the same computation.
    moved, edited = dict(saved), dict(saved)
    for p in paths:
        copy = tmp_path / "same" / Path(p).parent.name / "calibration.json"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(Path(p).read_text())
        moved["machines"] = moved["machines"].replace(p, str(copy))
        other = json.loads(Path(p).read_text())
        other["median"] = [k + 2 for k in other["median"]]
        changed = tmp_path / "changed" / Path(p).parent.name / "calibration.json"
        changed.parent.mkdir(parents=True, exist_ok=True)
        changed.write_text(json.dumps(other))
        edited["machines"] = edited["machines"].replace(p, str(changed))
    cfg = config.merge(defaults, moved)
    assert sweeps._differences(saved, cfg, defaults) == []
    assert sweeps._differences(saved, config.merge(defaults, edited), defaults) == ["machines"]
