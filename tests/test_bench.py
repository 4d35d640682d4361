"""The benchmark is not a test; the suite only checks that it runs, on tiny sizes, and writes its JSON."""

import json

import numpy as np
import pytest
from experiment_scripts import load


def test_bench_runs_tiny(tmp_path):
    bench = load("bench")
    out = tmp_path / "bench.json"
    bench.main(["--tiny", "--out", str(out)])
    results = json.loads(out.read_text())
    assert {r["batch"] for r in results["evals"]} == {1, 2}
    for r in results["evals"]:
        assert r["seconds_per_eval"] > 0 and r["exp_floor_s"] > 0 and r["matmul_floor_s"] > 0
        assert 0 < r["distinct_fraction"] <= 1 and r["pairs"] <= r["nominal_pairs"] * 1.5
    assert results["samples"][0]["seconds"] > 0 and results["peak_rss_gb"] > 0
    assert {r["padded"] for r in results["samples"]} == {False, True}
    assert results["samples"][0]["programs"] >= 1  # the first sample compiles; the padded one may find them kept
    assert all(r["programs"] <= min(2, r["distinct_k"]) for r in results["samples"])


def test_sample_memory_runs_tiny(capsys):
    assert load("sample_memory").main(["--tiny", "--keep-bytes", "0"]) > 0
    out = capsys.readouterr().out
    assert "build  step  0/19  k= 3" in out and "peak RSS" in out


def test_fixed_costs_runs_tiny(tmp_path):
    out = tmp_path / "fixed_costs.json"
    load("fixed_costs").main(["--tiny", "--out", str(out)])
    run = json.loads(out.read_text())["runs"][0]
    assert [r["k"] for r in run["split"]["segments"]] == [3, 5, 3]  # the tiny schedule's segments
    s = run["summary"]
    assert s["sum_compile_s"] > 0 and s["sum_eval_s"] > 0 and s["cold_s"] > 0 and 0 < s["fixed_share"] < 1


def test_bench_provenance_runs_tiny(tmp_path):
    out = tmp_path / "bench_provenance.json"
    load("bench_provenance").main(["--tiny", "--out", str(out)])
    results = json.loads(out.read_text())
    assert [r["batch"] for r in results["evals"]] == [1, 2]
    for r in results["evals"]:
        assert r["off_s"] > 0 and r["on_s"] > 0 and r["on_compile_s"] > 0 and r["ratio"] > 0
    assert results["samples"][0]["max_abs_diff"] < 1e-5


def test_variance_report_separates_seed_noise_from_run_spread(tmp_path):
    """Two runs whose seed values are offset by 0.2: the run SD is the offset's, the seed SD that of the values."""
    report = load("variance_report")
    values = [0.50, 0.55, 0.60, 0.65, 0.70]
    for seed, shift in ((0, 0.0), (1, 0.2)):
        row = tmp_path / f"x_seed{seed}_step100" / "evaluate"
        row.mkdir(parents=True)
        per_seed = {"r": {m: {"150": [v + shift for v in values]} for m in ("bbels", "ls", "ideal")}}
        (row / "summary.json").write_text(json.dumps({"per_seed": per_seed}))
    (tmp_path / "unrelated_row" / "evaluate").mkdir(parents=True)  # not a variance row: ignored
    result = report.main([str(tmp_path)])
    cells = result["cells"]["bbels"]["150"]["100"]
    assert cells["0"]["value"] == 0.60 and abs(cells["1"]["value"] - 0.80) < 1e-12
    spread = result["spread"]["bbels"]["150"]["100"]
    assert abs(spread["sd_runs"] - 0.2 / 2**0.5) < 1e-12 and spread["runs"] == 2
    assert 0 < spread["sd_seeds"] < 0.1
    assert (tmp_path / "variance.png").stat().st_size > 0 and "| 100 |" in (tmp_path / "variance.md").read_text()


