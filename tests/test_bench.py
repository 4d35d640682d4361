"""The benchmark is not a test; the suite only checks that it runs, on tiny sizes, and writes its JSON."""

import importlib.util
import json
import pathlib

BENCH = pathlib.Path(__file__).parents[1] / "experiments" / "bench.py"


def test_bench_runs_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    bench.main(["--tiny", "--out", str(out)])
    results = json.loads(out.read_text())
    assert {r["batch"] for r in results["evals"]} == {1, 2}
    for r in results["evals"]:
        assert r["seconds_per_eval"] > 0 and r["exp_floor_s"] > 0 and r["matmul_floor_s"] > 0
        assert 0 < r["distinct_fraction"] <= 1 and r["pairs"] <= r["nominal_pairs"] * 1.5
    assert results["samples"][0]["seconds"] > 0 and results["peak_rss_gb"] > 0
