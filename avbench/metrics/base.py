"""What a metric plugin is, and what it returns.

A metric asks the `ScoringInputs` for what it needs (features, waveforms,
labels) and returns named values. The inputs memoise every feature pass, so
however many metrics read CLIP features of the generated images, the images
go through CLIP once. Metrics never see runs, files or models.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class MetricCard:
    """A metric's documentation, as `avbench list metrics --json` shows it."""

    name: str  # display name without backbone, e.g. "R@1"
    definition: str
    higher_is_better: bool
    reference: str  # the reference implementation or paper
    protocol: int = 1
    notes: str = ""


@dataclass
class MetricValue:
    """One reported number.

    `per_item` holds one score per scored unit (item, or source image), with
    NaN for a degenerate unit; the runner bootstraps it into `ci` and never
    averages a NaN in. Distribution metrics set `per_item=None` and may give
    their own `spread` (KID std over subsets, IS std over splits).
    """

    name: str  # full name with backbone, e.g. "R@1[clip-synth]"
    value: float
    higher_is_better: bool
    backbone: str
    per_item: np.ndarray | None = None
    item_ids: list[str] | None = None
    spread: float | None = None
    n: int | None = None
    skipped: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class ScoringInputs(Protocol):
    """What the runner offers a metric. Every accessor is memoised."""

    suite: Any  # avbench.suites.spec.Suite
    task: str
    item_ids: list[str]  # items scored for this task (failed items excluded)
    labels: list[tuple[str, ...]]  # ground-truth class set G per item
    seed: int
    allow_small_n: bool  # the user accepted distribution metrics on fewer items than the protocol asks

    def image_features(self, backbone: str, which: str) -> np.ndarray:
        """float64 [N, D] features; which is 'generated', 'reference' or 'per_source'."""

    def per_source_groups(self) -> list[int]:
        """For 'per_source' images: the number of images of each item, in order."""

    def text_features(self, backbone: str, prompts: list[str]) -> np.ndarray:
        """float64 [P, D] text features."""

    def audio_features(self, backbone: str) -> np.ndarray:
        """float64 [N, D] audio features of each item's mixture audio."""

    def logit_scale(self, backbone: str) -> float:
        """The CLIP backbone's learned logit scale (exp'd)."""

    def waveforms(self) -> Sequence[tuple[np.ndarray, np.ndarray]]:
        """separate_audio: (reference [S, T], estimate [S, T]) float64 per item, read on each access."""


class Metric(abc.ABC):
    """Base class of metric plugins (entry-point group `avbench.metrics`)."""

    name: ClassVar[str]
    tasks: ClassVar[frozenset[str]]
    # The options a suite spec may set, with their JSON types; a suite naming any other is refused when it loads.
    options: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}
    # The options whose value names a registered backbone.
    backbone_options: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def cards(self) -> list[MetricCard]:
        """Documentation of every value this metric reports."""

    @abc.abstractmethod
    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        """Score; `options` comes from the suite spec's entry for this metric."""
