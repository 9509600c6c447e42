"""The typed result record: everything needed to trust and compare a run.

A record is written once per run as `record.json`, beside the per-item table
`items.csv`. Every table, gate and report downstream is a pure function of
records. `schema_version` guards against misreading an older or newer file.

A record names its per-item table by its own file name (`record.json` ->
`items.csv`, `NAME.record.json` -> `NAME.items.csv`) and carries the table's
sha256, so a copied record is never paired with another run's table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import read_json
from .defaults import ITEM_COLUMNS, ITEM_STATUSES, ITEMS_FILE, RECORD_FILE, SCHEMA_VERSION
from .errors import RecordError

if TYPE_CHECKING:
    import pandas as pd

VOLATILE_FIELDS = ("created", "timings", "calls", "environment")


@dataclass
class MetricEntry:
    """One reported number, its interval and where it comes from."""

    name: str  # with backbone: "R@1[clip-synth]"
    value: float | None  # None when no item could be scored
    higher_is_better: bool
    backbone: str
    metric: str  # the plugin that computed it
    task: str
    protocol: int
    n: int  # units scored
    skipped: int = 0  # degenerate units (silent, failed, NaN), never averaged in
    ci_low: float | None = None  # 95% bootstrap interval over items
    ci_high: float | None = None
    spread: float | None = None  # the metric's own spread (KID std over subsets, IS std over splits)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo:
    name: str
    version: str
    entry: str  # "module:Class"
    checkpoint: str | None
    checkpoint_sha256: str | None
    uses_ground_truth: bool


@dataclass
class SuiteInfo:
    name: str
    version: str
    protocol: int
    manifest: str
    manifest_sha256: str
    items_sha256: str  # hash of the evaluated item ids, so partial runs are never confused with full ones
    data: str
    spec_sha256: str  # hash of the whole parsed spec: a spec reusing a built-in name is still another suite


@dataclass
class Counts:
    original: int  # items in the manifest
    effective: int  # items evaluated (after --limit / --allow-missing)
    failed: int = 0  # items whose model output failed
    missing: int = 0  # items left out because their data was missing


@dataclass
class Failure:
    item: str
    task: str
    reason: str


@dataclass
class Record:
    schema_version: int
    avbench_version: str
    created: str
    run_key: str
    model: ModelInfo
    suite: SuiteInfo
    tasks: list[str]
    seed: int
    n: Counts
    metrics: list[MetricEntry]
    item_scores_sha256: str  # sha256 of the per-item table written beside the record
    bootstrap: dict[str, Any]
    device: str
    batch_size: int
    world_size: int = 1
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)  # backbone -> {sha256, verified}
    environment: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)  # model calls, feature passes, cache hits

    def metric(self, name: str) -> MetricEntry:
        for entry in self.metrics:
            if entry.name == name:
                return entry
        raise RecordError(f"record of {self.model.name} on {self.suite.name} has no metric {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return _clean(dataclasses.asdict(self))

    def comparable(self) -> dict[str, Any]:
        """The record without fields that vary between identical runs."""
        return {k: v for k, v in self.to_dict().items() if k not in VOLATILE_FIELDS}


def spec_sha256(suite: Any) -> str:
    """sha256 of a parsed suite spec's canonical JSON; where the spec file lies is left out."""
    from .cache import stable_hash

    return stable_hash({k: v for k, v in dataclasses.asdict(suite).items() if k != "spec_dir"})