def test_variance_report_names_runs_by_a_pattern_and_spreads_them_over_checkpoints(tmp_path):
    """Two weights of one run at two checkpoints: a run's checkpoint SD is its own medians', not the other run's."""
    report = load("variance_report")
    values = np.array([0.50, 0.55, 0.60, 0.65, 0.70])
    for name, step, shift in (("raw", 100, 0.0), ("raw", 200, 0.3), ("debiased", 100, 0.1), ("debiased", 200, 0.1)):
        row = tmp_path / f"x_emarun_{name}_step{step}" / "evaluate"
        row.mkdir(parents=True)
        per_seed = {"r": {m: {"20": list(values + shift)} for m in ("bbels", "ideal")}}
        (row / "summary.json").write_text(json.dumps({"per_seed": per_seed}))
    (tmp_path / "x_seed0_step100" / "evaluate").mkdir(parents=True)  # another pattern's row: ignored
    runs = r"_emarun_(?P<run>[a-z]+)_step(?P<step>\d+)$"
    result = report.main([str(tmp_path), "--runs", runs, "--name", "ema", "--title", "EMA"])
    over = result["over_checkpoints"]["bbels"]["20"]
    assert abs(over["raw"]["sd"] - 0.3 / 2**0.5) < 1e-12 and abs(over["raw"]["max"] - 0.9) < 1e-12
    assert over["debiased"]["sd"] < 1e-12 and over["debiased"]["checkpoints"] == 2
    text = (tmp_path / "ema.md").read_text()
    assert text.startswith("# EMA") and "| checkpoint | debiased | raw |" in text and "0.600-0.900" in text
    assert not (tmp_path / "variance.md").exists()
    with pytest.raises(SystemExit, match="named groups run and step"):
        report.main([str(tmp_path), "--runs", "_step(?P<step>\\d+)$"])


def test_table_intervals_pairs_the_calibrated_and_published_machines_by_seed(tmp_path):
    intervals = load("table_intervals")
    rng = np.random.default_rng(0)
    published = rng.normal(0.7, 0.1, 40)
    row = tmp_path / "row" / "evaluate"
    row.mkdir(parents=True)
    per_seed = {"r": {"els": {"150": list(published + 0.05)}, "els_published": {"150": list(published)}}}
    (row / "summary.json").write_text(json.dumps({"per_seed": per_seed}))
    gain = intervals.main([str(tmp_path)])["row"]["150"]["els calibrated - published"]
    # Every seed gains exactly 0.05: the paired interval has no width, where unpaired medians would spread.
    assert abs(gain["value"] - 0.05) < 1e-12 and gain["high"] - gain["low"] < 1e-12
    assert "els calibrated - published | +0.050" in (tmp_path / "intervals.md").read_text()


def _pair_row(folder, name, r, seeds, net=None):
    evaluation = folder / name / "evaluate"
    evaluation.mkdir(parents=True)
    per_seed = {"r": {m: {"150": list(r)} for m in ("bbels", "ls", "ideal")}}
    (evaluation / "summary.json").write_text(json.dumps({"machines": ["bbels", "ls", "ideal"], "per_seed": per_seed}))
    rng = np.random.default_rng(len(name))
    images = {f"machine_{m}": rng.uniform(-1, 1, seeds.shape) for m in ("bbels", "ls", "ideal")}
    net = rng.uniform(-1.3, 1.3, seeds.shape) if net is None else net  # default: pixel noise, 2/13 beyond 1.1
    np.savez(evaluation / "samples.npz", seeds=seeds, net_150=net, **images)


def test_pair_compare_pairs_two_nets_by_seed_and_refuses_other_noise(tmp_path):
    """Every seed of B agrees exactly 0.1 less than A's: the paired difference is -0.1 with no width."""
    pair = load("pair_compare")
    seeds = np.random.default_rng(0).normal(size=(12, 8, 8, 1))
    r = np.linspace(0.5, 0.9, 12)
    _pair_row(tmp_path, "a", r, seeds, net=np.full(seeds.shape, 0.5))  # a smooth image, in range
    _pair_row(tmp_path, "b", r - 0.1, seeds)
    result = pair.main([str(tmp_path), "a", "b", "--labels", "UNet", "UNet+SA"])
    smooth, noise = (q["by_steps"]["150"] for q in result["net_samples"])
    assert (smooth["noise_seeds"], smooth["median_frac_out"], smooth["median_roughness"]) == (0, 0.0, 0.0)
    assert noise["noise_seeds"] == 12 and 0.05 < noise["median_frac_out"] < 0.3
    diff = result["compare"]["(E)LS"]["150"]
    assert (
        abs(diff["B_minus_A"]["value"] + 0.1) < 1e-12 and diff["B_minus_A"]["high"] - diff["B_minus_A"]["low"] < 1e-12
    )
    assert diff["frac_B_lower"] == 1.0 and diff["n_seeds"] == 12
    assert result["seeds_shown"][:3] == [0, 1, 2]  # B's worst seeds first
    assert (tmp_path / "pair_a_vs_b.png").stat().st_size > 0 and "UNet+SA" in (tmp_path / "pair_a_vs_b.md").read_text()
    _pair_row(tmp_path, "c", r, seeds + 1.0)
    with pytest.raises(SystemExit, match="different seeds"):
        pair.main([str(tmp_path), "a", "c"])


