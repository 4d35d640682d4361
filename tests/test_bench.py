"""The benchmark is not a test; the suite only checks that it runs, on tiny sizes, and writes its JSON."""

import importlib.util
import json
import pathlib

EXPERIMENTS = pathlib.Path(__file__).parents[1] / "experiments"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
