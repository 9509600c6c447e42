"""From stored outputs to metric entries and the per-item table.

`RunScoring` is the runner's implementation of `ScoringInputs`: it reads
outputs and references one at a time as a pass needs them (references from
the scoring scratch file), routes every feature request through the
`FeatureStore`, and knows nothing of any particular metric.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import soxr

from .data.spill import SpilledItem
from .data.suite import Suite
from .errors import AvbenchError
from .features import FeatureStore, ImageSet
from .metrics.base import MetricValue
from .metrics.bootstrap import CONFIDENCE, RESAMPLES, bootstrap_ci
from .outputs import Done, OutputStore
from .record import MetricEntry
from .registry import metrics as metric_registry

DEFAULT_LAYER = {"clip": "embedding", "inception": "2048"}


def reference_set(items: Sequence[SpilledItem], which: str, suite_name: str) -> ImageSet:
    """The suite's own images: each item's reference, or every source frame (read back when a pass needs them)."""
    if which == "reference":
        images = [(s, s.reference) for s in items]
    elif which == "source_frames":
        images = [(s, stored) for s in items for stored in s.source_images]
    else:
        raise AvbenchError(f"unknown image set {which!r}; use generated, per_source, reference or source_frames")
    if any(stored is None for _, stored in images):
        raise AvbenchError(f"suite {suite_name!r} has items without a reference image")
    return ImageSet(hashes=[stored.sha256 for _, stored in images], load=lambda i: images[i][0].read(images[i][1]))


class WaveformPairs(Sequence):
    """(reference [S, T], estimate [S, T]) float64 per item, read from disk on each access."""

    def __init__(self, items: Sequence[SpilledItem], done: Sequence[Done], store: OutputStore, task: str):
        self._items, self._done, self._store, self._task = items, done, store, task

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        estimate = self._store.audio(self._task, self._done[k].files[0][0]).astype(np.float64)
        item = self._items[k]
        reference = item.read(item.sources)[:, : estimate.shape[1]].astype(np.float64)
        return reference, estimate


class RunScoring:
    """ScoringInputs over the items of one task whose outputs are ok."""

    def __init__(self, suite: Suite, task: str, ready: list[SpilledItem], done: list[Done], store: OutputStore, features: FeatureStore, seed: int, allow_small_n: bool = False):
        self.suite = suite
        self.allow_small_n = allow_small_n
        self.task = task
        self._ready = ready
        self._done = done
        self._store = store
        self._features = features
        self.seed = seed
        self.item_ids = [r.item.id for r in ready]
        self.labels = [r.item.labels for r in ready]

    def _image_set(self, which: str) -> ImageSet:
        if which in ("generated", "per_source"):
            names = [name for d in self._done for name, _ in d.files]
            hashes = [sha for d in self._done for _, sha in d.files]
            return ImageSet(hashes=[f"png:{h}" for h in hashes], load=lambda i: self._store.image(self.task, names[i]))
        return reference_set(self._ready, which, self.suite.name)

    def image_features(self, backbone: str, which: str, layer: str | None = None) -> np.ndarray:
        layers = self._features.images(backbone, self._image_set(which))
        if layer is None:
            layer = DEFAULT_LAYER.get(self._features.backbones.spec(backbone).kind, next(iter(layers)))
        return layers[layer]

    def per_source_groups(self) -> list[int]:
        return [len(d.files) for d in self._done]

    def text_features(self, backbone: str, prompts: list[str]) -> np.ndarray:
        return self._features.text(backbone, prompts)["text"]

    def logit_scale(self, backbone: str) -> float:
        return float(self._features.text(backbone, list(self.suite.classes))["logit_scale"])

    def audio_features(self, backbone: str) -> np.ndarray:
        rate = self.suite.sample_rate
        target = self._features.backbones.spec(backbone).sample_rate or rate

        def load(i: int) -> np.ndarray:
            item = self._ready[i]
            mixture = item.read(item.mixture)
            if target != rate:
                mixture = soxr.resample(mixture, rate, target, quality="HQ")
            return mixture.astype(np.float32)

        hashes = [f"{rate}->{target}:{r.mixture.sha256}" for r in self._ready]
        return self._features.audio(backbone, hashes, load)

    def waveforms(self) -> WaveformPairs:
        return WaveformPairs(self._ready, self._done, self._store, self.task)


def entry_from_value(value: MetricValue, metric: str, task: str, protocol: int, seed: int) -> MetricEntry:
    """Wrap a metric value, bootstrapping its per-item scores."""
    ci = bootstrap_ci(value.per_item, seed=seed) if value.per_item is not None else None
    finite = np.isfinite(value.value) if value.value is not None else False
    n = value.n if value.n is not None else (int(np.isfinite(value.per_item).sum()) if value.per_item is not None else 0)
    details = dict(value.details)
    if ci is not None:
        details.setdefault("interval", f"{int(CONFIDENCE * 100)}% percentile bootstrap over items, {RESAMPLES} resamples, seed {seed}")
    return MetricEntry(
        name=value.name,
        value=float(value.value) if finite else None,
        higher_is_better=value.higher_is_better,
        backbone=value.backbone,
        metric=metric,
        task=task,
        protocol=protocol,
        n=n,
        skipped=int(value.skipped),
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        spread=value.spread,
        details=details,
    )


def score_task(inputs: RunScoring, seed: int) -> tuple[list[MetricEntry], dict[str, dict[str, float]]]:
    """Run every metric the suite lists for this task; return entries and per-item scores."""
    entries: list[MetricEntry] = []
    per_item: dict[str, dict[str, float]] = {}
    for spec in inputs.suite.metrics:
        if spec.task != inputs.task or not inputs.item_ids:
            continue
        metric = metric_registry.get(spec.metric)()
        for value in metric.compute(inputs, dict(spec.options)):
            entries.append(entry_from_value(value, spec.metric, inputs.task, inputs.suite.protocol, seed))
            if value.per_item is not None:
                ids = value.item_ids or inputs.item_ids
                for item_id, score in zip(ids, value.per_item):
                    per_item.setdefault(item_id, {})[value.name] = float(score)
    return entries, per_item


def items_table(rows: list[dict]) -> pd.DataFrame:
    """The per-item table: item, task, status, reason, then one column per metric."""
    frame = pd.DataFrame(rows)
    fixed = ["item", "task", "status", "reason"]
    for column in fixed:
        if column not in frame:
            frame[column] = ""
    return frame[fixed + sorted(c for c in frame.columns if c not in fixed)]
