"""A run directory read back for the report: record, suite and one view per item.

`items.csv` has one row per (item, task); the report shows one row per item,
so the task rows are merged: each task keeps its status and reason, and the
per-item metric columns (which belong to one task each) are united.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import AvbenchError, RecordError
from ..record import Record, items_path, load_items, load_record, record_path, spec_sha256
from ..suites.manifest import Item
from ..suites.spec import Suite, load_suite


@dataclass
class Media:
    """Where an item's media were written, as links relative to the report folder."""

    mixture: str | None = None
    reference: str | None = None
    cues: list[str] = field(default_factory=list)  # one frame per source (the separation cues)
    outputs: dict[str, list[str]] = field(default_factory=dict)  # task -> generated images or separated sources
    note: str = ""  # why reference media are absent


@dataclass
class ItemView:
    item: Item
    order: int  # position in the manifest
    status: dict[str, tuple[str, str]]  # task -> (status, reason)
    values: dict[str, float]  # per-item metric -> value; absent: degenerate, failed or another task's
    media: Media = field(default_factory=Media)

    @property
    def ok(self) -> bool:
        return all(status == "ok" for status, _ in self.status.values())


@dataclass(frozen=True)
class ItemMetric:
    name: str
    task: str
    higher_is_better: bool


@dataclass
class RunView:
    dir: Path
    record: Record
    suite: Suite
    metrics: list[ItemMetric]  # per-item metrics, in the record's order
    items: list[ItemView]  # default order: worst first by the first metric
    slug: str = ""  # file-name stem of the run's page and media folder
    label: str = ""  # the model's name as the leaderboard shows it


def slug(text: str, index: int) -> str:
    """A safe, unique file-name stem: the index, then the text's safe characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40]
    return f"{index:02d}-{cleaned or 'run'}"


def find_suite(name: str, suites: Mapping[str, Suite]) -> Suite:
    if name in suites:
        return suites[name]
    try:
        return load_suite(name)
    except AvbenchError as exc:
        raise RecordError(
            f"the record names suite {name!r}, which cannot be loaded ({exc}); pass its spec file with --suite-spec"
        ) from None


def item_metrics(record: Record, columns) -> list[ItemMetric]:
    """The record's metrics that have a per-item column, first occurrence wins."""
    chosen: dict[str, ItemMetric] = {}
    for entry in record.metrics:
        if entry.name in columns and entry.name not in chosen:
            chosen[entry.name] = ItemMetric(entry.name, entry.task, entry.higher_is_better)
    return list(chosen.values())


def worst_first(items: list[ItemView], metric: ItemMetric | None) -> list[ItemView]:
    """Degenerate or failed (no value) first, then from worst to best; ties keep manifest order."""
    if metric is None:
        return sorted(items, key=lambda v: v.order)

    def key(view: ItemView):
        value = view.values.get(metric.name)
        if value is None:
            return (0, 0.0, view.order)
        return (1, value if metric.higher_is_better else -value, view.order)

    return sorted(items, key=key)


def load_run(path: Path, suites: Mapping[str, Suite]) -> RunView:
    """Read the record a path names (a run directory or any record file) and the per-item table it names."""
    record = load_record(path)
    folder = record_path(path).parent
    suite = find_suite(record.suite.name, suites)
    if suite.manifest_sha256 != record.suite.manifest_sha256:
        raise RecordError(
            f"{folder}: the run used manifest {record.suite.manifest_sha256[:12]} of {suite.name!r}, "
            f"but this avbench's suite has manifest {suite.manifest_sha256[:12]}"
        )
    if spec_sha256(suite) != record.suite.spec_sha256:
        raise RecordError(
            f"{record_path(path)}: the run used spec {record.suite.spec_sha256[:12]} of suite "
            f"{suite.name!r}, not this one ({spec_sha256(suite)[:12]}); pass its spec file with --suite-spec"
        )
    table = load_items(path, record)
    if table is None:
        raise RecordError(f"{record_path(path)}: its per-item table {items_path(path)} does not exist")
    metrics = item_metrics(record, table.columns)
    manifest = {item.id: (order, item) for order, item in enumerate(suite.items)}
    views: dict[str, ItemView] = {}
    for row in table.to_dict("records"):
        if row["item"] not in manifest:
            raise RecordError(f"{items_path(path)}: item {row['item']!r} is not in suite {suite.name!r}")
        order, item = manifest[row["item"]]
        view = views.setdefault(item.id, ItemView(item=item, order=order, status={}, values={}))
        view.status[row["task"]] = (row["status"], row["reason"])
        for metric in metrics:
            value = row.get(metric.name)
            if value is not None and not math.isnan(value):
                view.values[metric.name] = float(value)
    return RunView(folder, record, suite, metrics, worst_first(list(views.values()), metrics[0] if metrics else None))