def test_table_intervals_gives_the_gap_to_the_paper_with_the_runs_spread(tmp_path):
    intervals = load("table_intervals")
    for name, key, shift in (("study", ["mnist", "resnet", "zeros", False], 0.0),
                             ("other", ["mnist", "unet", "zeros", False], 0.1)):  # fmt: skip
        (tmp_path / name / "evaluate").mkdir(parents=True)
        (tmp_path / name / "row.json").write_text(json.dumps({"key": key}))
        per_seed = {"r": {m: {"150": [0.80 + shift] * 9} for m in ("bbels", "ls", "ideal")}}
        (tmp_path / name / "evaluate" / "summary.json").write_text(json.dumps({"per_seed": per_seed}))
    spread = {m: {"150": {"2400": {"sd_runs": 0.5, "runs": 3}, "3600": {"sd_runs": 0.04, "runs": 3}, "all": {}}}
              for m in ("bbels", "ls")}  # fmt: skip
    (tmp_path / "variance.json").write_text(json.dumps({"spread": spread, "configuration": "study"}))
    result = intervals.main([str(tmp_path), "--runs", str(tmp_path / "variance.json")])["gap_to_paper"]
    study = result["study"]["150"]["bbels"]
    assert abs(study["gap"] - (0.80 - 0.94)) < 1e-12 and study["sd_runs"] == 0.04 and not study["borrowed"]
    assert result["other"]["150"]["bbels"]["borrowed"] and abs(result["other"]["150"]["ls"]["gap"] - 0.02) < 1e-12
    assert result["study"]["150"]["ideal"]["sd_runs"] is None  # the study did not spread the IS here: no error bar
    assert "| study | 150 | bbels | 0.800 | 0.94 | -0.140 |" in (tmp_path / "intervals.md").read_text()


def test_sensitivity_report_gives_each_rows_paired_move_from_the_base(tmp_path):
    report = load("sensitivity_report")
    rng = np.random.default_rng(1)
    base = rng.uniform(0.5, 0.9, 30)
    rows = (("base", 0.0, 0.0), ("calibration_seed100", -0.03, 0.0), ("corrected", 0.0, 0.0),
            ("fmnist_base", 0.0, 0.2), ("fmnist_ls_ks_to_31", 0.01, 0.2))  # fmt: skip  # (name, move, its base's level)
    for name, shift, level in rows:
        (tmp_path / name / "evaluate").mkdir(parents=True)
        per_seed = {"r": {m: {"150": list(base + level + shift), "20": list(base)} for m in ("bbels", "ls")}}
        (tmp_path / name / "evaluate" / "summary.json").write_text(json.dumps({"per_seed": per_seed}))
        (tmp_path / name / "row.json").write_text(json.dumps({"calibrated": {"bbels": [3, 5], "ls": [3, 3]}}))
    result = report.main([str(tmp_path)])
    move = result["moves"]["calibration_seed100"]["bbels"]["150"]["move"]
    assert abs(move["value"] + 0.03) < 1e-12 and move["high"] - move["low"] < 1e-12  # every seed moved by -0.03
    assert result["moves"]["corrected"]["ls"]["20"]["move"]["value"] == 0.0
    assert not {"base", "fmnist_base"} & set(result["moves"])
    # A row named PREFIX_... is compared with PREFIX_base: its own move, not the two bases' difference.
    fmnist = result["moves"]["fmnist_ls_ks_to_31"]["bbels"]["150"]
    assert fmnist["base_row"] == "fmnist_base" and abs(fmnist["move"]["value"] - 0.01) < 1e-12
    text = (tmp_path / "sensitivity.md").read_text()
    assert (tmp_path / "sensitivity.png").stat().st_size > 0 and "| corrected | base | bbels |" in text
    assert "| fmnist_ls_ks_to_31 | fmnist_base | bbels | 150 |" in text


