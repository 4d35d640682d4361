"""Figures of the calibration and evaluation: k schedules, agreement violins and side-by-side sample grids (PNG).

matplotlib is imported inside each function (``import elsjax`` stays light) and used through its object API on an
Agg canvas, so no global backend is switched and no window opens. Each function writes one file and returns its
path (parent directories are created).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from elsjax import figures
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.png"
    >>> figures.agreement_violin({"ELS": np.array([0.9, 0.8, 0.95]), "IS": np.array([0.4, 0.5, 0.3])}, path).exists()
    True
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["calibration_plot", "agreement_violin", "comparison_grid"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def calibration_plot(calibration, path, *, published: Sequence[int] | None = None, title: str = "") -> pathlib.Path:
    """k against t: each seed's best k (jittered points), the per-step median (line) and a published schedule.

    Args:
      calibration: a :class:`elsjax.calibrate.Calibration` (or its ``to_dict()``).
      path: the PNG to write.
      published: a schedule in the same layout (entry j at t = (j + 1) / n, n entries), drawn dashed.
      title: the figure title.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Example:
      >>> import numpy as np, tempfile, pathlib
      >>> from elsjax.calibrate import Calibration
      >>> c = Calibration((3, 5), [0.5, 1.0], np.array([[3, 5], [3, 3]]), [3, 3], [3, 3], np.ones((2, 2, 2)), 0, None)
      >>> calibration_plot(c, pathlib.Path(tempfile.mkdtemp()) / "c.png", published=[3, 5]).suffix
      '.png'
    """
    if isinstance(calibration, dict):
        from elsjax.calibrate import Calibration

        calibration = Calibration.from_dict(calibration)
    times = np.asarray(calibration.times, np.float64)
    per_seed = np.asarray(calibration.per_seed)
    n = times.size
    if published is not None and len(published) != n:
        raise ValueError(f"published: expected {n} entries (one per calibrated step), got {len(published)}")
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    step = 1.0 / n
    rng = np.random.default_rng(0)  # fixed jitter: the same calibration draws the same picture
    jitter_t = rng.uniform(-0.3, 0.3, per_seed.shape) * step
    jitter_k = rng.uniform(-0.3, 0.3, per_seed.shape)  # candidates are 2 apart: points stay by their k
    ax.scatter(
        np.broadcast_to(times, per_seed.shape) + jitter_t,
        per_seed + jitter_k,
        s=14,
        alpha=0.45,
        color="tab:blue",
        label=f"best k per seed ({per_seed.shape[0]} seeds)",
        linewidths=0,
    )
    ax.plot(times, calibration.median, "-o", color="tab:red", ms=4, label="median (lower)")
    if published is not None:
        ax.plot(times, [int(k) for k in published], "--", color="black", label="published")
    ax.set_yticks(list(calibration.ks))
    ax.set_xlim(0, 1 + step / 2)
    ax.set_xlabel("t (entry j at t = (j + 1) / n)")
    ax.set_ylabel("k")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    kind = getattr(calibration, "kind", "")
    ax.set_title(title or (f"{kind} calibration" if kind else "calibration"))
    return _save(fig, path)


def agreement_violin(per_seed_r: Mapping[str, np.ndarray], path, *, title: str = "") -> pathlib.Path:
    """The distribution of the per-seed r of each machine: violins with the median marked, the seeds as points.

    Args:
      per_seed_r: ``{machine name: r [n_seeds]}``; NaN values are left out.
      path: the PNG to write.
      title: the figure title.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Example:
      >>> import numpy as np, tempfile, pathlib
      >>> agreement_violin({"LS": np.array([0.7, np.nan])}, pathlib.Path(tempfile.mkdtemp()) / "v.png").name
      'v.png'
    """
    if not per_seed_r:
        raise ValueError("per_seed_r: expected at least one machine")
    names = list(per_seed_r)
    data = []
    for name in names:
        v = np.asarray(per_seed_r[name], np.float64).reshape(-1)
        data.append(v[~np.isnan(v)])
    fig = _figure(max(3.0, 1.3 * len(names) + 1.5), 4)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, v in enumerate(data, start=1):
        if np.unique(v).size >= 2:  # a density needs spread
            parts = ax.violinplot([v], positions=[i], showmedians=False, showextrema=False, widths=0.8)
            for body in parts["bodies"]:
                body.set_alpha(0.35)
        if v.size:
            ax.scatter(i + rng.uniform(-0.12, 0.12, v.size), v, s=10, alpha=0.6, color="black", linewidths=0)
            med = float(np.median(v))
            ax.hlines(med, i - 0.3, i + 0.3, color="tab:red", lw=2)
            ax.annotate(f"{med:.2f}", (i + 0.32, med), va="center", fontsize=8, color="tab:red")
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_xlim(0.4, len(names) + 0.8)
    ax.set_ylabel("Pearson r (machine vs net)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "agreement with the net (median in red)")
    return _save(fig, path)


def comparison_grid(columns: Mapping[str, np.ndarray], path, *, max_rows: int = 8) -> pathlib.Path:
    """Images side by side: one row per seed, one column per source (e.g. seed / net / ELS / LS / IS).

    Args:
      columns: ``{column title: images [B, H, W, C]}`` (same shape for all; C = 1 grey or 3 RGB), values in
        [-1, 1] (shown clipped to that range).
      path: the PNG to write.
      max_rows: show at most this many seeds (the first ones).

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Example:
      >>> import numpy as np, tempfile, pathlib
      >>> x = np.zeros((2, 8, 8, 1))
      >>> comparison_grid({"seed": x, "net": x}, pathlib.Path(tempfile.mkdtemp()) / "g.png").exists()
      True
    """
    if not columns:
        raise ValueError("columns: expected at least one column")
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise ValueError(f"max_rows: expected a positive integer, got {max_rows!r}")
    arrays, shape = {}, None
    for name, images in columns.items():
        arr = np.asarray(images, np.float32)
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.shape[0] < 1:
            raise ValueError(f"columns: {name!r} must be images [B, H, W, C] with C = 1 or 3, got shape {arr.shape}")
        shape = arr.shape if shape is None else shape
        if arr.shape != shape:
            raise ValueError(f"columns: {name!r} has shape {arr.shape}, expected {shape} like the first column")
        arrays[str(name)] = arr
    rows, ncols = min(shape[0], int(max_rows)), len(arrays)
    fig = _figure(1.4 * ncols, 1.4 * rows + 0.3)
    axes = fig.subplots(rows, ncols, squeeze=False)
    for j, (name, arr) in enumerate(arrays.items()):
        for i in range(rows):
            ax = axes[i, j]
            img = np.clip(arr[i], -1.0, 1.0)
            if img.shape[-1] == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow((img + 1.0) / 2.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return _save(fig, path)
