"""Folders that live at the repository's top level but ship inside the package.

`data_manifests/` installs as `avbench.manifests` and `leaderboards/reported/`
as `avbench.reported` (see pyproject.toml). An editable install or a source
checkout has no such packages, so the top-level folder is used there.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def shipped_folder(package: str, checkout_relative: str) -> Path:
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:
        return CHECKOUT / checkout_relative
