"""Suite specs: a versioned manifest plus task, classes and metric list.

Built-in specs are JSON files shipped in `avbench/suites/specs/`; their
manifests ship in `avbench.manifests` (the repo's `data_manifests/`). A user
may also pass the path of a spec file of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from .. import registry
from ..cache import read_json
from ..errors import ManifestError, RegistryError, SuiteError
from ..models.base import TASKS
from ..registry import unknown_name
from .manifest import Item, parse_manifest, sha256_bytes

PROTOCOL_VERSION = 1
DATA_KINDS = ("synth", "files")


@dataclass(frozen=True)
class MetricSpec:
    metric: str  # registry name
    task: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    protocol: int
    tasks: tuple[str, ...]
    sample_rate: int
    clip_seconds: float
    classes: tuple[str, ...]
    manifest: str
    manifest_sha256: str
    data: str
    dataset: str
    metrics: tuple[MetricSpec, ...]
    spec_dir: str  # a manifest beside the spec wins over a shipped one of the same name
    licence: str = ""
    description: str = ""

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    def manifest_bytes(self) -> bytes:
        beside = Path(self.spec_dir) / self.manifest
        path = beside if beside.is_file() else resources.files("avbench.manifests").joinpath(self.manifest)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SuiteError(f"suite {self.name!r}: cannot read manifest {self.manifest!r} ({exc})") from None

    @cached_property
    def items(self) -> tuple[Item, ...]:
        data = self.manifest_bytes()
        actual = sha256_bytes(data)
        if actual != self.manifest_sha256:
            raise SuiteError(
                f"suite {self.name!r}: manifest {self.manifest!r} has sha256 {actual}, "
                f"but the suite pins {self.manifest_sha256}; it was modified"
            )
        items = parse_manifest(data, self.manifest)
        unknown = sorted({label for item in items for label in item.labels} - set(self.classes))
        if unknown:
            raise ManifestError(f"{self.manifest}: labels not among the suite's classes: {unknown[:5]}")
        return tuple(items)

    def card(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "protocol": self.protocol,
            "tasks": list(self.tasks),
            "items": len(self.items),
            "manifest": self.manifest,
            "manifest_sha256": self.manifest_sha256,
            "classes": len(self.classes),
            "dataset": self.dataset,
            "data": self.data,
            "sample_rate": self.sample_rate,
            "clip_seconds": self.clip_seconds,
            "metrics": sorted({m.metric for m in self.metrics}),
            "licence": self.licence,
        }


def _require(obj: dict, key: str, kind: type | tuple, where: str):
    if key not in obj:
        raise SuiteError(f"{where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise SuiteError(f"{where}: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def parse_suite(obj: Any, where: str, spec_dir: str) -> Suite:
    """Validate a decoded suite spec."""
    if not isinstance(obj, dict):
        raise SuiteError(f"{where}: a suite spec must be a JSON object")
    tasks = _require(obj, "tasks", list, where)
    if not tasks or any(t not in TASKS for t in tasks):
        raise SuiteError(f"{where}: field 'tasks' must list some of {', '.join(TASKS)}")
    protocol = _require(obj, "protocol", int, where)
    if protocol != PROTOCOL_VERSION:
        raise SuiteError(
            f"{where}: protocol {protocol} is not supported (this avbench speaks protocol {PROTOCOL_VERSION})"
        )
    data = _require(obj, "data", str, where)
    if data not in DATA_KINDS:
        raise SuiteError(f"{where}: field 'data' must be one of {', '.join(DATA_KINDS)}")
    sample_rate = _require(obj, "sample_rate", int, where)
    clip_seconds = _require(obj, "clip_seconds", (int, float), where)
    if sample_rate <= 0 or not 0 < clip_seconds <= 600:  # checked before float(), which overflows on a huge int
        raise SuiteError(f"{where}: sample_rate and clip_seconds must be positive (clip at most 600 s)")
    clip_seconds = float(clip_seconds)
    classes = _require(obj, "classes", list, where)
    if not classes or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise SuiteError(f"{where}: field 'classes' must be a list of distinct non-empty strings")
    metrics = []
    for k, raw in enumerate(_require(obj, "metrics", list, where)):
        mwhere = f"{where}: metrics[{k}]"
        if not isinstance(raw, dict):
            raise SuiteError(f"{mwhere}: must be an object")
        task = _require(raw, "task", str, mwhere)
        if task not in tasks:
            raise SuiteError(f"{mwhere}: task {task!r} is not one of the suite's tasks")
        options = raw.get("options", {})
        if not isinstance(options, dict):
            raise SuiteError(f"{mwhere}: field 'options' must be an object")
        metrics.append(MetricSpec(metric=_require(raw, "metric", str, mwhere), task=task, options=options))
    name = _require(obj, "name", str, where)
    manifest = _require(obj, "manifest", str, where)
    if "/" in manifest or "\\" in manifest or manifest.startswith("."):
        raise SuiteError(f"{where}: field 'manifest' must be a bare file name")
    return Suite(
        name=name,
        version=_require(obj, "version", str, where),
        protocol=protocol,
        tasks=tuple(tasks),
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        classes=tuple(classes),
        manifest=manifest,
        manifest_sha256=_require(obj, "manifest_sha256", str, where),
        data=data,
        dataset=_require(obj, "dataset", str, where),
        metrics=tuple(metrics),
        spec_dir=spec_dir,
        licence=str(obj.get("licence", "")),
        description=str(obj.get("description", "")),
    )


def read_suite_file(path: Path) -> Suite:
    obj = read_json(path, SuiteError, "suite spec")
    return parse_suite(obj, str(path), str(Path(path).parent))


def read_suite_resource(package: str, file_name: str) -> Suite:
    """A suite spec shipped as a file inside an installed package (how built-in and plugin suites are found)."""
    spec = resources.files(package).joinpath(file_name)
    with resources.as_file(spec) as path:
        return read_suite_file(path)


def load_suite(name_or_path: str) -> Suite:
    """A registered suite by name, or a spec file by path (ending in .json), with every reference resolved."""
    if name_or_path.endswith(".json") and Path(name_or_path).is_file():
        suite = read_suite_file(Path(name_or_path))
    else:
        try:
            suite = registry.suites.get(name_or_path)
        except RegistryError as exc:
            raise SuiteError(str(exc)) from None
    resolve_references(suite)
    return suite


def resolve_references(suite: Suite) -> None:
    """Refuse a spec whose metric, option or backbone does not exist, before anything is generated."""
    for spec in suite.metrics:
        where = f"suite {suite.name!r}: metric {spec.metric!r}"
        try:
            metric = registry.metrics.get(spec.metric)
        except RegistryError as exc:
            raise SuiteError(f"suite {suite.name!r}: {exc}") from None
        if spec.task not in metric.tasks:
            raise SuiteError(f"{where} does not score task {spec.task!r} (it scores {', '.join(sorted(metric.tasks))})")
        for option, value in spec.options.items():
            if option not in metric.options:
                raise SuiteError(f"{where}: " + unknown_name("option", option, list(metric.options)))
            kind = metric.options[option]
            if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
                raise SuiteError(f"{where}: option {option!r} has the wrong type ({type(value).__name__})")
            if option in metric.backbone_options and value not in registry.backbones:
                raise SuiteError(
                    f"{where}: option {option!r}: " + unknown_name("backbone", value, registry.backbones.names())
                )


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
