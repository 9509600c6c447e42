"""The Python API: the CLI's verbs, for notebooks and scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .models.base import Model
from .record import Record, load_record
from .registry import models as _models


def register_model(name: str, model: type[Model] | str, *, replace: bool = False) -> None:
    """Make a model class (or a "module:Class" string) runnable by name."""
    _models.register(name, model, replace=replace)


def evaluate(model: str | Model, suite: str, **options) -> Record:
    """Run `model` on `suite` like `avbench run`; options are `RunOptions` fields.

    `model` is a registered name or a ready `Model` instance.
    """
    from .runner import RunOptions, run

    instance = None
    if isinstance(model, Model):
        instance, model = model, model.name
    for key in ("data_root", "out", "cache_dir"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    record, _ = run(RunOptions(model=model, suite=suite, **options), model=instance)
    return record


def leaderboard(records: Iterable[Record | str | Path], **options):
    """A pandas DataFrame with one row per record (see avbench.leaderboards)."""
    from .leaderboards import leaderboard as build

    loaded = [r if isinstance(r, Record) else load_record(r) for r in records]
    return build(loaded, **options)


__all__ = ["Model", "evaluate", "leaderboard", "load_record", "register_model"]
