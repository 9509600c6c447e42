"""The manifest: one JSON object per line, one item per object.

Validation is strict and precise: every error names the manifest, the line
and the field, so a broken line is found at once. Paths are checked to stay
inside the data root both lexically (here) and after resolving symlinks
(`resolve_inside`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DataError, ManifestError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
CLIP_PATTERN = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}$")  # YouTube ids may start with '-' or '_'

MIX_RULES = ("mean", "equal-rms-mean", "sum")


@dataclass(frozen=True)
class Frame:
    path: str
    rule: str


@dataclass(frozen=True)
class Source:
    clip: str
    label: str | None
    path: str
    start: float = 0.0
    gain_db: float = 0.0
    frame: Frame | None = None


@dataclass(frozen=True)
class Event:
    """A span of the clip, in seconds from the clip's start, in which a labelled class is heard (may be empty)."""

    label: str
    onset: float
    offset: float


@dataclass(frozen=True)
class Item:
    id: str
    seed: int
    labels: tuple[str, ...]
    sources: tuple[Source, ...]
    mix: str = "mean"
    frame: Frame | None = None
    events: tuple[Event, ...] = ()  # optional: when each label is heard (llp-multi-audio)

    @property
    def num_sources(self) -> int:
        return len(self.sources)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_relative_path(path: Any, where: str) -> str:
    """A manifest path must be relative, POSIX and free of '..'."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{where}: must be a non-empty string")
    if "\\" in path or "\x00" in path:
        raise ManifestError(f"{where}: {path!r} must use '/' separators and no NUL")
    pure = PurePosixPath(path)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise ManifestError(f"{where}: {path!r} is absolute; paths must be relative to the data root")
    if any(part == ".." for part in pure.parts):
        raise ManifestError(f"{where}: {path!r} leaves the data root ('..')")
    return path


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """Join and resolve symlinks; refuse anything that lands outside `root`."""
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root_real / relative))
    if os.path.commonpath([root_real, target]) != str(root_real):
        raise DataError(f"{what}: {relative!r} resolves to {target}, outside the data root {root_real}")
    return target


class _Fields:
    """Typed field access that names the line and field on failure."""

    def __init__(self, obj: Any, where: str):
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        self.obj, self.where = obj, where

    def _get(self, key: str, required: bool):
        if key not in self.obj:
            if required:
                raise ManifestError(f"{self.where}: missing field '{key}'")
            return None
        return self.obj[key]

    def string(self, key: str, required: bool = True, pattern: re.Pattern | None = None) -> str | None:
        value = self._get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{self.where}: field '{key}' must be a non-empty string")
        if pattern is not None and not pattern.match(value):
            raise ManifestError(f"{self.where}: field '{key}' = {value!r} is not a valid id")
        return value

    def number(self, key: str, default: float, minimum: float | None = None) -> float:
        value = self._get(key, False)
        if value is None:
            return default
        if (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= sys.float_info.max
        ):  # not isfinite(): a huge int overflows it
            raise ManifestError(f"{self.where}: field '{key}' must be a finite number")
        if minimum is not None and value < minimum:
            raise ManifestError(f"{self.where}: field '{key}' must be >= {minimum}")
        return float(value)

    def integer(self, key: str) -> int:
        value = self._get(key, True)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise ManifestError(f"{self.where}: field '{key}' must be a non-negative integer")
        return value

    def listing(self, key: str) -> list:
        value = self._get(key, True)
        if not isinstance(value, list) or not value:
            raise ManifestError(f"{self.where}: field '{key}' must be a non-empty list")
        return value


def _frame(obj: Any, where: str) -> Frame | None:
    if obj is None:
        return None
    fields = _Fields(obj, where)
    return Frame(path=check_relative_path(fields.string("path"), f"{where}.path"), rule=fields.string("rule"))


def _events(raw: Any, labels: list[str], where: str) -> tuple[Event, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ManifestError(f"{where}: field 'events' must be a non-empty list")
    events = []
    for k, obj in enumerate(raw):
        fields = _Fields(obj, f"{where}: events[{k}]")
        label = fields.string("label")
        if label not in labels:
            raise ManifestError(f"{where}: events[{k}]: label {label!r} is not among the item's labels")
        onset, offset = fields.number("onset", 0.0, minimum=0.0), fields.number("offset", 0.0, minimum=0.0)
        if offset < onset:
            raise ManifestError(f"{where}: events[{k}]: offset {offset:g} is before onset {onset:g}")
        events.append(Event(label=label, onset=onset, offset=offset))
    return tuple(events)


def parse_item(obj: Any, where: str) -> Item:
    """Validate one decoded manifest object."""
    fields = _Fields(obj, where)
    item_id = fields.string("id", pattern=ID_PATTERN)
    labels = fields.listing("labels")
    for k, label in enumerate(labels):
        if not isinstance(label, str) or not label:
            raise ManifestError(f"{where}: field 'labels[{k}]' must be a non-empty string")
    if len(set(labels)) != len(labels):
        raise ManifestError(f"{where}: field 'labels' repeats a label")
    mix = fields.string("mix", required=False) or "mean"
    if mix not in MIX_RULES:
        raise ManifestError(f"{where}: field 'mix' = {mix!r} is not one of {', '.join(MIX_RULES)}")
    sources = []
    for k, raw in enumerate(fields.listing("sources")):
        swhere = f"{where}: sources[{k}]"
        sf = _Fields(raw, swhere)
        label = sf.string("label", required=False)
        if label is not None and label not in labels:
            raise ManifestError(f"{swhere}: field 'label' = {label!r} is not among the item's labels")
        sources.append(
            Source(
                clip=sf.string("clip", pattern=CLIP_PATTERN),
                label=label,
                path=check_relative_path(sf.string("path"), f"{swhere}.path"),
                start=sf.number("start", 0.0, minimum=0.0),
                gain_db=sf.number("gain_db", 0.0),
                frame=_frame(raw.get("frame"), f"{swhere}.frame"),
            )
        )
    return Item(
        id=item_id,
        seed=fields.integer("seed"),
        labels=tuple(labels),
        sources=tuple(sources),
        mix=mix,
        frame=_frame(obj.get("frame"), f"{where}: frame"),
        events=_events(obj.get("events"), labels, where),
    )


def parse_manifest(data: bytes, name: str) -> list[Item]:
    """Parse and validate manifest bytes; `name` is used in error messages."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    items: list[Item] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            obj = json.loads(line)
        except RecursionError:
            raise ManifestError(f"{where}: invalid JSON (too deeply nested)") from None
        except ValueError as exc:  # JSONDecodeError, or a number past Python's int-from-string limit
            raise ManifestError(f"{where}: invalid JSON ({getattr(exc, 'msg', exc)})") from None
        item = parse_item(obj, where)
        if item.id in seen:
            raise ManifestError(f"{where}: field 'id' = {item.id!r} repeats line {seen[item.id]}")
        seen[item.id] = number
        items.append(item)
    if not items:
        raise ManifestError(f"{name}: the manifest has no items")
    return items


def dump_items(items: list[dict]) -> bytes:
    """Canonical JSONL bytes: sorted keys, compact, one item per line."""
    return "".join(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n" for obj in items
    ).encode("utf-8")