def _clean(obj: Any) -> Any:
    """JSON-safe: non-finite floats become None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(record: Record) -> str:
    return json.dumps(record.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _build(cls: Any, value: Any, where: str) -> Any:
    """Build a typed value from JSON, checking every field's type."""
    origin = typing.get_origin(cls)
    if cls is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(cls)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _build(option, value, where)
            except RecordError as exc:
                errors.append(str(exc))
        raise RecordError(errors[0] if errors else f"{where}: unexpected null")
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise RecordError(f"{where}: unknown field(s) {unknown}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: missing field '{f.name}'")
        return cls(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list")
        (inner,) = typing.get_args(cls)
        return [_build(inner, v, _element(where, i, v)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object")
        _, inner = typing.get_args(cls)
        return {str(k): _build(inner, v, f"{where}.{k}") for k, v in value.items()}
    if cls is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where}: expected a number")
        try:
            number = float(value)
        except OverflowError:
            raise RecordError(f"{where}: number too large") from None
        if not math.isfinite(number):  # Python's JSON reader accepts NaN and Infinity; JSON and avbench do not
            raise RecordError(f"{where}: {value!r} is not a finite number")
        return number
    if cls is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: expected an integer")
        return value
    if cls in (str, bool):
        if not isinstance(value, cls):
            raise RecordError(f"{where}: expected {cls.__name__}")
        return value
    raise RecordError(f"{where}: unsupported type {cls}")


def _element(where: str, index: int, value: Any) -> str:
    """A list element's place, with its name when it has one, so an error names the metric."""
    name = value.get("name") if isinstance(value, dict) else None
    return f"{where}[{index}]" + (f" ({name})" if isinstance(name, str) else "")


def from_dict(obj: Any, where: str = "record") -> Record:
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: a record must be a JSON object")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(
            f"{where}: record schema version {version!r} cannot be read by this avbench, "
            f"which reads schema version {SCHEMA_VERSION}"
        )
    return _build(Record, obj, where)


def record_path(path: str | Path) -> Path:
    """The record file a user named: the file itself, or `record.json` in a run directory."""
    path = Path(path)
    return path / RECORD_FILE if path.is_dir() else path


def items_path(path: str | Path) -> Path:
    """The per-item table a record file names: `record.json` -> `items.csv`, `X.record.json` -> `X.items.csv`."""
    record = record_path(path)
    stem = record.name.removesuffix(".json")
    return record.with_name(ITEMS_FILE if stem == "record" else f"{stem.removesuffix('.record')}.{ITEMS_FILE}")


def load_record(path: str | Path) -> Record:
    """Read `record.json` (or a run directory holding one)."""
    path = record_path(path)
    return from_dict(read_json(path, RecordError, "record"), str(path))


def _schema_of(cls: Any) -> dict[str, Any]:
    origin = typing.get_origin(cls)
    if cls is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_of(a) for a in typing.get_args(cls)]}
    if cls is type(None):
        return {"type": "null"}
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        return {
            "type": "object",
            "title": cls.__name__,
            "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            "properties": {f.name: _schema_of(hints[f.name]) for f in fields},
            "required": [
                f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ],
            "additionalProperties": False,
        }
    if origin is list:
        return {"type": "array", "items": _schema_of(typing.get_args(cls)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(typing.get_args(cls)[1])}
    return {"type": {float: "number", int: "integer", str: "string", bool: "boolean"}[cls]}


def json_schema() -> dict[str, Any]:
    schema = _schema_of(Record)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    return schema


def load_items(path: str | Path, record: Record) -> pd.DataFrame | None:
    """The per-item table of `record`, read from the file `path` names; None if there is none.

    A table whose sha256 is not the one the record carries belongs to another run and is refused.
    """
    import hashlib

    table = items_path(path)
    try:
        data = table.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"{table}: cannot read per-item table ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.item_scores_sha256:
        raise RecordError(
            f"{table} is not the per-item table of {record_path(path)}: its sha256 is {digest[:12]}, "
            f"the record's is {record.item_scores_sha256[:12]}; copy the run's {ITEMS_FILE} beside the "
            f"record as {table.name}"
        )
    return parse_items(data, table)


def parse_items(data: bytes, path: Path) -> pd.DataFrame:
    """Check and type a per-item table: known columns and statuses, one row per (item, task), numeric scores."""
    import io

    import pandas as pd  # only readers of per-item tables pay for it, not every run

    try:
        items = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RecordError(f"{path}: cannot read per-item table ({exc})") from None
    absent = [c for c in ITEM_COLUMNS if c not in items.columns]
    if absent:
        raise RecordError(f"{path}: missing column(s) {absent}")
    bad = items[~items["status"].isin(ITEM_STATUSES)]
    if len(bad):
        raise RecordError(
            f"{path}: item {bad['item'].iloc[0]} has status {bad['status'].iloc[0]!r}; "
            f"expected one of {sorted(ITEM_STATUSES)}"
        )
    twice = items[items.duplicated(["item", "task"])]
    if len(twice):
        raise RecordError(f"{path}: item {twice['item'].iloc[0]} ({twice['task'].iloc[0]}) appears twice")
    for column in items.columns.difference(ITEM_COLUMNS):
        try:
            items[column] = pd.to_numeric(items[column].replace("", np.nan), errors="raise").astype(float)
        except (ValueError, TypeError):
            raise RecordError(f"{path}: column {column!r} holds a value that is not a number") from None
    return items
