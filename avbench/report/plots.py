"""The index page's plots, drawn with matplotlib's Agg canvas into PNG bytes.

Figures are built directly (no pyplot), so drawing leaves matplotlib's global
state alone. Every text drawn is taken literally: `$` would start mathtext.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.figure import Figure

from ..leaderboards import bare_name
from .runs import ItemMetric, RunView

PER_CLASS_PREFERENCE = ("R@1", "CRS", "SDR")  # the metric shown per class, first found
COLUMNS = 3


def plain(text: str) -> str:
    return str(text).replace("$", r"\$")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _grid(count: int, height_per_row: float) -> tuple[Figure, list]:
    rows = math.ceil(count / COLUMNS)
    figure = Figure(figsize=(4.2 * min(count, COLUMNS), height_per_row * rows), layout="constrained")
    axes = figure.subplots(rows, min(count, COLUMNS), squeeze=False).ravel()
    for unused in axes[count:]:
        unused.set_visible(False)
    return figure, list(axes[:count])


def _bars(ax, positions, values, **options) -> None:
    """Horizontal bars; a value that is not finite gets no bar but its name ("n/a", "inf")."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    ax.barh(positions, np.where(finite, values, 0.0), **options)
    for position, value in zip(np.asarray(positions)[~finite], values[~finite], strict=False):
        ax.text(0, position, " n/a" if np.isnan(value) else f" {value}", va="center", fontsize=8)


def metric_bars(runs: list[RunView]) -> bytes | None:
    """One panel per metric: each model's value with its 95% interval, where the record has one."""
    names = list(dict.fromkeys(e.name for run in runs for e in run.record.metrics))
    if not names:
        return None
    figure, axes = _grid(len(names), 0.6 + 0.35 * len(runs))
    labels = [plain(run.label) for run in runs]
    for ax, name in zip(axes, names, strict=False):
        values, low, high = [], [], []
        for run in runs:
            entry = next((e for e in run.record.metrics if e.name == name), None)
            value = entry.value if entry is not None and entry.value is not None else math.nan
            values.append(value)
            has_ci = (
                entry is not None and entry.ci_low is not None and entry.ci_high is not None and not math.isnan(value)
            )
            low.append(max(0.0, value - entry.ci_low) if has_ci else 0.0)
            high.append(max(0.0, entry.ci_high - value) if has_ci else 0.0)
        positions = np.arange(len(runs))
        _bars(ax, positions, values, xerr=[low, high], color=[f"C{k}" for k in range(len(runs))], capsize=3)
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        direction = next((e.higher_is_better for run in runs for e in run.record.metrics if e.name == name), True)
        ax.set_title(plain(f"{name} {'↑' if direction else '↓'}"), fontsize=9)
        ax.tick_params(labelsize=8)
    return _png(figure)


def per_class_metric(runs: list[RunView]) -> ItemMetric | None:
    available = {m.name: m for run in runs for m in run.metrics}
    for wanted in PER_CLASS_PREFERENCE:
        for name, metric in available.items():
            if bare_name(name) == wanted:
                return metric
    return None


def per_class_means(run: RunView, metric: str) -> dict[str, tuple[float, int]]:
    """Per class: the mean of the metric over the items whose labels include it, and their count."""
    scores: dict[str, list[float]] = {c: [] for c in run.suite.classes}
    for view in run.items:
        value = view.values.get(metric)
        if value is None:
            continue
        for label in view.item.labels:
            scores.setdefault(label, []).append(value)
    return {c: (float(np.mean(v)) if v else math.nan, len(v)) for c, v in scores.items()}


def per_class(runs: list[RunView], metric: ItemMetric) -> bytes:
    """Grouped bars: one group per class, one bar per model."""
    means = [per_class_means(run, metric.name) for run in runs]
    classes = list(dict.fromkeys(c for m in means for c in m))
    width = 0.8 / len(runs)
    figure = Figure(figsize=(7, 1 + len(classes) * (0.1 + 0.08 * len(runs))), layout="constrained")
    ax = figure.subplots()
    positions = np.arange(len(classes))
    for k, (run, table) in enumerate(zip(runs, means, strict=False)):
        values = [table.get(c, (math.nan, 0))[0] for c in classes]
        _bars(ax, positions + k * width, values, height=width, label=plain(run.label), color=f"C{k}")
    ax.set_yticks(positions + width * (len(runs) - 1) / 2, [plain(c) for c in classes])
    ax.invert_yaxis()
    ax.set_xlabel(plain(f"{metric.name} {'↑' if metric.higher_is_better else '↓'}, mean over the items of each class"))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(figure)


def distributions(runs: list[RunView]) -> bytes | None:
    """Separation suites: the per-item distribution of each separation metric, one box per model."""
    names = list(dict.fromkeys(m.name for run in runs for m in run.metrics if m.task == "separate_audio"))
    if not names:
        return None
    figure, axes = _grid(len(names), 3.2)
    for ax, name in zip(axes, names, strict=False):
        data = [np.array([v.values[name] for v in run.items if name in v.values]) for run in runs]
        infinite = sum(int(np.isinf(d).sum()) for d in data)
        data = [d[np.isfinite(d)] for d in data]
        shown = [d if d.size else np.array([math.nan]) for d in data]
        ax.boxplot(shown, showfliers=False)
        for k, values in enumerate(data):
            jitter = np.random.default_rng(k).uniform(-0.15, 0.15, size=values.size)
            ax.scatter(k + 1 + jitter, values, s=6, color=f"C{k}", alpha=0.6)
        ax.set_xticks(np.arange(1, len(runs) + 1), [plain(run.label) for run in runs], rotation=30, ha="right")
        ax.set_title(plain(name + (f" ({infinite} infinite values not drawn)" if infinite else "")), fontsize=9)
        ax.tick_params(labelsize=8)
    return _png(figure)
