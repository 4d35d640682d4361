"""The paper's evaluation (docs/maths.md §8): how well each machine predicts a trained net's samples from the same seeds.

Composable steps, so that a resumable runner can save each part and skip it when it is already done:

1. :func:`net_samples`: the net's DDIM samples (network grid: n steps from the seed at t = 1; 20 and 150 in the
   paper), in batches of seeds;
2. :func:`machine_samples`: a machine's samples with its k schedule (machine grid: 19 steps from the seed at
   t = 0.95, docs/maths.md §3), a thin call of :func:`elsjax.sample`;
3. :func:`agreement`: per (machine, net step count) the per-seed metrics of :func:`elsjax.metrics.compare`
   (machine predicting net: Pearson r over all C*H*W values, r^2, R^2, MSE);
4. :func:`summarize`: a JSON-ready summary: medians over seeds and the fraction of seeds on which a machine's r
   beats the IS's (the paper's "(E)LS > IS" column).

:func:`evaluate` runs the four in order from seeds drawn exactly as :func:`elsjax.calibrate.calibrate` draws them
(:func:`elsjax.calibrate.draw`), so the same ``seed`` gives the same noise and classes in both jobs.

Example:
    >>> import numpy as np
    >>> from elsjax import denoisers, evaluate
    >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    >>> net = denoisers.build("els", train, 3)            # a "net": the ELS machine itself
    >>> ev = evaluate.evaluate(denoisers.Denoiser.eps, net, train=train, n_seeds=2, net_steps=(4,),
    ...                        machines={"els": ("els", [3, 3, 3, 3]), "ideal": ("ideal", None)})
    >>> sorted(ev.summary["median_r"]), ev.net[4].shape, ev.summary["n_seeds"]
    (['els', 'ideal'], (2, 8, 8, 1), 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from elsjax import api, checks, denoisers, metrics, sampler, sharding
from elsjax.calibrate import draw, in_batches
from elsjax.progress import Phase

__all__ = ["Evaluation", "net_samples", "machine_samples", "agreement", "summarize", "evaluate", "DEFAULT_STEPS"]

DEFAULT_STEPS = 20  # entries of a schedule when a denoiser without a patch size is given none (19 machine steps)


class Evaluation(NamedTuple):
    """The result of :func:`evaluate`.

    Attributes:
      seeds: float32 ``[n_seeds, H, W, C]``, the starting noise of every sampler.
      y: int32 ``[n_seeds]`` classes, or None.
      net: ``{num_steps: float32 [n_seeds, H, W, C]}``, the net's samples.
      machine: ``{name: float32 [n_seeds, H, W, C]}``, each machine's samples.
      per_seed: :func:`agreement`'s ``{name: {num_steps: {"r", "r2", "R2", "mse": float64 [n_seeds]}}}``.
      summary: :func:`summarize`'s JSON-ready dict.
    """

    seeds: np.ndarray
    y: np.ndarray | None
    net: dict[int, np.ndarray]
    machine: dict[str, np.ndarray]
    per_seed: dict[str, dict[int, dict[str, np.ndarray]]]
    summary: dict


def net_samples(
    eps_fn: Callable, params, seeds, *, y=None, num_steps: int, batch_size: int | None = None
) -> np.ndarray:
    """The net's DDIM samples (:func:`elsjax.sampler.sample_net`: ``num_steps`` steps from the seed at t = 1).

    Args:
      eps_fn: the net, ``eps_fn(params, x, t, y)`` (static, hashable).
      params: its parameters.
      seeds: ``[B, H, W, C]`` starting noise.
      y: classes ``[B]`` for a class-conditional net, or None.
      num_steps: reverse steps n (20 or 150 in the paper).
      batch_size: seeds per call, to bound memory (default all at once; the last batch is padded, so one
        compilation serves every batch).

    Returns:
      float32 ``[B, H, W, C]``.

    Example:
      >>> import numpy as np
      >>> net = lambda params, x, t, y: params * x
      >>> net_samples(net, np.float32(0.5), np.ones((3, 4, 4, 1)), num_steps=2, batch_size=2).shape
      (3, 4, 4, 1)
    """
    seeds = _check_seeds(seeds)
    num_steps = checks.integer("num_steps", num_steps, 1)
    if batch_size is not None:
        batch_size = checks.integer("batch_size", batch_size, 1)
    y = _check_y(y, seeds.shape[0])

    def run(x, labels=None):
        return sampler.sample_net(eps_fn, params, x, num_steps=num_steps, y=labels)

    return in_batches(run, (seeds,) if y is None else (seeds, y), batch_size).astype(np.float32)


def machine_samples(
    kind: str,
    seeds,
    *,
    train,
    scales: Sequence[int] | None,
    labels=None,
    y=None,
    convention: str = "reference",
    chunk_size: int | None = None,
    progress=None,
    mesh=None,
    cache=None,
    knobs: Mapping | None = None,
) -> np.ndarray:
    """A machine's samples from ``seeds`` (treated as x at t = 0.95): :func:`elsjax.sample` on the machine grid.

    Args:
      kind: a registered denoiser (:func:`elsjax.denoisers.names`).
      seeds: ``[B, H, W, C]`` starting noise.
      train: training images ``[N, H, W, C]`` in [-1, 1].
      scales: the k schedule (n entries, entry j calibrated at t = (j + 1) / n, e.g.
        :attr:`elsjax.calibrate.Calibration.median`); for a denoiser without a patch size only its length matters,
        and None means :data:`DEFAULT_STEPS` entries.
      labels: training labels ``[N]`` (needed with ``y``).
      y: classes ``[B]``, or None (unconditional).
      convention: ``"reference"`` or ``"corrected"``, see :func:`elsjax.sample`.
      chunk_size: dictionary entries per streamed chunk.
      progress: see :func:`elsjax.sampler.sample_machine`.
      mesh: None (one device) or a mesh from :func:`elsjax.make_mesh` (see :func:`elsjax.sample`); the seeds are
        padded (by repetition) to a multiple of its ``"seeds"`` axis and the padding dropped.
      cache: an :class:`elsjax.dictcache.DictionaryCache` for the dictionaries (None: built).
      knobs: the denoiser's own keyword arguments (:attr:`elsjax.denoisers.Denoiser.knobs`).

    Returns:
      float32 ``[B, H, W, C]``.

    Example:
      >>> import numpy as np
      >>> train = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
      >>> machine_samples("ideal", np.zeros((1, 8, 8, 1)), train=train, scales=None).shape
      (1, 8, 8, 1)
    """
    if scales is None:
        if denoisers.get(kind).takes_k:
            raise ValueError(f"scales: the {kind!r} machine needs a k schedule")
        scales = [0] * DEFAULT_STEPS
    mesh = sharding.check_mesh(mesh)
    batch = np.shape(seeds)[0]
    if mesh is not None:
        seeds = sharding.pad_batch(np.asarray(seeds), sharding.axis_size(mesh, sharding.SEEDS))
        y = None if y is None else sharding.pad_batch(np.asarray(y), sharding.axis_size(mesh, sharding.SEEDS))
    out = api.sample(
        kind,
        seeds,
        train=train,
        scales=scales,
        labels=labels,
        y=y,
        convention=convention,
        chunk_size=chunk_size,
        progress=progress,
        mesh=mesh,
        cache=cache,
        **(knobs or {}),
    )
    return out.astype(np.float32) if mesh is None else out.astype(np.float32)[:batch]


def agreement(machine_outputs: Mapping[str, np.ndarray], net_outputs: Mapping[int, np.ndarray]) -> dict:
    """Per machine and per net step count, the per-seed metrics of the machine's samples predicting the net's.

    Args:
      machine_outputs: ``{name: [B, H, W, C]}``.
      net_outputs: ``{num_steps: [B, H, W, C]}``, from the same seeds in the same order.

    Returns:
      ``{name: {num_steps: {"r", "r2", "R2", "mse": float64 [B]}}}`` (see :func:`elsjax.metrics.compare`).

    Example:
      >>> import numpy as np
      >>> x = np.random.default_rng(0).normal(size=(2, 4, 4, 1))
      >>> agreement({"els": x}, {20: x})["els"][20]["r"].tolist()
      [1.0, 1.0]
    """
    if not machine_outputs:
        raise ValueError("machine_outputs: expected at least one machine")
    if not net_outputs:
        raise ValueError("net_outputs: expected at least one net step count")
    nets = {}
    for steps, out in net_outputs.items():
        steps = checks.integer("net_outputs", steps, 1)
        nets[steps] = _check_output(f"net_outputs[{steps}]", out)
    shape = next(iter(nets.values())).shape
    for steps, out in nets.items():
        if out.shape != shape:
            raise ValueError(f"net_outputs[{steps}]: shape {out.shape} differs from {shape}")
    result = {}
    for name, out in machine_outputs.items():
        out = _check_output(f"machine_outputs[{name!r}]", out)
        if out.shape != shape:
            raise ValueError(f"machine_outputs[{name!r}]: shape {out.shape} does not match the net's {shape}")
        result[str(name)] = {steps: metrics.compare(out, net) for steps, net in nets.items()}
    return result


def summarize(per_seed: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]], *, ideal: str | None = "ideal") -> dict:
    """A JSON-ready summary of :func:`agreement`'s output.

    Net step counts become string keys (JSON object keys). Medians are ``numpy.median`` over the seeds whose value
    is defined (NaN, from a constant image, is left out and counted in ``n_undefined``); a median of no values is
    None.

    Args:
      per_seed: ``{name: {num_steps: {"r", "r2", "R2", "mse": [B]}}}``.
      ideal: the name of the IS entry that the others are compared with (``frac_beats_ideal``); None or a name not
        in ``per_seed`` leaves ``frac_beats_ideal`` empty.

    Returns:
      ``{"n_seeds", "machines", "net_steps", "ideal", "median_r", "median_r2", "median_R2", "median_mse",
      "n_undefined", "frac_beats_ideal", "per_seed"}``: ``median_*[name][steps]`` a float or None;
      ``n_undefined[name][steps]`` the count of seeds with r undefined; ``frac_beats_ideal[name][steps]`` the
      fraction of all seeds with ``r(name) > r(ideal)`` (an undefined r never beats) for every other machine;
      ``per_seed[metric][name][steps]`` the list of per-seed values (None where undefined).

    Example:
      >>> import numpy as np
      >>> m = lambda r: {"r": np.array(r), "r2": np.array(r) ** 2, "R2": np.array(r), "mse": np.zeros(3)}
      >>> s = summarize({"els": {20: m([0.9, 0.8, 0.5])}, "ideal": {20: m([0.4, 0.9, 0.3])}})
      >>> s["median_r"]["els"]["20"], s["frac_beats_ideal"], s["n_seeds"]
      (0.8, {'els': {'20': 0.6666666666666666}}, 3)
    """
    if not per_seed:
        raise ValueError("per_seed: expected at least one machine")
    n_seeds, steps_seen = None, []
    values = {}
    for name, by_steps in per_seed.items():
        values[name] = {}
        for steps, m in by_steps.items():
            missing = set(metrics.KEYS) - set(m)
            if missing:
                raise ValueError(f"per_seed: {name!r} at {steps} steps lacks {sorted(missing)}")
            arrays = {key: np.asarray(m[key], np.float64).reshape(-1) for key in metrics.KEYS}
            for key, arr in arrays.items():
                n_seeds = arr.size if n_seeds is None else n_seeds
                if arr.size != n_seeds:
                    raise ValueError(
                        f"per_seed: {name!r} at {steps} steps has {arr.size} values of {key!r}, expected {n_seeds}"
                    )
            values[name][int(steps)] = arrays
            if int(steps) not in steps_seen:
                steps_seen.append(int(steps))
    summary = {
        "n_seeds": int(n_seeds),
        "machines": [str(name) for name in values],
        "net_steps": steps_seen,
        "ideal": ideal if ideal in values else None,
    }
    for key in metrics.KEYS:
        summary[f"median_{key}"] = {
            str(name): {str(s): _median(v[key]) for s, v in by_steps.items()} for name, by_steps in values.items()
        }
    summary["n_undefined"] = {
        str(name): {str(s): int(np.isnan(v["r"]).sum()) for s, v in by_steps.items()}
        for name, by_steps in values.items()
    }
    beats = {}
    if ideal in values:
        for name, by_steps in values.items():
            if name == ideal:
                continue
            beats[str(name)] = {
                str(s): float(np.mean(v["r"] > values[ideal][s]["r"]))
                for s, v in by_steps.items()
                if s in values[ideal]
            }
    summary["frac_beats_ideal"] = beats
    summary["per_seed"] = {
        key: {str(name): {str(s): _json_list(v[key]) for s, v in by_steps.items()} for name, by_steps in values.items()}
        for key in metrics.KEYS
    }
    return summary


def evaluate(
    eps_fn: Callable,
    params,
    *,
    train,
    machines: Mapping[str, tuple[str, Sequence[int] | None]],
    labels=None,
    conditional: bool = False,
    num_classes: int | None = None,
    n_seeds: int = 100,
    seed: int = 0,
    net_steps: Sequence[int] = (20, 150),
    convention: str = "reference",
    ideal: str | None = "ideal",
    batch_size: int | None = None,
    chunk_size: int | None = None,
    progress: Callable | None = None,
    mesh=None,
    cache=None,
) -> Evaluation:
    """The paper's evaluation of a net against score machines (docs/maths.md §8), from seeds drawn by
    :func:`elsjax.calibrate.draw`.

    Args:
      eps_fn: the net, ``eps_fn(params, x, t, y)`` (static, hashable; e.g. :class:`elsjax.nets.NetEpsFn`).
      params: its parameters.
      train: training images ``[N, H, W, C]`` in [-1, 1] (the machines' data).
      machines: ``{name: (kind, scales)}``, e.g. ``{"bbels": ("bbels", cal.median), "ls": ("ls", ls_scales),
        "ideal": ("ideal", None)}``; see :func:`machine_samples`.
      labels: training labels ``[N]``, needed when ``conditional`` (ignored otherwise).
      conditional: class-conditional net and machines; seed ``i`` gets class ``i mod num_classes``.
      num_classes: number of classes (default ``max(labels) + 1``).
      n_seeds: number of seeds (100 in the paper).
      seed: PRNG seed of the noise.
      net_steps: the net's step counts (20: the paper's Table 2; 150: Table 1).
      convention: schedule indexing, see :func:`elsjax.sample`.
      ideal: the machine name that ``frac_beats_ideal`` compares with (see :func:`summarize`).
      batch_size: seeds per net call.
      chunk_size: dictionary entries per streamed chunk.
      progress: optional ``progress(part, phase, done, total, k)``: part ``"net_<steps>"`` (phase ``"sample"``,
        done 1 of 1, k 0) after each net run; a machine name with :func:`elsjax.sampler.sample_machine`'s
        ``(phase, done, total, k)`` during its sampling.
      mesh: None (one device) or a mesh from :func:`elsjax.make_mesh` for the machines (see
        :func:`machine_samples`); the net runs on one device.
      cache: an :class:`elsjax.dictcache.DictionaryCache` for the machines' dictionaries (None: built).

    Returns:
      An :class:`Evaluation`.
    """
    train = checks.train_images(train)
    machines = _check_machines(machines)
    steps_list = [checks.integer("net_steps", s, 1) for s in net_steps]
    if not steps_list or len(set(steps_list)) != len(steps_list):
        raise ValueError(f"net_steps: expected distinct positive step counts, got {list(net_steps)}")
    if conditional and labels is None:
        raise ValueError("labels: a conditional evaluation needs the training labels")
    seeds, y = draw(seed, n_seeds, train.shape[1:], labels=labels, conditional=conditional, num_classes=num_classes)
    report = progress or (lambda *args: None)
    net = {}
    for steps in steps_list:
        net[steps] = net_samples(eps_fn, params, seeds, y=y, num_steps=steps, batch_size=batch_size)
        report(f"net_{steps}", Phase.SAMPLE, 1, 1, 0)
    outputs = {}
    for name, (kind, scales) in machines.items():
        outputs[name] = machine_samples(
            kind,
            seeds,
            train=train,
            scales=scales,
            labels=labels if conditional else None,
            y=y,
            convention=convention,
            chunk_size=chunk_size,
            progress=(lambda *args, _name=name: report(_name, *args)) if progress else None,
            mesh=mesh,
            cache=cache,
        )
    per_seed = agreement(outputs, net)
    return Evaluation(seeds, y, net, outputs, per_seed, summarize(per_seed, ideal=ideal))


# ----------------------------------------------------------------------------------------------------------------
# Helpers and validation (ValueError naming the argument).


def _median(v: np.ndarray):
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else None


def _json_list(v: np.ndarray) -> list:
    return [None if np.isnan(x) else float(x) for x in v]


def _check_seeds(seeds):
    arr = checks.float_array("seeds", seeds, 4)
    checks.layout("seeds", arr.shape)
    return arr


def _check_y(y, batch):
    if y is None:
        return None
    arr = np.asarray(y)
    if arr.shape != (batch,) or not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise ValueError(f"y: expected non-negative integers of shape ({batch},), got {arr.dtype} {arr.shape}")
    return arr.astype(np.int32)


def _check_output(name, value):
    try:
        arr = np.asarray(value)
    except Exception as err:
        raise ValueError(f"{name}: cannot be converted to an array ({err})") from None
    if arr.ndim != 4:
        raise ValueError(f"{name}: expected [B, H, W, C], got shape {arr.shape}")
    return arr


def _check_machines(machines):
    if not isinstance(machines, Mapping) or not machines:
        raise ValueError(f"machines: expected a non-empty mapping {{name: (kind, scales)}}, got {machines!r}")
    out = {}
    for name, spec in machines.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"machines: names must be non-empty strings, got {name!r}")
        if not isinstance(spec, (tuple, list)) or len(spec) != 2:
            raise ValueError(f"machines: {name!r} must map to (kind, scales), got {spec!r}")
        kind, scales = spec
        if kind not in denoisers.names():
            raise ValueError(f"machines: {name!r} has kind {kind!r}, expected one of {denoisers.names()}")
        if scales is None and denoisers.get(kind).takes_k:
            raise ValueError(f"machines: {name!r} ({kind}) needs a k schedule")
        out[name] = (kind, None if scales is None else [s for s in scales])
    return out
