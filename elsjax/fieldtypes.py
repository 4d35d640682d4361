"""The typed values of config fields, from text as the command line gives it (or older ``config.json`` files hold
it), from lists and mappings as config files give them, or from the typed values themselves.

Patch sizes, step counts, seed indices and meshes are tuples of ints (:func:`as_ints`); a knob's candidate values a
tuple of numbers (:func:`as_numbers`); scales are a name or a
tuple (:func:`as_scales`); a denoiser's knobs are a dict (:func:`as_knobs`); an evaluation's machines are a tuple of
``{name, denoiser, scales, knobs}`` entries (:func:`as_machines`). Each function takes the field's name (for its
one-line ``ValueError``) and the value.

Example:
    >>> from elsjax import fieldtypes
    >>> fieldtypes.as_machines("machines", "e=bbels:3+3+5,ideal=ideal")[0]
    {'name': 'e', 'denoiser': 'bbels', 'scales': (3, 3, 5), 'knobs': {}}
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

__all__ = ["as_ints", "as_numbers", "as_paths", "as_scales", "as_knobs", "as_machines", "MACHINES_SYNTAX"]


def as_ints(key: str, value) -> tuple[int, ...]:
    """Integers from ``"3,5,7"`` (or spaces or ``+`` between them), a sequence of ints, or ``""`` (none).

    Example:
      >>> as_ints("ks", "3, 5+7"), as_ints("ks", [3, 5]), as_ints("mesh", "")
      ((3, 5, 7), (3, 5), ())
    """
    if isinstance(value, str):
        parts = value.replace(",", " ").replace("+", " ").split()
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = [value]
    out = []
    for part in parts:
        if isinstance(part, str) and part.strip().lstrip("-").isdigit():
            out.append(int(part))
        elif isinstance(part, numbers.Integral) and not isinstance(part, bool):
            out.append(int(part))
        else:
            raise ValueError(f"{key}: expected integers separated by commas (e.g. 3,5,7), got {value!r}")
    return tuple(out)


def as_numbers(key: str, value) -> tuple:
    """Numbers from ``"0.01,0.02"`` (or spaces between them), a sequence of numbers, or ``""`` (none); an integer
    stays an int.

    Example:
      >>> as_numbers("knob_values", "0, 0.02 0.1"), as_numbers("knob_values", [64, 0.5]), as_numbers("knob_values", "")
      ((0, 0.02, 0.1), (64, 0.5), ())
    """
    parts = value.replace(",", " ").split() if isinstance(value, str) else value
    if isinstance(parts, (numbers.Real, str)) or not hasattr(parts, "__iter__"):
        parts = [parts]
    out = []
    for part in parts:
        number = _scalar(part) if isinstance(part, str) else part
        if isinstance(number, bool) or not isinstance(number, numbers.Real):
            raise ValueError(f"{key}: expected numbers separated by commas (e.g. 0.01,0.02), got {value!r}")
        out.append(number)
    return tuple(out)


def as_paths(key: str, value) -> tuple[str, ...]:
    """Paths (or shell patterns) from ``"a,b"``, a sequence of them, or ``""`` (none).

    Example:
      >>> as_paths("parts_from", "runs/a/evaluate, runs/*/evaluate"), as_paths("parts_from", ["x"]), as_paths("p", "")
      (('runs/a/evaluate', 'runs/*/evaluate'), ('x',), ())
    """
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{key}: expected paths separated by commas, got {value!r}")
    return tuple(item.strip() for item in items if item.strip())


def as_scales(key: str, value) -> str | tuple[int, ...]:
    """Scales as a config holds them: a published name or a ``calibration.json`` path (text), a tuple of ints (from
    ``"3,3,5"``, ``"3+3+5"`` or a sequence), or ``""`` (none). Checked where they are used
    (:func:`elsjax.scales.resolve`).

    Example:
      >>> as_scales("scales", "3+3+5"), as_scales("scales", " MNIST_ResNet_zeros"), as_scales("scales", [3, 5])
      ((3, 3, 5), 'MNIST_ResNet_zeros', (3, 5))
    """
    if not isinstance(value, str):
        return as_ints(key, value)
    text = value.strip()
    parts = text.replace(",", " ").replace("+", " ").split()
    return tuple(int(p) for p in parts) if parts and all(p.isdigit() for p in parts) else text


def _scalar(text: str):
    """A knob's value from text: true/false, none, an int, a float, or the text itself."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def as_knobs(key: str, value) -> dict:
    """A denoiser's knobs (its own keyword arguments) from a mapping or from ``"tau=0.05,scope=pixel"``.

    Example:
      >>> as_knobs("knobs", "tau=0.05, scope=pixel"), as_knobs("knobs", {"smoothing": 0.1, "key": 0})
      ({'tau': 0.05, 'scope': 'pixel'}, {'smoothing': 0.1, 'key': 0})
    """
    if isinstance(value, str):
        return _knob_pairs(key, [p for p in value.split(",") if p.strip()], value)
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected NAME=VALUE pairs separated by commas (e.g. tau=0.05), got {value!r}")
    out = {}
    for name, v in value.items():
        if not isinstance(name, str) or not (v is None or isinstance(v, (bool, int, float, str))):
            raise ValueError(f"{key}: {name!r}: expected a number, text, true/false or none, got {v!r}")
        out[name] = v
    return out


