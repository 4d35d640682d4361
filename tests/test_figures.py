"""elsjax.figures: each figure writes a non-empty PNG from tiny arrays; bad input fails early."""

import subprocess
import sys

import numpy as np
import pytest

from elsjax import figures
from elsjax.calibrate import Calibration

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 1000


def calibration(n=5, seeds=4):
    rng = np.random.default_rng(0)
    ks = (3, 5, 7, 9)
    per_seed = rng.choice(ks, size=(seeds, n))
    return Calibration(
        ks,
        [(j + 1) / n for j in range(n)],
        per_seed,
        [3, 5, 5, 7, 9],
        [3, 5, 5, 7, 9],
        rng.uniform(size=(seeds, n, 4)).astype(np.float32),
        0,
        None,
        "bbels",
    )


def test_calibration_plot(tmp_path):
    c = calibration()
    out = figures.calibration_plot(c, tmp_path / "sub" / "cal.png", published=[3, 3, 5, 7, 7], title="MNIST bbELS")
    assert out == tmp_path / "sub" / "cal.png" and is_png(out)
    assert is_png(figures.calibration_plot(c.to_dict(), tmp_path / "from_dict.png"))
    with pytest.raises(ValueError, match="^published"):
        figures.calibration_plot(c, tmp_path / "bad.png", published=[3, 5])


def test_agreement_violin(tmp_path):
    rng = np.random.default_rng(1)
    r = {
        "bbELS": rng.uniform(0.8, 1, 20),
        "LS": rng.uniform(0.5, 0.9, 20),
        "IS": np.r_[rng.uniform(0, 0.6, 19), np.nan],
        "one": np.array([0.5]),
        "none": np.array([np.nan]),
    }
    out = figures.agreement_violin(r, tmp_path / "violin.png", title="r")
    assert is_png(out)
    with pytest.raises(ValueError, match="^per_seed_r"):
        figures.agreement_violin({}, tmp_path / "bad.png")


@pytest.mark.parametrize("rows", [[1200, 2400, 3600], ["a", "b", "c"]])
def test_agreement_by_row(tmp_path, rows):
    panels = {"150 steps": {"ELS": [0.8, 0.85, None], "IS": [0.4, 0.4, 0.5]}, "20 steps": {"ELS": [0.7, 0.8, 0.9]}}
    reference = {"150 steps": {"ELS": [0.94, 0.94, 0.94], "IS": [None, None, None]}}
    out = figures.agreement_by_row(panels, rows, tmp_path / "a.png", reference=reference, xlabel="x", title="t")
    assert is_png(out)
    with pytest.raises(ValueError, match="^panels: '20 steps'/'ELS' has 2 values for 3 rows"):
        figures.agreement_by_row({"20 steps": {"ELS": [0.7, 0.8]}}, rows, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="^panels"):
        figures.agreement_by_row({}, rows, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="^rows"):
        figures.agreement_by_row(panels, [], tmp_path / "bad.png")


@pytest.mark.parametrize("c", [1, 3])
def test_comparison_grid(tmp_path, c):
    rng = np.random.default_rng(2)
    cols = {name: rng.normal(size=(10, 8, 8, c)).astype(np.float32) for name in ["seed", "net", "ELS", "LS", "IS"]}
    assert is_png(figures.comparison_grid(cols, tmp_path / "grid.png", max_rows=3))
    with pytest.raises(ValueError, match="^columns"):
        figures.comparison_grid({"a": cols["seed"], "b": cols["net"][:2]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="^columns"):
        figures.comparison_grid({"a": np.zeros((2, 8, 8, 2))}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="^max_rows"):
        figures.comparison_grid(cols, tmp_path / "bad.png", max_rows=0)


def test_mark_out_of_range_outlines_only_visible_overshoots():
    from matplotlib.figure import Figure

    image = np.zeros((6, 6, 3), np.float32)
    image[:3, :, 1] = -1.05  # out of range, but not visibly: neither outlined nor counted
    ax = Figure().subplots()
    assert figures.mark_out_of_range(ax, image) == 0.0
    assert not ax.collections
    image[0, :3, 2] = 1.2  # one channel beyond 1.1 makes the pixel's outline
    assert figures.mark_out_of_range(ax, image) == 3 / 36
    assert ax.collections


def test_comparison_grid_says_it_clips_and_how_much_it_hides(tmp_path, monkeypatch):
    saved = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.setdefault("fig", fig))
    net = np.zeros((4, 8, 8, 1), np.float32)
    net[0, :2] = 3.0  # 2 rows of 8 in 1 of 4 images: 1/16 of the column's pixels
    noise = np.full_like(net, 2.0)  # the seed's noise is not an image: clipped, never marked
    columns = {"seed": noise, "net": net, "ELS": np.zeros_like(net)}
    figures.comparison_grid(columns, tmp_path / "g.png", max_rows=2, unbounded=("seed",))
    fig = saved["fig"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["seed", "net\n6% beyond \u00b11.1", "ELS"]
    assert any("clipped to [-1, 1]" in t.get_text() and "1.1" in t.get_text() for t in fig.texts)
    outlined = [bool(ax.collections) for ax in fig.axes]  # row by row: seed 0's noise, net, ELS, seed 1's ...
    assert outlined == [False, True, False, False, False, False]


def test_import_elsjax_does_not_import_matplotlib():
    code = "import sys, elsjax, elsjax.figures, elsjax.calibrate, elsjax.evaluate, elsjax.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
