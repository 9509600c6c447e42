"""A run's model, built only when an item needs it.

Building a model (networks, checkpoint loading, their libraries' imports)
can cost more than re-scoring a finished run. The run key needs only the
model's identity (`describe()`), so identities are kept in an index keyed by
the model's class and source code, the checkpoint file's path, size and
modification time, and the suite. A known identity lets a run whose outputs
are all on disk skip building the model; an unknown one builds it at once,
so a bad checkpoint is still reported before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..cache import JsonIndex, stable_hash
from ..versions import source_fingerprint
from .base import Model


def _checkpoint_fingerprint(checkpoint: str | None) -> list | None:
    """Path, size and modification time of the checkpoint file, or of every file under a checkpoint folder."""
    if checkpoint is None:
        return None
    root = Path(checkpoint)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    found = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            found.append([str(path), "missing"])
            continue
        found.append([os.path.abspath(path), info.st_size, info.st_mtime_ns])
    return found


class ModelHandle:
    """A model class, its identity, and its instance once built."""

    def __init__(self, model_cls: type[Model], build: Callable[[], Model], identity: dict | None = None):
        self.cls, self._build = model_cls, build
        self._instance: Model | None = None
        self.identity = identity if identity is not None else self.get().describe()

    def get(self) -> Model:
        if self._instance is None:
            self._instance = self._build()
        return self._instance


def open_model(model_cls: type[Model], checkpoint: str | None, device: str, suite, index_folder: Path) -> ModelHandle:
    """A handle whose model is built now only if its identity is not in the index."""
    key = stable_hash(
        {
            "class": [model_cls.__module__, model_cls.__qualname__, source_fingerprint(model_cls.__module__)],
            "checkpoint": _checkpoint_fingerprint(checkpoint),
            "suite": [suite.name, suite.version, suite.data, suite.manifest_sha256],
        }
    )
    index = JsonIndex(Path(index_folder) / f"{model_cls.name}.json", "model identity index")
    handle = ModelHandle(
        model_cls, lambda: model_cls.from_checkpoint(checkpoint, device=device, suite=suite), index.get(key)
    )
    index.put(key, handle.identity)
    index.save()
    return handle
