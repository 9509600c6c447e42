"""Is a suite ready to run here? Its data (N of M items present) and every weights file its metrics need.

`avbench check` prints this for every suite, with the one command that closes each gap. A suite is
ready when all its items are present and every weights file it needs is present and passes its hash
check: the pinned one, or a copy imported with `--unverified` (named in every record made with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import registry, weights
from .items.files import FileSource
from .suites.spec import Suite

USABLE = frozenset({"present", "unverified"})


@dataclass
class WeightsGap:
    name: str
    status: str  # present / unverified / missing / corrupt / unpinned
    fix: str | None


@dataclass
class SuiteReadiness:
    suite: str
    items: int
    present: int | None  # None: the suite's data are synthetic, or no data root was given
    data_fix: str | None
    weights: list[WeightsGap] = field(default_factory=list)

    @property
    def data_ready(self) -> bool:
        return self.present == self.items if self.present is not None else self.data_fix is None

    @property
    def ready(self) -> bool:
        return self.data_ready and all(w.status in USABLE for w in self.weights)

    @property
    def fixes(self) -> list[str]:
        return [f for f in [self.data_fix, *(w.fix for w in self.weights)] if f]


def needed_weights(suite: Suite) -> list[str]:
    """The weights entries of every backbone the suite's metrics name, in first-use order."""
    names: list[str] = []
    for spec in suite.metrics:
        metric = registry.metrics.get(spec.metric)
        for option in sorted(metric.backbone_options & set(spec.options)):
            entry = registry.backbones.get(spec.options[option]).weights
            if entry and entry not in names:
                names.append(entry)
    return names


def weights_fix(name: str, status: str) -> str | None:
    if status in USABLE:
        return None
    item = weights.entry(name)
    if item.package_file is not None:
        return "pip install --force-reinstall avbench"
    unverified = "" if item.pinned else " --unverified"
    return f"avbench weights import {item.file_name} --name {name}{unverified}"


def suite_readiness(
    suite: Suite, data_root: Path | None, statuses: dict[str, str], ref: str | None = None
) -> SuiteReadiness:
    """`statuses` caches each weights entry's status across suites; `ref` is how the user names the suite."""
    items, ref = len(suite.items), ref or suite.name
    if suite.data != "files":
        present, data_fix = None, None
    elif data_root is None or not Path(data_root).is_dir():
        present = None if data_root is None else 0
        data_fix = f"avbench data prepare {ref} --videos VIDEOS --data-root {data_root or 'DATA_ROOT'}"
    else:
        source = FileSource(data_root)
        present = sum(not source.missing(item) for item in suite.items)
        data_fix = None if present == items else f"avbench data prepare {ref} --videos VIDEOS --data-root {data_root}"
    gaps = []
    for name in needed_weights(suite):
        if name not in statuses:
            statuses[name] = weights.status(name)["status"]
        gaps.append(WeightsGap(name, statuses[name], weights_fix(name, statuses[name])))
    return SuiteReadiness(suite.name, items, present, data_fix, gaps)
