"""From stored outputs to metric entries and the per-item table.

`RunScoring` is the runner's implementation of `ScoringInputs`: it names
outputs and references by content hash, reads them one at a time only when a
pass needs them (references through the `MediaStore`), routes every feature
request through the `FeatureStore`, and knows nothing of any particular
metric. `score_task` answers each metric from the score cache when none of
its inputs changed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from importlib import metadata
from typing import Sequence

import numpy as np
import soxr

from .cache import stable_hash
from .defaults import (
    BACKBONE_LAYERS,
    BOOTSTRAP_RESAMPLES,
    FIDELITY_METRICS,
    INTERVAL_CONFIDENCE,
    IS_SPLITS,
    ITEM_COLUMNS,
    KID_SUBSET_SIZE,
)
from .distributed import World
from .errors import AvbenchError
from .features import FeatureStore, ImageSet
from .items.media import ItemMedia
from .metrics.base import MetricValue
from .metrics.bootstrap import bootstrap_ci
from .outputs import Done, OutputStore
from .record import MetricEntry
from .registry import backbones as backbone_registry
from .registry import metrics as metric_registry
from .score_cache import ScoreCache
from .suites.spec import MetricSpec, Suite
from .versions import source_fingerprint

SINGLE_PROCESS = World()  # the default world: no torchrun


def check_metrics_can_run(suite: Suite, tasks: Sequence[str], n_items: int, allow_small_n: bool) -> None:
    """Refuse, before any generation, what would only fail once scoring starts.

    Every backbone a metric's options name must have its weights file; KID needs as many
    items as its subset size and IS one per split (unless `allow_small_n`, which is recorded).
    """
    from . import weights

    for spec in suite.metrics:
        if spec.task not in tasks:
            continue
        metric = metric_registry.get(spec.metric)
        for option in sorted(metric.backbone_options & set(spec.options)):
            backbone = backbone_registry.get(spec.options[option])
            if backbone.weights and not weights.location(backbone.weights).is_file():
                weights.resolve(backbone.weights)  # raises the missing-file error with the import line
        if allow_small_n or spec.metric != "fidelity":
            continue
        subset = spec.options.get("kid_subset_size", KID_SUBSET_SIZE)
        splits = spec.options.get("is_splits", IS_SPLITS)
        for sub, least, what in (("kid", subset, "its subset size"), ("is", splits, "one per split")):
            if sub in spec.options.get("metrics", FIDELITY_METRICS) and n_items < least:
                raise AvbenchError(
                    f"suite {suite.name!r}: {sub.upper()} needs at least {least} items ({what}), the run has "
                    f"{n_items}; evaluate more items or pass --allow-small-n (recorded in the record)"
                )


def reference_set(items: Sequence[ItemMedia], which: str, suite_name: str) -> ImageSet:
    """The suite's own images: each item's reference, or every source frame (read only when a pass needs them)."""
    if which == "reference":
        hashes = [m.hashes.reference for m in items]
        images = [(m, None) for m in items]
    elif which == "source_frames":
        hashes = [h for m in items for h in m.hashes.source_images]
        images = [(m, k) for m in items for k in range(len(m.hashes.source_images))]
    else:
        raise AvbenchError(f"unknown image set {which!r}; use generated, per_source, reference or source_frames")
    if any(h is None for h in hashes):
        raise AvbenchError(f"suite {suite_name!r} has items without a reference image")

    def load(i: int) -> np.ndarray:
        media, k = images[i]
        return media.reference() if k is None else media.source_image(k)

    return ImageSet(hashes=hashes, load=load)


class WaveformPairs(Sequence):
    """(reference [S, T], estimate [S, T]) float64 per item, read from disk on each access."""

    def __init__(self, items: Sequence[ItemMedia], done: Sequence[Done], store: OutputStore, task: str):
        self._items, self._done, self._store, self._task = items, done, store, task

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        estimate = self._store.audio(self._task, self._done[k].files[0][0]).astype(np.float64)
        reference = self._items[k].sources()[:, : estimate.shape[1]].astype(np.float64)
        return reference, estimate


class RunScoring:
    """ScoringInputs over the items of one task whose outputs are ok."""

    def __init__(
        self,
        suite: Suite,
        task: str,
        ready: list[ItemMedia],
        done: list[Done],
        store: OutputStore,
        features: FeatureStore,
        seed: int,
        allow_small_n: bool = False,
    ):
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
        self.backbones_used: set[str] = set()  # what the metric being computed has read features from

    def metric_key(self, spec: MetricSpec) -> str:
        """Everything but the backbones that fixes `spec`'s scores on these inputs (see score_cache.py)."""
        suite = {k: v for k, v in dataclasses.asdict(self.suite).items() if k != "spec_dir"}
        return stable_hash(
            {
                "metric": [
                    spec.metric,
                    spec.options,
                    source_fingerprint(
                        "avbench.scoring", "avbench.metrics.base", metric_registry.module_of(spec.metric)
                    ),
                ],
                "task": self.task,
                "suite": suite,
                "seed": self.seed,
                "allow_small_n": self.allow_small_n,
                "items": [self.item_ids, self.labels],
                "outputs": [d.files for d in self._done],
                "media": [dataclasses.asdict(r.hashes) for r in self._ready],
                "versions": self._features.versions | {m: metadata.version(m) for m in ("numpy", "scipy")},
            }
        )

    def _image_set(self, which: str) -> ImageSet:
        if which in ("generated", "per_source"):
            names = [name for d in self._done for name, _ in d.files]
            hashes = [sha for d in self._done for _, sha in d.files]
            return ImageSet(hashes=[f"png:{h}" for h in hashes], load=lambda i: self._store.image(self.task, names[i]))
        return reference_set(self._ready, which, self.suite.name)

    def image_features(self, backbone: str, which: str, layer: str | None = None) -> np.ndarray:
        self.backbones_used.add(backbone)
        layers = self._features.images(backbone, self._image_set(which))
        if layer is None:
            kind = self._features.backbones.spec(backbone).kind
            layer = BACKBONE_LAYERS[kind][0] if kind in BACKBONE_LAYERS else next(iter(layers))
        return layers[layer]

    def identity(self, backbone: str) -> dict:
        return self._features.backbones.identity(backbone)

    def per_source_groups(self) -> list[int]:
        return [len(d.files) for d in self._done]

    def text_features(self, backbone: str, prompts: list[str]) -> np.ndarray:
        self.backbones_used.add(backbone)
        return self._features.text(backbone, prompts)["text"]

    def logit_scale(self, backbone: str) -> float:
        self.backbones_used.add(backbone)
        return float(self._features.text(backbone, list(self.suite.classes))["logit_scale"])

    def audio_features(self, backbone: str) -> np.ndarray:
        self.backbones_used.add(backbone)
        rate = self.suite.sample_rate
        target = self._features.backbones.spec(backbone).sample_rate or rate

        def load(i: int) -> np.ndarray:
            mixture = self._ready[i].mixture()
            if target != rate:
                mixture = soxr.resample(mixture, rate, target, quality="HQ")
            return mixture.astype(np.float32)

        hashes = [f"{rate}->{target}:{r.hashes.mixture}" for r in self._ready]
        return self._features.audio(backbone, hashes, load)

    def waveforms(self) -> WaveformPairs:
        return WaveformPairs(self._ready, self._done, self._store, self.task)


