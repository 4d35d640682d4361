"""What software produced a result: the versions of elsjax, JAX and the other packages, and the state of the code.

Every run's ``record.json`` holds both (:func:`elsjax.runs.write_record`), and a run directory holds the code's
uncommitted changes as ``code.diff`` (:func:`elsjax.runs.start_run`), so that a result can be traced to the exact
code that made it.

Example:
    >>> from elsjax import software
    >>> sorted(software.versions())[:4], sorted(software.code_state()[0])
    (['argv', 'backend', 'elsjax', 'jax'], ['commit', 'dirty', 'source', 'untracked'])
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["PACKAGES", "versions", "code_state"]


# The packages whose versions a record holds (besides elsjax, jax and jaxlib), as pip names them.
PACKAGES = ("numpy", "flax", "optax", "orbax-checkpoint", "ml_collections", "pillow", "matplotlib", "tqdm",
            "tensorflow-datasets")  # fmt: skip


def versions() -> dict:
    """Versions of the software that produced a result (and of the packages in :data:`PACKAGES`), the command
    line."""
    import importlib.metadata

    import jax
    import jaxlib

    import elsjax

    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "elsjax": elsjax.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "packages": packages,
        "argv": list(sys.argv),
    }


@functools.lru_cache(maxsize=1)
def code_state() -> tuple[dict, str]:
    """``(state, diff)`` of the code this process runs, read once: the git ``commit`` of the elsjax checkout,
    whether it is ``dirty`` (with the ``untracked`` files, at most 50), and the text of ``git diff HEAD``
    (empty when clean). Without git or outside a checkout (an installed package): ``commit`` None and the
    ``source`` directory.
    """
    import elsjax

    root = Path(elsjax.__file__).resolve().parents[1]
    state = {"source": str(root), "commit": None, "dirty": None, "untracked": []}

    def git(*args) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise OSError(done.stderr.strip())
        return done.stdout

    if not (root / ".git").exists():
        return state, ""
    try:
        state["commit"] = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain")
        diff = git("diff", "HEAD") if status.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return state, ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    state["dirty"] = bool(status.strip())
    state["untracked"] = untracked[:50] + ([f"... and {len(untracked) - 50} more"] if len(untracked) > 50 else [])
    return state, diff
