"""Merges the outputs of experiments/gpu_run.sh (its $WORK folder) into one JSON and one markdown report.

Reads what the phases left (bench.py's, reference_gpu.py's and fixed_costs.py's JSON, the calibration's
record.json and calibration.json, every phase's console text and the phase timings) and writes, in OUT:

* ``gpu_results.json``: all of it, merged (``phases``, ``oracle``, ``evals``, ``reference``, ``samples``,
  ``calibration``, ``logs``); a phase that failed or was cut has its log and no numbers;
* ``gpu_report.md``: the tables (elsjax against its floors and against the authors' code, cold and warm samples,
  the calibration), then printed.

Usage:
  python experiments/gpu_report.py WORK OUT
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def phases(work: Path) -> list[dict]:
    path = work / "phases.tsv"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [dict(zip(("name", "rc", "seconds", "limit_s"), line.split("\t"))) for line in lines]


def oracle(log: str) -> dict:
    """The oracle tests' verdicts and the worst errors they print, from the check phase's ``pytest -v -s`` output
    (where a test's own printing can come between its name and its verdict)."""
    verdicts, current = {}, None
    for line in log.splitlines():
        name = re.match(r"(tests/\S+::\S+)", line)
        current = name.group(1) if name else current
        verdict = re.search(r"\b(PASSED|FAILED|ERROR)\b", line)
        if current and verdict and current not in verdicts:
            verdicts[current] = verdict.group(1)
    return {
        "verdicts": verdicts,
        "passed": sum(v == "PASSED" for v in verdicts.values()),
        "failed": [t for t, v in verdicts.items() if v != "PASSED"],
        "worst": re.findall(r"(scores_\w+\.npz \{[^}]*\})", log),
        "summary": next(iter(re.findall(r"^=+ (.*(?:passed|failed|error).*) =+$", log, flags=re.M)[-1:]), ""),
    }


def collect(work: Path) -> dict:
    logs = {p.stem: p.read_text(errors="replace") for p in sorted(work.glob("*.txt"))}
    evals = []
    for path in [work / "evals.json", *sorted(work.glob("full_k*.json"), key=lambda p: int(p.stem[6:]))]:
        bench = read_json(path)
        for row in (bench or {}).get("evals", []):
            evals.append({"data": bench.get("data", ""), "phase": path.stem, **row})
    calibration = read_json(work / "calibrate" / "record.json")
    if calibration is not None:
        calibration["calibration"] = read_json(work / "calibrate" / "calibration.json")
    devices = next(
        (read_json(work / f)["devices"] for f in ("evals.json", "reference.json") if read_json(work / f)), []
    )
    return {
        "devices": devices,
        "phases": phases(work),
        "oracle": oracle(logs.get("check", "")),
        "evals": evals,
        "reference": read_json(work / "reference.json"),
        "samples": {f"batch{b}": read_json(work / f"samples_b{b}.json") for b in (1, 16)},
        "calibration": calibration,
        "train": {arch: read_json(work / f"train_{arch}.json") for arch in ("resnet", "unet")},
        "logs": logs,
    }


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(v) for v in row) + " |" for row in rows
    ]


def ms(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:,.0f}" if seconds >= 0.1 else f"{seconds * 1e3:.3g}"


def evals_section(evals: list[dict]) -> list[str]:
    # Any compilation count bench.py records (its key names 'compil...') gets a column of its own.
    extra = sorted({key for row in evals for key in row if "compil" in key})
    rows = [
        [
            row["data"].split(" ")[0],
            row["N"],
            row["k"],
            row["batch"],
            ms(row["seconds_per_eval"]),
            ms(row["seconds_per_image"]),
            ms(row["exp_floor_s"]),
            ms(row["matmul_floor_s"]),
            f"{100 * row['ratio_to_exp_matmul_floor']:.0f}%",
            f"{row['distinct_fraction']:.2f}",
            f"{row['build_s']:.2f}",
            *(row.get(key, "-") for key in extra),
        ]  # fmt: skip
        for row in evals
    ]
    header = ["data", "N", "k", "B", "ms / eval", "ms / image", "exp floor ms", "matmul floor ms",
              "exp+matmul floor / time", "distinct", "build s (host)", *extra]  # fmt: skip
    return ["## Evaluations: elsjax's exact ELS, compiled, warm (best of the repeats)", "", *table(header, rows)]


def reference_section(ref: dict) -> list[str]:
    rows = []
    for r in ref["evals"]:
        tf32 = f"{ms(r['tf32']['warm_s'])} ({r['max_abs_diff_tf32']:.1e})" if "tf32" in r else "-"
        rows.append([
            r["N"], r["k"], f"{ms(r['fp32']['first_s'])} / {ms(r['fp32']['warm_s'])}", tf32,
            f"{ms(r['elsjax']['first_s'])} / {ms(r['elsjax']['warm_s'])}", f"{r['speedup_warm_fp32']:.1f}x",
            f"{r['max_abs_diff_fp32']:.2e}", f"{r['max_abs_diff_fp32'] / r['ref_max_abs']:.1e}",
        ])  # fmt: skip
    header = ["N", "k", "reference ms (first / warm)", "reference TF32 ms (max abs diff)",
              "elsjax ms (first / warm)", "reference / elsjax, warm", "max abs diff of the score",
              "relative to max abs score"]  # fmt: skip
    lines = [
        "## elsjax and the authors' PyTorch code: one ELS evaluation, same device, same inputs",
        "",
        f"torch {ref.get('torch')} on {ref.get('device')}; batch 1, t = {ref.get('t')}; the reference streams "
        f"the training set in loader batches of {ref.get('ref_batch')} images with TF32 off (its TF32 column: "
        "PyTorch's default for convolutions); elsjax at Precision.HIGHEST. 'first' is the first call of a shape "
        "(compilation for elsjax, algorithm choice for cuDNN); elsjax's dictionary build is apart.",
        "",
        *table(header, rows),
    ]
    for s in ref["samples"]:
        lines += [
            "",
            f"19-step sample ({ref.get('schedule')}), N={s['N']}, one seed: reference "
            f"{' then '.join(f'{v:.2f}' for v in s['reference_s'])} s; elsjax "
            f"{' then '.join(f'{v:.2f}' for v in s['elsjax_s'])} s in the same process as its evaluations "
            f"(the first call compiles); the samples differ by at most {s['max_abs_diff']:.2g}.",
        ]
    return lines