def entry_from_value(value: MetricValue, metric: str, task: str, protocol: int, seed: int) -> MetricEntry:
    """Wrap a metric value, bootstrapping its per-item scores."""
    ci = bootstrap_ci(value.per_item, seed=seed) if value.per_item is not None else None
    finite = np.isfinite(value.value) if value.value is not None else False
    n = (
        value.n
        if value.n is not None
        else (int(np.isfinite(value.per_item).sum()) if value.per_item is not None else 0)
    )
    details = dict(value.details)
    if ci is not None:
        details.setdefault(
            "interval",
            (
                f"{int(INTERVAL_CONFIDENCE * 100)}% percentile bootstrap over items, "
                f"{BOOTSTRAP_RESAMPLES} resamples, seed {seed}"
            ),
        )
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


def score_task(
    inputs: RunScoring, seed: int, cache: ScoreCache, world: World = SINGLE_PROCESS
) -> tuple[list[MetricEntry], dict[str, dict[str, float]]]:
    """Every metric the suite lists for this task, from the score cache or computed; entries and per-item scores."""
    entries: list[MetricEntry] = []
    per_item: dict[str, dict[str, float]] = {}
    for spec in inputs.suite.metrics:
        if spec.task != inputs.task or not inputs.item_ids:
            continue
        key = inputs.metric_key(spec)
        scores = cache.get(key, inputs.identity)
        if not world.all_true(scores is not None):  # every rank computes, or none does: feature passes are collective
            inputs.backbones_used.clear()
            scores = compute_metric(inputs, spec, seed)
            if world.is_main:
                cache.put(key, {name: inputs.identity(name) for name in sorted(inputs.backbones_used)}, scores)
        entries.extend(scores[0])
        for item_id, values in scores[1].items():
            per_item.setdefault(item_id, {}).update(values)
    return entries, per_item


def compute_metric(
    inputs: RunScoring, spec: MetricSpec, seed: int
) -> tuple[list[MetricEntry], dict[str, dict[str, float]]]:
    entries: list[MetricEntry] = []
    per_item: dict[str, dict[str, float]] = {}
    metric = metric_registry.get(spec.metric)()
    for value in metric.compute(inputs, dict(spec.options)):
        entries.append(entry_from_value(value, spec.metric, inputs.task, inputs.suite.protocol, seed))
        if value.per_item is not None:
            ids = value.item_ids or inputs.item_ids
            for item_id, score in zip(ids, value.per_item, strict=False):
                per_item.setdefault(item_id, {})[value.name] = float(score)
    return entries, per_item


def items_csv(rows: list[dict]) -> str:
    """The per-item table: item, task, status, reason, then one column per metric (empty where a row has none)."""
    columns = list(ITEM_COLUMNS) + sorted({column for row in rows for column in row} - set(ITEM_COLUMNS))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(column, "")) for column in columns] for row in rows)
    return text.getvalue()


def _cell(value):
    """Floats round-trip (repr); NaN, a degenerate unit, is an empty cell."""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value
