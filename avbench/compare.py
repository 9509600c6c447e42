"""The regression gate: did a candidate run get worse than a base run?

Exit codes follow the CLI: 0 nothing regressed; 1 a metric moved the bad way
beyond its tolerance (or, with `strict`, a paired bootstrap over items says a
drop is significant, or a metric or items were lost); 2 the runs cannot be
compared at all (another suite, spec, version or manifest). Only records and
their per-item tables are read; a metric without a value in the candidate
never passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tabulate import tabulate

from .defaults import BOOTSTRAP_RESAMPLES, GATE_SIGNIFICANCE
from .errors import RecordError
from .record import Record

FAILED = "failed items"  # the gate's row for failed generations; tolerance key "failed"
REGRESSIONS = {"regressed", "significant drop", "lost", "missing", "no value"}


@dataclass
class Change:
    """One line of the what-moved table."""

    metric: str
    base: float | None
    cand: float | None
    higher_is_better: bool
    tolerance: float
    p_value: float | None = None  # one-sided paired bootstrap: chance of no drop
    n_paired: int = 0
    verdict: str = "same"

    @property
    def delta(self) -> float | None:
        return None if self.base is None or self.cand is None else self.cand - self.base


@dataclass
class Comparison:
    base: str
    cand: str
    suite: str
    strict: bool
    exit_code: int
    reason: str = ""
    changes: list[Change] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """metric, base, cand, delta, direction, tolerance, p_value, n_paired, verdict."""
        return pd.DataFrame(
            [
                {
                    "metric": c.metric,
                    "base": c.base,
                    "cand": c.cand,
                    "delta": c.delta,
                    "direction": "higher" if c.higher_is_better else "lower",
                    "tolerance": c.tolerance,
                    "p_value": c.p_value,
                    "n_paired": c.n_paired,
                    "verdict": c.verdict,
                }
                for c in self.changes
            ],
            columns=["metric", "base", "cand", "delta", "direction", "tolerance", "p_value", "n_paired", "verdict"],
        )


def drop_p_value(
    base: np.ndarray, cand: np.ndarray, higher_is_better: bool, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> float:
    """One-sided paired bootstrap p-value that the candidate is worse.

    The items' paired gains are resampled with replacement; p is the share of
    resampled mean gains that show no drop, (1 + #{mean >= 0}) / (1 + resamples).
    """
    gain = (cand - base) if higher_is_better else (base - cand)
    rng = np.random.default_rng(seed)
    no_drop, done = 0, 0
    block = max(1, 2_000_000 // max(len(gain), 1))  # bound memory for large suites
    while done < resamples:
        size = min(block, resamples - done)
        means = gain[rng.integers(0, len(gain), size=(size, len(gain)))].mean(axis=1)
        no_drop += int(np.count_nonzero(means >= 0))
        done += size
    return (1 + no_drop) / (1 + resamples)


def _paired(
    base_items: pd.DataFrame | None, cand_items: pd.DataFrame | None, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-item scores of both runs, matched by item id and task; unscored items dropped."""
    if base_items is None or cand_items is None or metric not in base_items or metric not in cand_items:
        return np.empty(0), np.empty(0)
    keys = ["item", "task"]
    merged = base_items[keys + [metric]].merge(cand_items[keys + [metric]], on=keys, suffixes=("_base", "_cand"))
    base, cand = merged[f"{metric}_base"].to_numpy(float), merged[f"{metric}_cand"].to_numpy(float)
    keep = np.isfinite(base) & np.isfinite(cand)
    return base[keep], cand[keep]


def _incomparable(base: Record, cand: Record) -> str:
    b, c = base.suite, cand.suite
    reasons = [
        f"different {what}: base {x} vs candidate {y}"
        for what, x, y in [
            ("suite", b.name, c.name),
            ("suite version", b.version, c.version),
            ("protocol", b.protocol, c.protocol),
            ("suite spec (sha256)", b.spec_sha256[:12], c.spec_sha256[:12]),
            ("manifest (sha256)", b.manifest_sha256[:12], c.manifest_sha256[:12]),
            (
                "evaluated items (sha256)",
                f"{b.items_sha256[:12]} ({base.n.effective} items)",
                f"{c.items_sha256[:12]} ({cand.n.effective} items)",
            ),
        ]
        if x != y
    ]
    if b.manifest_sha256 != c.manifest_sha256 and b.manifest_sha256[:12] == c.manifest_sha256[:12]:
        reasons.append("manifests differ beyond the first 12 hex digits")
    return "; ".join(reasons)


def _tolerance_of(name: str, tolerances: Mapping[str, float]) -> float:
    bare = name.split("[", 1)[0]
    return float(tolerances.get(name, tolerances.get(bare, 0.0)))


def _check_tolerances(tolerances: Mapping[str, float], names: list[str]) -> None:
    known = set(names) | {n.split("[", 1)[0] for n in names} | {"failed"}
    for key, value in tolerances.items():
        if key not in known:
            raise RecordError(f"tolerance for {key!r} matches no metric; metrics: {', '.join(names)}")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise RecordError(f"tolerance for {key!r} must be a finite number >= 0, got {value!r}")


def _judge(change: Change, strict: bool) -> str:
    if change.cand is None:
        return "lost" if change.base is not None else "no value"
    if change.base is None:
        return "gained a value"
    bad = -change.delta if change.higher_is_better else change.delta
    if bad > change.tolerance:
        return "regressed"
    if strict and bad > 0 and change.p_value is not None and change.p_value < GATE_SIGNIFICANCE:
        return "significant drop"
    return "same" if bad == 0 else "better" if bad < 0 else "worse, within tolerance"


def compare(
    base: Record,
    cand: Record,
    base_items: pd.DataFrame | None,
    cand_items: pd.DataFrame | None,
    tolerances: Mapping[str, float] | None,
    strict: bool,
    seed: int = 0,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Comparison:
    """Gate `cand` against `base`; see the module docstring for the exit codes.

    Tolerances are absolute, in each metric's units, keyed by full or bare
    metric name (full wins) or "failed" for failed items; the default is 0.
    """
    tolerances = dict(tolerances or {})
    labels = dict(
        base=f"{base.model.name} (run {base.run_key[:12]})", cand=f"{cand.model.name} (run {cand.run_key[:12]})"
    )
    suite = f"{base.suite.name} v{base.suite.version}"
    reason = _incomparable(base, cand)
    if not reason and strict and (base_items is None or cand_items is None):
        reason = "strict comparison needs the per-item table (items.csv) of both runs"
    if reason:
        return Comparison(**labels, suite=suite, strict=strict, exit_code=2, reason=reason)
    if resamples < BOOTSTRAP_RESAMPLES:
        raise RecordError(f"the paired bootstrap needs at least {BOOTSTRAP_RESAMPLES} resamples, got {resamples}")

    base_metrics = {m.name: m for m in base.metrics}
    cand_metrics = {m.name: m for m in cand.metrics}
    names = list(dict.fromkeys([*base_metrics, *cand_metrics]))
    _check_tolerances(tolerances, names)
    changes = []
    for name in names:
        b, c = base_metrics.get(name), cand_metrics.get(name)
        entry = b or c
        change = Change(
            name,
            b.value if b else None,
            c.value if c else None,
            entry.higher_is_better,
            _tolerance_of(name, tolerances),
        )
        if b is not None and c is None:
            change.verdict = "missing"
        elif b is None:
            change.verdict = "new"
        else:
            paired_base, paired_cand = _paired(base_items, cand_items, name)
            change.n_paired = len(paired_base)
            if change.n_paired >= 2:
                change.p_value = drop_p_value(paired_base, paired_cand, entry.higher_is_better, resamples, seed)
            change.verdict = _judge(change, strict)
        changes.append(change)
    failed = Change(FAILED, float(base.n.failed), float(cand.n.failed), False, float(tolerances.get("failed", 0.0)))
    failed.verdict = _judge(failed, strict=False)
    changes.append(failed)

    bad = [c for c in changes if c.verdict in REGRESSIONS]
    reason = "; ".join(
        f"{c.metric}: {c.verdict}"
        + (f" by {abs(c.delta):.6g} (tolerance {c.tolerance:g})" if c.delta is not None else "")
        + (f", p = {c.p_value:.3g}" if c.verdict == "significant drop" else "")
        for c in bad
    )
    return Comparison(**labels, suite=suite, strict=strict, exit_code=1 if bad else 0, reason=reason, changes=changes)


def _number(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"


def format_comparison(comparison: Comparison) -> str:
    """Plain text for the terminal and CI logs: what moved, then the verdict and exit code."""
    lines = [f"base:      {comparison.base}", f"candidate: {comparison.cand}", f"suite:     {comparison.suite}"]
    if comparison.changes:
        rows = [
            [
                c.metric,
                _number(c.base),
                _number(c.cand),
                _number(c.delta),
                "↑" if c.higher_is_better else "↓",
                _number(c.tolerance),
                _number(c.p_value),
                c.verdict,
            ]
            for c in comparison.changes
        ]
        header = ["metric", "base", "cand", "delta", "better", "tolerance", "p(drop)", "verdict"]
        lines += ["", tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True), ""]
    outcome = {0: "OK", 1: "REGRESSION", 2: "CANNOT COMPARE"}[comparison.exit_code]
    mode = " (strict: paired bootstrap gates drops)" if comparison.strict else ""
    lines.append(
        f"{outcome}{mode}: exit {comparison.exit_code}" + (f": {comparison.reason}" if comparison.reason else "")
    )
    return "\n".join(lines) + "\n"
