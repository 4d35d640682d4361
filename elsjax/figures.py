"""Figures of the calibration, evaluation, sweeps and provenance: k schedules, agreement violins, agreement per
sweep row, side-by-side sample grids and patch-provenance panels (PNG).

matplotlib is imported inside each function (``import elsjax`` stays light) and used through its object API on an
Agg canvas, so no global backend is switched and no window opens. Each function writes one file, atomically, and
returns its path (parent directories are created).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from elsjax import figures
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.png"
    >>> figures.agreement_violin({"ELS": np.array([0.9, 0.8, 0.95]), "IS": np.array([0.4, 0.5, 0.3])}, path).exists()
    True
"""

from __future__ import annotations

import pathlib
from collections.abc import Collection, Mapping, Sequence

import numpy as np

__all__ = [
    "calibration_plot",
    "agreement_violin",
    "agreement_by_row",
    "comparison_grid",
    "beyond_range",
    "mark_out_of_range",
    "provenance_figure",
    "VISIBLE_OVERSHOOT",
]

# Images are shown clipped to [-1, 1]. Pixels beyond +-VISIBLE_OVERSHOOT are outlined: a net's smaller overshoots
# fleck its whole background and would hide the outline of a real departure.
VISIBLE_OVERSHOOT = 1.1


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> pathlib.Path:
    from elsjax import atomic

    path = pathlib.Path(path)
    with atomic.writing(path) as f:  # a crash or a full disk never leaves half a PNG
        fig.savefig(f, format="png", bbox_inches="tight")
    return path