def _knob_pairs(key: str, pairs: list[str], given) -> dict:
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{key}: expected NAME=VALUE pairs (e.g. tau=0.05), got {given!r}")
        out[name.strip()] = _scalar(text)
    return out


MACHINES_SYNTAX = (
    "NAME=DENOISER:SCALES entries separated by commas, SCALES a published name, a calibration.json or patch sizes "
    "separated by commas (or '+'), then any :KNOB=VALUE, e.g. e=bbels:3,3,5,5,ls=ls:MNIST_ResNet_zeros,ideal=ideal"
)
_ENTRY_KEYS = ("name", "denoiser", "scales", "knobs")


def _entry_texts(key: str, text: str) -> list[str]:
    """The machine entries of ``text``: comma-separated, where a bare integer continues the previous entry's list of
    patch sizes (``e=els:3,5,5,ideal=ideal`` is ``e=els:3+5+5`` and ``ideal=ideal``; ``e=els:3,5:data_padding=same``
    is ``e=els:3+5:data_padding=same``)."""
    entries = []
    for token in [t.strip() for t in str(text).split(",") if t.strip()]:
        head = token.split(":")[0]  # a bare integer (and any :KNOB=VALUE after it) continues the list
        if "=" not in head and head.lstrip("+").replace("+", "").isdigit():
            if not entries or ":" not in entries[-1]:
                raise ValueError(f"{key}: {token!r} follows no NAME=DENOISER:SCALES entry; expected {MACHINES_SYNTAX}")
            entries[-1] += "+" + token
        else:
            entries.append(token)
    return entries


def _entry_from_text(key: str, text: str) -> dict:
    """``NAME=DENOISER[:SCALES][:KNOB=VALUE...]`` as an entry."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.split(":")[0].strip():
        raise ValueError(f"{key}: expected {MACHINES_SYNTAX}; got {text!r}")
    denoiser, *parts = rest.split(":")
    scales = [p for p in parts if "=" not in p]
    if len(scales) > 1:
        raise ValueError(f"{key}: {text!r} has more than one SCALES; expected {MACHINES_SYNTAX}")
    knobs = _knob_pairs(key, [p for p in parts if "=" in p], text)
    return _entry(key, {"name": name, "denoiser": denoiser, "scales": scales[0] if scales else "", "knobs": knobs})


def _entry(key: str, entry) -> dict:
    if hasattr(entry, "to_dict"):
        entry = entry.to_dict()
    if isinstance(entry, str):
        return _entry_from_text(key, entry)
    if not isinstance(entry, Mapping):
        raise ValueError(f"{key}: expected entries {{name, denoiser, scales, knobs}}, got {entry!r}")
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        raise ValueError(f"{key}: entry {dict(entry)!r}: unknown key(s) {unknown}; known: {list(_ENTRY_KEYS)}")
    name, denoiser = str(entry.get("name", "")).strip(), str(entry.get("denoiser", "")).strip()
    if not name or not denoiser:
        raise ValueError(f"{key}: entry {dict(entry)!r} needs a name and a denoiser")
    scales = as_scales(f"{key}: {name}: scales", entry.get("scales", ""))
    return {
        "name": name,
        "denoiser": denoiser,
        "scales": scales,
        "knobs": as_knobs(f"{key}: {name}: knobs", entry.get("knobs", {})),
    }


def as_machines(key: str, value) -> tuple[dict, ...]:
    """An evaluation's machines: a sequence of entries ``{name, denoiser, scales, knobs}`` (mappings, or text
    ``NAME=DENOISER:SCALES``), or the text of them all (:data:`MACHINES_SYNTAX`).

    ``denoiser`` is a registered name (:func:`elsjax.denoisers.names`); ``scales`` a published name, a tuple of patch
    sizes, a ``calibration.json`` (its median), or empty for a denoiser without a patch size; ``knobs`` the
    denoiser's own keyword arguments. The names and knobs are checked by the evaluation.

    Example:
      >>> [m["scales"] for m in as_machines("machines", "e=els:3,5,5,p=pca_locality:tau=0.02,ideal=ideal")]
      [(3, 5, 5), '', '']
      >>> as_machines("machines", "p=pca_locality:tau=0.02")[0]["knobs"]
      {'tau': 0.02}
    """
    entries = _entry_texts(key, value) if isinstance(value, str) else value
    try:
        return tuple(_entry(key, e) for e in entries)
    except TypeError:
        raise ValueError(
            f"{key}: expected a list of entries {{name, denoiser, scales, knobs}}, got {value!r}"
        ) from None
