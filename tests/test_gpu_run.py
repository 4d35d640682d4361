"""The GPU run's pieces that a CPU can check (docs/performance.md, "The GPU run"): the report merges what the phases
left and says what is missing; fixed_costs.py runs without its split; reference_gpu.py rejects bad input early."""

import json

import pytest
from experiment_scripts import load

CHECK_LOG = """\
NVIDIA H100 80GB HBM3, 81559 MiB
tests/test_oracle.py::test_scores_match_reference[scores_a.npz] scores_a.npz {'ELS': '2.0e-06'}
PASSED
tests/test_oracle.py::test_scores_match_reference[scores_b.npz] FAILED
========================= 1 failed, 1 passed in 61.98s =========================
"""


def sample_run(n, batch, cold, warm):
    summary = {"cold_s": cold, "warm_s": warm, "evals_s": 0.5, "fixed_share": 0.25}
    return {"batch": batch, "runs": [{"N": n, "split": {"segments": []}, "summary": summary}]}


@pytest.mark.integration  # a whole sampler or job run (over 2 s): not the fast tier
def test_report_merges_the_phases_and_names_what_is_missing(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    load("bench").main(["--tiny", "--out", str(work / "evals.json")])
    (work / "check.txt").write_text(CHECK_LOG)
    (work / "phases.tsv").write_text("check\t1\t80\t90\nevals\t0\t50\t90\nfull_k3\t124\t60\t60\n")
    (work / "samples_b1.json").write_text(json.dumps(sample_run(1000, 1, cold=4.0, warm=1.0)))
    evals = [{"N": 1000, "k": 3, "fp32": {"first_s": 0.5, "warm_s": 0.3}, "elsjax": {"first_s": 2.0, "warm_s": 0.003},
              "speedup_warm_fp32": 100.0, "max_abs_diff_fp32": 2e-5, "ref_max_abs": 20.0}]  # fmt: skip
    samples = [{"N": 1000, "batch": 1, "reference_s": [9.0, 8.0], "elsjax_s": [20.0, 0.5], "max_abs_diff": 3e-5}]
    (work / "reference.json").write_text(json.dumps({"devices": ["cuda:0"], "evals": evals, "samples": samples}))

    load("gpu_report").main([str(work), str(out)])
    results = json.loads((out / "gpu_results.json").read_text())
    text = (out / "gpu_report.md").read_text()
    assert len(results["evals"]) == 2 and results["logs"]["check"] == CHECK_LOG  # bench --tiny: batches 1 and 2
    assert results["oracle"]["passed"] == 1
    assert results["oracle"]["failed"] == ["tests/test_oracle.py::test_scores_match_reference[scores_b.npz]"]
    assert "| 1000 | 3 | 500 / 300 | - | 2,000 / 3 | 100.0x | 2.00e-05 | 1.0e-06 |" in text
    assert "| 1000 | 1 | 4.00 | 1.00 | 0.500 | 25% | 8.00 | 2.0x / 8.0x |" in text  # the reference's best sample
    assert "cut or skipped: check, full_k3" in text


@pytest.mark.integration  # fresh processes
def test_fixed_costs_runs_without_its_split(tmp_path):
    out = tmp_path / "fixed_costs.json"
    load("fixed_costs").main(["--tiny", "--no-split", "--out", str(out)])
    run = json.loads(out.read_text())["runs"][0]
    assert run["split"]["segments"] == [] and run["summary"]["cold_s"] > 0 and run["summary"]["warm_s"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "1000", "--ref-batch", "300"], "--ref-batch 300 must divide every N"),
        (["--reference-dir", "/nonexistent"], "--reference-dir: no utils/idealscore.py"),
    ],
)
def test_reference_driver_rejects_bad_input(argv, message):
    with pytest.raises(ValueError, match=message):
        load("reference_gpu").main(argv)
