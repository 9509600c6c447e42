"""One lazy name -> target registry for every kind of plugin.

Models, metrics, backbones, weights files, suites and manifest builders are
all found the same way: built-ins from `avbench.builtins` (so a plain source
checkout finds them), third parties from an entry-point group. Nothing is
imported until a name is asked for, so a broken optional plugin never breaks
`import avbench`. A third-party name never shadows a built-in: it is dropped
with a warning naming the distribution that declared it.
"""

from __future__ import annotations

import difflib
import importlib
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from . import builtins
from .defaults import NAME_PATTERN
from .errors import RegistryError

T = TypeVar("T")

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z0-9_][\w.\-]*$")


def import_target(target: str) -> Any:
    """The object a "module:attr" target names."""
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def unknown_name(kind: str, name: object, known: list[str]) -> str:
    """The error text for a name that is not registered, with close matches."""
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known)) or 'none'}."


class Registry(Generic[T]):
    """Maps names to lazily loaded objects of one kind.

    `load` turns a string target into the object (default: import it);
    `check` validates a loaded object (for example its base class) and may
    return a message. Names are plain tokens, only ever resolved through the
    registry, never imported as paths.
    """

    def __init__(
        self,
        kind: str,
        group: str,
        builtin: Mapping[str, str],
        *,
        load: Callable[[str], Any] = import_target,
        check: Callable[[str, Any], str | None] | None = None,
    ):
        self.kind = kind
        self.group = group
        self._builtin = dict(builtin)
        self._load = load
        self._checker = check
        self._targets: dict[str, Any] = {}
        self._loaded: dict[str, T] = {}
        self._scanned = False
        self._lock = threading.RLock()

    def register(self, name: str, target: Any, *, replace: bool = False) -> None:
        """Add `target`: a string target or the object itself."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise RegistryError(f"invalid {self.kind} name {name!r}: use letters, digits and . _ + -")
        if isinstance(target, str) and not _TARGET.match(target):
            raise RegistryError(f"{self.kind} {name!r}: target {target!r} is not of the form 'module:attr'")
        with self._lock:
            self._scan()
            if name in self._targets and not replace:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._targets[name] = target
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget `name` (built-ins come back only in a new process)."""
        with self._lock:
            self._scan()
            self._targets.pop(name, None)
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            self._scan()
            return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def get(self, name: str) -> T:
        with self._lock:
            self._scan()
            if name in self._loaded:
                return self._loaded[name]
            if name not in self._targets:
                raise RegistryError(unknown_name(self.kind, name, list(self._targets)))
            obj = self._resolve(name, self._targets[name])
            problem = self._checker(name, obj) if self._checker else None
            if problem:
                raise RegistryError(f"{self.kind} {name!r}: {problem}")
            self._loaded[name] = obj
            return obj

    def module_of(self, name: str) -> str:
        """The module `name` comes from, without importing it."""
        with self._lock:
            self._scan()
            if name not in self._targets:
                raise RegistryError(unknown_name(self.kind, name, list(self._targets)))
            target = self._targets[name]
        if isinstance(target, str):
            return target.partition(":")[0]
        return getattr(target, "__module__", type(target).__module__)

    def _resolve(self, name: str, target: Any) -> Any:
        if not isinstance(target, str):
            return target
        try:
            return self._load(target)
        except (ImportError, AttributeError, OSError) as exc:
            raise RegistryError(f"{self.kind} {name!r} could not be loaded from {target!r}: {exc}") from exc

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        self._targets.update(self._builtin)
        for point in entry_points(group=self.group):
            dist = point.dist.name if point.dist is not None else "an unknown distribution"
            if dist == "avbench":
                continue  # avbench's own built-ins are the table above, never its (possibly stale) metadata
            if point.name in self._builtin:
                warnings.warn(
                    f"{self.kind} {point.name!r} from {dist} is ignored: it would shadow avbench's built-in "
                    f"{self.kind} of that name",
                    stacklevel=3,
                )
                continue
            self._targets.setdefault(point.name, point.value)


def _subclass_of(base: Callable[[], type]) -> Callable[[str, Any], str | None]:
    """A check that `obj` is a subclass (or, for non-classes, an instance) of the lazily imported base."""

    def check(name: str, obj: Any) -> str | None:
        cls = base()
        ok = issubclass(obj, cls) if isinstance(obj, type) else isinstance(obj, cls)
        return None if ok else f"{obj!r} is not a {cls.__name__}"

    return check


def _model_base() -> type:
    from .models.base import Model

    return Model


def _metric_base() -> type:
    from .metrics.base import Metric

    return Metric


def _backbone_base() -> type:
    from .backbones.base import BackboneSpec

    return BackboneSpec


def _check_weights(name: str, obj: Any) -> str | None:
    from .weights import WeightsEntry, validate_entry

    if not isinstance(obj, WeightsEntry):
        return f"{obj!r} is not a WeightsEntry"
    if obj.name != name:
        return f"its entry is named {obj.name!r}"
    validate_entry(obj)
    return None


def _check_builder(name: str, obj: Any) -> str | None:
    return None if callable(obj) else f"{obj!r} is not callable"


def _load_suite(target: str) -> Any:
    from .suites.spec import read_suite_resource

    package, _, file_name = target.partition(":")
    return read_suite_resource(package, file_name)


models: Registry = Registry("model", "avbench.models", builtins.MODELS, check=_subclass_of(_model_base))
metrics: Registry = Registry("metric", "avbench.metrics", builtins.METRICS, check=_subclass_of(_metric_base))
backbones: Registry = Registry("backbone", "avbench.backbones", builtins.BACKBONES, check=_subclass_of(_backbone_base))
weights: Registry = Registry("weights", "avbench.weights", builtins.WEIGHTS, check=_check_weights)
suites: Registry = Registry("suite", "avbench.suites", builtins.SUITES, load=_load_suite)
manifest_builders: Registry = Registry(
    "manifest builder", "avbench.manifest_builders", builtins.MANIFEST_BUILDERS, check=_check_builder
)
