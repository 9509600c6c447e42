"""Lazy name -> "module:attr" registries, fed by entry points.

Nothing is imported until a name is asked for, so a broken optional plugin
never breaks `import avbench`. Built-ins are registered through the very
same entry-point groups a third party uses (see pyproject.toml).
"""

from __future__ import annotations

import difflib
import importlib
import re
import threading
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Maps names to lazily imported objects of one kind.

    `base` is checked on load: a class must subclass it, anything else must be
    an instance of it. Names are plain tokens; a name is only ever resolved
    through the registry, never imported as a path.
    """

    def __init__(self, kind: str, group: str | None, base: type | None = None):
        self.kind = kind
        self.group = group
        self.base = base
        self._targets: dict[str, Any] = {}
        self._loaded: dict[str, T] = {}
        self._scanned = False
        self._lock = threading.RLock()

    def register(self, name: str, target: Any, *, replace: bool = False) -> None:
        """Add `target`: a "module:attr" string or the object itself."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(f"invalid {self.kind} name {name!r}: use letters, digits and . _ + -")
        if isinstance(target, str) and not _TARGET.match(target):
            raise RegistryError(f"{self.kind} {name!r}: target {target!r} is not of the form 'module:attr'")
        with self._lock:
            self._scan()
            if name in self._targets and not replace:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._targets[name] = target
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            self._scan()
            return sorted(self._targets)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> T:
        with self._lock:
            self._scan()
            if name in self._loaded:
                return self._loaded[name]
            if name not in self._targets:
                raise RegistryError(self._unknown(name))
            target = self._targets[name]
            if isinstance(target, str):
                try:
                    obj = import_target(target)
                except (ImportError, AttributeError) as exc:
                    raise RegistryError(f"{self.kind} {name!r} could not be loaded from {target!r}: {exc}") from exc
            elif hasattr(target, "load") and hasattr(target, "group"):  # an EntryPoint
                try:
                    obj = target.load()
                except (ImportError, AttributeError) as exc:
                    raise RegistryError(f"{self.kind} {name!r} could not be loaded from entry point {target.value!r}: {exc}") from exc
            else:
                obj = target
            self._check(name, obj)
            self._loaded[name] = obj
            return obj

    def module_of(self, name: str) -> str:
        """The module `name` comes from, without importing it."""
        with self._lock:
            self._scan()
            if name not in self._targets:
                raise RegistryError(self._unknown(name))
            target = self._targets[name]
        if isinstance(target, str):
            return target.partition(":")[0]
        if hasattr(target, "load") and hasattr(target, "group"):  # an EntryPoint
            return target.module
        return target.__module__

    def _check(self, name: str, obj: Any) -> None:
        if self.base is None:
            return
        ok = issubclass(obj, self.base) if isinstance(obj, type) else isinstance(obj, self.base)
        if not ok:
            raise RegistryError(f"{self.kind} {name!r} is {obj!r}, which is not a {self.base.__name__}")

    def _unknown(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), list(self._targets), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._targets)) or 'none'}."

    def _scan(self) -> None:
        if self._scanned or self.group is None:
            self._scanned = True
            return
        self._scanned = True
        for ep in entry_points(group=self.group):
            self._targets.setdefault(ep.name, ep)


def _model_base() -> type:
    from .models.base import Model

    return Model


def _metric_base() -> type:
    from .metrics.base import Metric

    return Metric


def _backbone_base() -> type:
    from .backbones.base import BackboneSpec

    return BackboneSpec


class _LazyBaseRegistry(Registry[T]):
    """A registry whose base class is imported on first use (keeps import light)."""

    def __init__(self, kind: str, group: str, base_factory):
        super().__init__(kind, group, None)
        self._base_factory = base_factory

    def _check(self, name: str, obj: Any) -> None:
        if self.base is None:
            self.base = self._base_factory()
        super()._check(name, obj)


models: Registry = _LazyBaseRegistry("model", "avbench.models", _model_base)
metrics: Registry = _LazyBaseRegistry("metric", "avbench.metrics", _metric_base)
backbones: Registry = _LazyBaseRegistry("backbone", "avbench.backbones", _backbone_base)
