"""Versions of the libraries whose numbers avbench reuses, read from package metadata.

Importing open_clip or torch-fidelity only to read `__version__` costs
seconds; a warm run that answers from the cache need not import them at all.
"""

from __future__ import annotations

from importlib import metadata

# module name -> distribution name
DISTRIBUTIONS = {"open_clip": "open_clip_torch", "torch_fidelity": "torch-fidelity", "torchmetrics": "torchmetrics"}


def installed(module: str) -> str:
    """The installed version of `module`'s distribution, or "absent"."""
    try:
        return metadata.version(DISTRIBUTIONS[module])
    except metadata.PackageNotFoundError:
        return "absent"