def test_compare_denoisers_notes_a_knob_chosen_at_an_end_of_its_candidates(tmp_path):
    compare = load("compare_denoisers")
    notes = {}
    for best in (16.0, 0.001, 0.005, 0.0):
        path = tmp_path / f"{best}.json"
        path.write_text(json.dumps({"kind": "scfdm", "knob": "smoothing", "best": best,
                                    "candidates": [0.0, 0.001, 0.005, 16.0]}))  # fmt: skip
        notes[best] = compare.edge_note(path)
    assert "is the largest of its candidates" in notes[16.0]
    assert "is the smallest non-zero of its candidates" in notes[0.001]
    assert notes[0.005] == "" and notes[0.0] == ""  # inside the candidates; 0 (the IS) is a candidate like any other
    text = compare.markdown({}, ["net_a"], ["net_a: " + notes[16.0]])
    assert "At an end of the candidates (the best value may lie beyond): net_a: scfdm smoothing = 16" in text
    assert "At an end" not in compare.markdown({}, ["net_a"])


def test_compare_denoisers_reruns_an_evaluation_whose_knob_was_recalibrated(tmp_path):
    from elsjax import calibrate, runs
    from elsjax import config as config_lib

    compare = load("compare_denoisers")
    knob_file = tmp_path / "knob_calibration.json"

    def calibrated(best):
        c = calibrate.KnobCalibration(kind="pca_locality", knob="tau", candidates=[0.0, best], best=best,
                                      mean_cosine=[0.5, 0.6], per_step=[best], cosine=np.zeros((1, 1, 2), np.float32),
                                      times=[1.0], scales=None, knobs={}, seed=0, y=None)  # fmt: skip
        runs.write_json(knob_file, c.to_dict())

    cfg = config_lib.merge(config_lib.evaluate_config(), {"machines": [
        {"name": "pca_locality", "denoiser": "pca_locality", "scales": "", "knobs": {"tau": str(knob_file)}}]})  # fmt: skip
    calibrated(0.005)
    runs.write_json(tmp_path / "summary.json", {"machines_spec": {"pca_locality": {
        "kind": "pca_locality", "scales": None, "knobs": {"tau": 0.005}}}})  # fmt: skip
    assert compare._same_machines(tmp_path, cfg)
    calibrated(0.002)  # recalibrated in place: the finished evaluation is of another tau
    assert not compare._same_machines(tmp_path, cfg)


def test_net_drift_names_each_nets_columns(tmp_path, monkeypatch):
    import datasets_for_tests as fake

    from elsjax import cli, figures

    data_dir = fake.mnist_dir(tmp_path / "mnist", n_train=16)
    net = tmp_path / "net"
    train = ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "16", "--width", "8",
             "--emb-dim", "8", "--num-layers", "1", "--batch-size", "8", "--num-steps", "4",
             "--checkpoint-every-steps", "2", "--n-samples", "0", "--out-dir", str(net), "--no-progress"]  # fmt: skip
    assert cli.main(train) == 0
    drawn = {}
    monkeypatch.setattr(figures, "comparison_grid", lambda columns, path, **kw: drawn.update(columns))
    drift = load("net_drift")
    args = [str(net), str(net), "--n-seeds", "2", "--labels", "a", "b", "--out", str(tmp_path / "drift")]
    results = drift.main(args)
    # The same checkpoints of two nets: one column each, not one overwriting the other.
    assert sorted(drawn) == ["a 2", "a 4", "b 2", "b 4"]
    np.testing.assert_array_equal(drawn["a 4"], drawn["b 4"])
    assert set(results["nets"][str(net)]) == {"2", "4"}
    with pytest.raises(SystemExit, match="--labels: 1 names for 2 nets"):
        drift.main([str(net), str(net), "--labels", "a"])