def calibration_plot(calibration, path, *, published: Sequence[int] | None = None, title: str = "") -> pathlib.Path:
    """k against t: each seed's best k (jittered points), the per-step median (line) and a published schedule; the y
    axis labels every candidate and every published k.

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
    # The candidates and the published values (which may lie outside the candidates) are labelled on the y axis.
    ticks = sorted({int(k) for k in calibration.ks} | {int(k) for k in (published or [])})
    ax.set_yticks(ticks)
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


def agreement_by_row(
    panels: Mapping[str, Mapping[str, Sequence[float | None]]],
    rows: Sequence,
    path,
    *,
    reference: Mapping[str, Mapping[str, Sequence[float | None]]] | None = None,
    xlabel: str = "",
    title: str = "",
) -> pathlib.Path:
    """The median agreement of each machine across the rows of a sweep, one panel per net step count.

    Numeric ``rows`` (e.g. the net's training steps of one configuration) give a curve per machine; other rows
    (names) give a column of points per row. ``reference`` values (the paper's) are drawn hollow for named rows and as
    dashed levels for numeric ones.

    Args:
      panels: ``{panel title: {machine: median r per row}}``; None for a value a row lacks.
      rows: one label per row: numbers (an x axis) or names (categories).
      path: the PNG to write.
      reference: ``{panel title: {machine: value per row}}`` in the layout of ``panels``; None where unknown.
      xlabel: the x-axis label.
      title: the figure title.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Example:
      >>> import tempfile, pathlib
      >>> p = {"net 20 steps": {"ELS": [0.7, 0.8], "IS": [0.4, None]}}
      >>> agreement_by_row(p, [1200, 2400], pathlib.Path(tempfile.mkdtemp()) / "a.png").suffix
      '.png'
    """
    if not panels:
        raise ValueError("panels: expected at least one panel")
    rows = list(rows)
    if not rows:
        raise ValueError("rows: expected at least one row")
    for name, series in panels.items():
        for machine, values in series.items():
            if len(values) != len(rows):
                raise ValueError(f"panels: {name!r}/{machine!r} has {len(values)} values for {len(rows)} rows")
    numeric = all(isinstance(r, (int, float, np.integer, np.floating)) and not isinstance(r, bool) for r in rows)
    x = np.asarray(rows, np.float64) if numeric else np.arange(len(rows), dtype=np.float64)
    reference = reference or {}
    fig = _figure(max(5.0, 4.0 * len(panels)), 4 if numeric else 4.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    machines = list(dict.fromkeys(m for series in panels.values() for m in series))
    colours = {m: f"C{i}" for i, m in enumerate(machines)}

    def values(series, machine):
        return np.asarray([np.nan if v is None else float(v) for v in series.get(machine, [None] * len(rows))])

    for ax, (name, series) in zip(axes, panels.items()):
        for machine in series:
            y = values(series, machine)
            ax.plot(x, y, "-o" if numeric else "o", color=colours[machine], ms=5, label=machine)
            ref = values(reference.get(name, {}), machine)
            if numeric:
                for level in np.unique(ref[~np.isnan(ref)]):
                    ax.axhline(level, ls="--", lw=1, color=colours[machine], alpha=0.7)
            else:
                ax.plot(x, ref, "o", mfc="none", color=colours[machine], ms=8)
        if numeric:
            ax.set_xticks(x)
        else:
            ax.set_xticks(x, [str(r) for r in rows], rotation=30, ha="right", fontsize=8)
            ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("median Pearson r (machine vs net)")
        ax.grid(alpha=0.3)
        ax.set_title(name, fontsize=10)
    if any(reference.values()):
        note = "dashed: the paper's" if numeric else "hollow: the paper's"
        axes[-1].plot([], [], "--" if numeric else "o", color="grey", mfc="none", label=note)  # in the legend
    axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def comparison_grid(
    columns: Mapping[str, np.ndarray], path, *, max_rows: int = 8, unbounded: Collection[str] = ()
) -> pathlib.Path:
    """Images side by side: one row per seed, one column per source (e.g. seed / net / ELS / LS / IS).

    The display clips to [-1, 1], and says so under the grid. A net's samples can leave the data's range, and
    clipping alone would hide how far: each shown image outlines in red its pixels beyond +-:data:`VISIBLE_OVERSHOOT`
    (:func:`mark_out_of_range`), and a column with such pixels gives their share (over all its images) under its
    title. Columns named in ``unbounded`` (the initial noise) are only clipped.

    Args:
      columns: ``{column title: images [B, H, W, C]}`` (same shape for all; C = 1 grey or 3 RGB), the data in
        [-1, 1].
      path: the PNG to write.
      max_rows: show at most this many seeds (the first ones).
      unbounded: titles of columns whose values are not images in [-1, 1] (e.g. the seed's noise): not marked.

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
    fig = _figure(1.4 * ncols, 1.4 * rows + 0.4)
    axes = fig.subplots(rows, ncols, squeeze=False)
    for j, (name, arr) in enumerate(arrays.items()):
        marked = name not in unbounded
        for i in range(rows):
            _show(axes[i, j], arr[i])
            if marked:
                mark_out_of_range(axes[i, j], arr[i])
        out = float(np.mean(beyond_range(arr))) if marked else 0.0
        note = f"\n{out:.0%} beyond \u00b1{VISIBLE_OVERSHOOT:g}" if out else ""
        axes[0, j].set_title(name + note, fontsize=8 if out else 9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    bottom = axes[-1, 0].get_position().y0  # the note sits just under the grid
    fig.text(0.5, bottom - 0.01, f"shown clipped to [-1, 1]; red outlines: pixels beyond \u00b1{VISIBLE_OVERSHOOT:g}",
             ha="center", va="top", fontsize=8)  # fmt: skip
    return _save(fig, path)


def beyond_range(images, bound: float = VISIBLE_OVERSHOOT) -> np.ndarray:
    """Which pixels of ``images`` ``[..., H, W, C]`` have a value in some channel beyond ``+-bound``: a bool
    ``[..., H, W]``.

    Example:
      >>> import numpy as np
      >>> beyond_range(np.array([[[[0.5], [-1.05]], [[1.2], [0.0]]]])).tolist()
      [[[False, False], [True, False]]]
    """
    return np.abs(np.asarray(images, np.float32)).max(axis=-1) > bound


def mark_out_of_range(ax, image, bound: float = VISIBLE_OVERSHOOT) -> float:
    """Outlines in red the pixels of ``image`` ``[H, W, C]`` whose value in any channel lies beyond ``+-bound``, on
    an axes that shows it; returns their share of the image's pixels.

    Example:
      >>> import numpy as np
      >>> from matplotlib.figure import Figure
      >>> ax = Figure().subplots()
      >>> image = np.zeros((4, 4, 1)); image[:2] = 1.5; image[2] = 1.05
      >>> mark_out_of_range(ax, image), len(ax.collections) > 0
      (0.5, True)
    """
    beyond = beyond_range(image, bound)
    if beyond.any():
        ax.contour(beyond, levels=[0.5], colors="red", linewidths=0.6)
    return float(np.mean(beyond))


def _show(ax, img, title: str = "") -> None:
    """An image in [-1, 1] (``[H, W, 1]`` grey or ``[H, W, 3]`` colour), without ticks."""
    img = np.clip(np.asarray(img, np.float32), -1.0, 1.0)
    if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow((img + 1.0) / 2.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _palette(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i)[:3] for i in range(n)]


OTHER_SOURCE = (0.72, 0.72, 0.72)  # pixels whose source is not in the legend
COMMON_SOURCE = (0.12, 0.12, 0.12)  # pixels whose top patch is common (occurs in many places): no one source
NO_SOURCE = (1.0, 1.0, 1.0)


def _source_rgb(source, ids, colours, common=None):
    rgb = np.empty(source.shape + (3,), np.float32)
    rgb[...] = OTHER_SOURCE
    rgb[source < 0] = NO_SOURCE
    for idx, colour in zip(ids, colours):
        rgb[source == idx] = colour
    if common is not None:
        rgb[common] = COMMON_SOURCE
    return rgb


def provenance_figure(
    path,
    *,
    sample,
    mosaic,
    source,
    entropy,
    estimates,
    t,
    k,
    train,
    labels=None,
    count=None,
    common: int = 10,
    shown: Sequence[int] | None = None,
    legend: int = 8,
    title: str = "",
) -> pathlib.Path:
    """One sample's patch provenance at a glance (docs/maths.md §11).

    Top row: the sample, its mosaic (each pixel the centre value of its heaviest training patch), the provenance
    map at the last step (each pixel coloured by the training image of its heaviest patch; the most used images in
    colour, the rest grey), the entropy map at the last step, and the most used training images as thumbnails
    with their colour and share of pixels. Middle rows, at the ``shown`` steps: the clean estimate, the provenance
    map and the entropy map. Bottom: the mean entropy and the number of distinct source images against t, and the
    patch size k of each step.

    Args:
      path: the PNG to write.
      sample: ``[H, W, C]`` in [-1, 1].
      mosaic: ``[H, W, C]`` in [-1, 1].
      source: ``[S, H, W]`` int, the training image of each pixel's heaviest entry at each recorded step (-1: none).
      entropy: ``[S, H, W]`` posterior entropy (nats).
      estimates: ``[S, H, W, C]`` the clean estimate at each recorded step.
      t: ``[S]`` the steps' times (descending).
      k: ``[S]`` the steps' patch sizes (0 for IS).
      train: ``[N, H, W, C]`` the training images ``source`` indexes (for the thumbnails).
      labels: ``[N]`` their classes (shown beside the thumbnails), or None.
      count: ``[S, H, W]`` occurrences of each pixel's heaviest entry, or None. Pixels whose top patch occurs at
        least ``common`` times (a flat background patch occurs thousands of times) are drawn dark and left out of
        the legend: the representative image of such a patch is only its first occurrence.
      common: see ``count``.
      shown: indices into the S recorded steps to draw as maps (default: five spread out, the last included).
      legend: thumbnails in the legend (most used first).
      title: the figure title.

    Returns:
      ``path`` as a :class:`pathlib.Path`.

    Example:
      >>> import numpy as np, tempfile, pathlib
      >>> rng = np.random.default_rng(0)
      >>> train = rng.uniform(-1, 1, (3, 8, 8, 1))
      >>> src = rng.integers(0, 3, (2, 8, 8))
      >>> provenance_figure(pathlib.Path(tempfile.mkdtemp()) / "p.png", sample=train[0], mosaic=train[0],
      ...                   source=src, entropy=rng.uniform(0, 2, (2, 8, 8)), estimates=train[:2], t=[0.9, 0.1],
      ...                   k=[3, 5], train=train).suffix
      '.png'
    """
    source = np.asarray(source)
    entropy = np.asarray(entropy, np.float32)
    estimates = np.asarray(estimates, np.float32)
    t, k = np.asarray(t, np.float64), np.asarray(k)
    shown = _checked_steps(source, entropy, estimates, t, k, shown)
    is_common = np.zeros(source.shape, bool) if count is None else np.asarray(count) >= common
    ids, shares = _most_used_sources(source[-1], is_common[-1], legend)
    colours = _palette(len(ids))
    source_rgb = lambda step: _source_rgb(source[step], ids, colours, is_common[step])
    vmax = max(float(entropy.max()), 1e-6)

    cols = max(len(shown), 4)
    fig = _figure(1.55 * (cols + 3), 1.55 * 4 + 2.6)
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1.25, 3, 1.6])
    head = top.subplots(1, 5, gridspec_kw={"width_ratios": [1, 1, 1, 1.25, 2.8], "wspace": 0.25})
    _show(head[0], sample, "sample")
    _show(head[1], mosaic, "mosaic of top patches")
    head[2].imshow(source_rgb(-1), interpolation="nearest")
    head[2].set_title("source image", fontsize=8)
    im = head[3].imshow(entropy[-1], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
    head[3].set_title(f"entropy (t = {t[-1]:.2f})", fontsize=8)
    for ax in head[2:4]:
        ax.set_xticks([])
        ax.set_yticks([])
    top.colorbar(im, ax=head[3], fraction=0.046, pad=0.03, label="nats")
    note = "" if count is None else f"; dark: common patches (>= {common} occurrences)"
    _legend_thumbnails(head[4], note, train=train, labels=labels, ids=ids, colours=colours, shares=shares)
    _step_maps(middle, cols, shown, estimates=estimates, source_rgb=source_rgb, entropy=entropy, t=t, k=k, vmax=vmax)
    _trajectory_curves(bottom, t=t, k=k, entropy=entropy, source=source)
    if title:  # above the legend's two-line heading, which reaches past the top of the figure
        fig.suptitle(title, fontsize=10, y=1.035, va="bottom")
    return _save(fig, path)


def _checked_steps(source, entropy, estimates, t, k, shown) -> list[int]:
    """The recorded steps to draw as maps (default: five spread out, the last included), after checking that
    every per-step input has the same number of steps."""
    n_steps = source.shape[0]
    if not (entropy.shape == source.shape and estimates.shape[0] == n_steps and t.shape == k.shape == (n_steps,)):
        raise ValueError(
            f"source, entropy, estimates, t, k: expected S = {n_steps} steps each, got shapes {source.shape}, "
            f"{entropy.shape}, {estimates.shape}, {t.shape}, {k.shape}"
        )
    if shown is None:
        shown = sorted({int(round(v)) for v in np.linspace(0, n_steps - 1, min(5, n_steps))})
    shown = [int(s) for s in shown]
    if any(s < 0 or s >= n_steps for s in shown):
        raise ValueError(f"shown: step positions must lie in 0..{n_steps - 1}, got {shown}")
    return shown


def _most_used_sources(final, is_common, legend: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, shares)``: the at most ``legend`` training images that are the source of the most pixels of the
    last step's map (common patches left out), most used first, and their shares of all pixels."""
    ids, counts = np.unique(final[(final >= 0) & ~is_common], return_counts=True)
    order = np.argsort(-counts, kind="stable")[: max(0, int(legend))]
    return ids[order], counts[order] / final.size


def _legend_thumbnails(ax, note: str, *, train, labels, ids, colours, shares) -> None:
    """The most used training images as thumbnails in two rows, framed in their colour, with their share."""
    ax.axis("off")
    ax.set_title(f"most used training images\n(share of pixels at the last step{note})", fontsize=8)
    if not len(ids):
        return
    per_row = max(1, -(-len(ids) // 2))
    for i, (idx, colour, share) in enumerate(zip(ids, colours, shares)):
        r, c = divmod(i, per_row)
        thumb = ax.inset_axes([c / per_row + 0.01, 0.5 * (1 - r) + 0.02, 1 / per_row - 0.02, 0.38])
        _show(thumb, np.asarray(train)[idx])
        for spine in thumb.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(3)
        label = "" if labels is None else f" c{int(np.asarray(labels)[idx])}"
        thumb.set_xlabel(f"#{int(idx)}{label} {100 * share:.0f}%", fontsize=7, labelpad=1)


def _step_maps(subfig, cols: int, shown, *, estimates, source_rgb, entropy, t, k, vmax: float) -> None:
    """At each ``shown`` step, one column: the clean estimate, the provenance map and the entropy map."""
    grid = subfig.subplots(3, cols, squeeze=False)
    for j in range(cols):
        for i in range(3):
            grid[i, j].axis("off")
    for j, s in enumerate(shown):
        step_title = f"t = {t[s]:.2f}" + (f", k = {int(k[s])}" if k[s] else "")
        _show(grid[0, j], estimates[s], step_title)
        grid[0, j].axis("on")
        grid[1, j].imshow(source_rgb(s), interpolation="nearest")
        grid[2, j].imshow(entropy[s], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        for i in range(3):
            grid[i, j].axis("on")
            grid[i, j].set_xticks([])
            grid[i, j].set_yticks([])
    for i, name in enumerate(("clean estimate", "source image", "entropy")):
        grid[i, 0].set_ylabel(name, fontsize=8)


def _trajectory_curves(subfig, *, t, k, entropy, source) -> None:
    """Against t: the mean entropy and the number of distinct source images; beside it, the patch size k."""
    from matplotlib.ticker import MaxNLocator

    curves = subfig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1], "wspace": 0.35})
    ax = curves[0]
    ax.plot(t, entropy.reshape(len(t), -1).mean(axis=1), "-o", ms=3, color="tab:purple", label="mean entropy")
    ax.set_xlabel("t")
    ax.set_ylabel("mean entropy (nats)", color="tab:purple")
    ax.invert_xaxis()  # sampling runs from t near 1 to t near 0
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    distinct = [np.unique(s[s >= 0]).size for s in source]
    twin.plot(t, distinct, "-s", ms=3, color="tab:green", label="distinct source images")
    twin.set_ylabel("distinct source images", color="tab:green")
    twin.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("entropy and distinct sources along the trajectory", fontsize=8)
    ax_k = curves[1]
    ax_k.step(t, k, where="mid", color="black")
    ax_k.plot(t, k, "o", ms=3, color="black")
    ax_k.invert_xaxis()
    ax_k.set_xlabel("t")
    ax_k.set_ylabel("k")
    ax_k.set_yticks(sorted({int(v) for v in k}))
    ax_k.set_title("patch size per step", fontsize=8)
    ax_k.grid(alpha=0.3)
