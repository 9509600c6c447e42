"""What code produced a number: library versions (from package metadata) and source fingerprints.

Importing open_clip or torch-fidelity only to read `__version__` costs
seconds; a warm run that answers from the cache need not import them at all.
"""

from __future__ import annotations

import hashlib
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

# module name -> distribution name
DISTRIBUTIONS = {"open_clip": "open_clip_torch", "torch_fidelity": "torch-fidelity", "torchmetrics": "torchmetrics"}


def installed(module: str) -> str:
    """The installed version of `module`'s distribution, or "absent"."""
    try:
        return metadata.version(DISTRIBUTIONS[module])
    except metadata.PackageNotFoundError:
        return "absent"


def source_fingerprint(*modules: str) -> str:
    """sha256 of the Python source behind `modules`: every .py file of each one's package folder.

    Cached results (item media hashes, metric scores) are only as good as the
    code that produced them; a version number does not change while that code
    is being edited, its source does. A top-level module counts as its file alone.
    """
    files: set[Path] = set()
    for module in modules:
        origin = _origin(module)
        if origin is None or origin.suffix != ".py":
            files.add(Path(module))  # built-in or compiled: its name stands for it
        elif "." in module or origin.name == "__init__.py":
            files.update(origin.parent.glob("*.py"))
        else:
            files.add(origin)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def _origin(module: str) -> Path | None:
    """The file a module is (or would be) loaded from; a script run as __main__ included."""
    loaded = sys.modules.get(module)
    if getattr(loaded, "__file__", None):
        return Path(loaded.__file__)
    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None