def samples_section(samples: dict, ref: dict | None) -> list[str]:
    ref_samples = {s["N"]: min(s["reference_s"]) for s in (ref or {}).get("samples", [])}
    rows, splits = [], []
    for result in samples.values():
        for run in (result or {}).get("runs", []):
            s, n, b = run["summary"], run["N"], result["batch"]
            ref_s = ref_samples.get(n) if b == 1 else None
            rows.append([
                n, b, f"{s['cold_s']:.2f}", f"{s['warm_s']:.2f}", f"{s['evals_s']:.3f}", f"{100 * s['fixed_share']:.0f}%",
                "-" if ref_s is None else f"{ref_s:.2f}",
                "-" if ref_s is None else f"{ref_s / s['cold_s']:.1f}x / {ref_s / s['warm_s']:.1f}x",
            ])  # fmt: skip
            if run["split"]["segments"]:
                splits.append([n, b, *(f"{s[f'sum_{key}_s']:.2f}" for key in ("build", "transfer", "trace", "compile", "eval"))])  # fmt: skip
    header = ["N", "B", "elsjax cold s", "elsjax warm s", "its evaluations s", "fixed share of cold",
              "reference s", "reference / elsjax (cold / warm)"]  # fmt: skip
    lines = [
        "## 19-step samples (MNIST_ResNet_circular)",
        "",
        "Cold: the first call of a fresh process (host builds, transfers, compilation, evaluations); warm: the same "
        "call again in that process; its evaluations: the compiled segments alone. Reference: its best sample "
        "time in the reference phase.",
        "",
        *table(header, rows),
    ]
    if splits:
        lines += ["", "Where a cold sample's time goes (a separate fresh process, phase by phase):", ""]
        lines += table(["N", "B", "build s", "transfer s", "trace s", "compile s", "eval s"], splits)
    return lines


def calibration_section(cal: dict) -> list[str]:
    t, cfg = cal["timings"], cal["config"]
    split = ", ".join(f"{key[10:-2]} {v:.1f} s" for key, v in t.items() if key.startswith("calibrate_") and key != "calibrate_s")  # fmt: skip
    return [
        "## One calibration (elsjax calibrate)",
        "",
        f"Net {cal['net']['path']} (step {cal['net']['step']}, unconditional: one class group), kind {cfg['kind']}, "
        f"ks {cfg['ks']}, {cfg['n_seeds']} seeds x {cfg['num_steps']} steps, {cal['data']['subset']}: "
        f"{t['total_s']:.1f} s in all (loading {t.get('load_s', 0):.1f} s; calibration {t['calibrate_s']:.1f} s: {split}).",
        f"Median k per step: {','.join(map(str, cal['median']))}.",
    ]


def report(results: dict) -> str:
    lines = ["# The GPU run", ""]
    check = results["logs"].get("check", "").split("=====")[0].splitlines()  # the lines before pytest's
    lines += [f"    {line}" for line in check if line.strip()] + [""]
    lines += table(
        ["phase", "exit", "s", "limit s"], [[p["name"], p["rc"], p["seconds"], p["limit_s"]] for p in results["phases"]]
    )
    o = results["oracle"]
    if "check" in results["logs"]:
        failed = f"{len(o['failed'])} failed" + (f" ({', '.join(o['failed'])})" if o["failed"] else "")
        lines += [
            "",
            f"Oracle tests on the device: {o['passed']} passed, {failed}; pytest: {o['summary'] or 'no summary line'}. "
            f"Worst relative errors: {'; '.join(o['worst']) or '-'}.",
        ]
    lines += [""]
    if results["evals"]:
        lines += evals_section(results["evals"]) + [""]
    if results["reference"]:
        lines += reference_section(results["reference"]) + [""]
    if any(results["samples"].values()):
        lines += samples_section(results["samples"], results["reference"]) + [""]
    if results["calibration"]:
        lines += calibration_section(results["calibration"]) + [""]
    trained = {arch: r for arch, r in results.get("train", {}).items() if r}
    if trained:
        lines += ["Training the paper-width nets (experiments/train_cost.py, batch 128, after one compiling step):", ""]
        lines += table(["net", "result"], [[arch, json.dumps(r, sort_keys=True)[:300]] for arch, r in trained.items()])
        lines += [""]
    missing = [p["name"] for p in results["phases"] if p["rc"] != "0"]
    if missing:
        lines += [
            f"Phases that failed, were cut or skipped: {', '.join(missing)} (their logs are in gpu_results.json)."
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: python experiments/gpu_report.py WORK OUT")
    work, out = Path(argv[0]), Path(argv[1])
    results = collect(work)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_results.json").write_text(json.dumps(results, indent=1))
    text = report(results)
    (out / "gpu_report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
