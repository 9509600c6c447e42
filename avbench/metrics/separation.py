"""The separation metric: BSS-Eval v3 SDR / SIR / SAR and SI-SDR of separated waveforms (`separate_audio`).

The measures themselves live in `avbench.metrics.bss_eval`; this plugin
batches the items, applies the options and reports per-item means.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, SuiteError
from .base import Metric, MetricCard, MetricValue, ScoringInputs
from .bss_eval import DEFAULT_FILTER_LENGTH, SILENCE_THRESHOLD, bss_eval_sources, si_sdr, silent_mixtures

AGGREGATION = "mean over sources, then over mixtures; DAVIS averaged per batch"
REFERENCE = "mir_eval.separation.bss_eval_sources (v3 sources)"
NAMES = ("SDR[bss-v3]", "SIR[bss-v3]", "SAR[bss-v3]", "SI-SDR[waveform]")


class SeparationMetric(Metric):
    """BSS-Eval v3 SDR / SIR / SAR and SI-SDR of separated waveforms (`separate_audio`)."""

    name = "separation"
    tasks = frozenset({"separate_audio"})
    options = {"permutation": bool, "filter_length": int}
    _ITEMS_PER_CALL = 32  # mixtures stacked per call, so long suites stay in bounded memory

    def cards(self) -> list[MetricCard]:
        common = (
            f" Aggregation: {AGGREGATION}. A mixture with a source of sum|x| <= {SILENCE_THRESHOLD:g} "
            "(reference or estimate) is skipped and counted, never averaged. Both energies of a ratio get the "
            "float64 epsilon added, so a perfect estimate scores a large finite value (mir_eval: +inf)."
        )
        filters = f" Distortion filters of {DEFAULT_FILTER_LENGTH} taps unless the suite sets filter_length."
        bss = "Estimate projected on the delayed references: target = projection on its own reference, "
        return [
            MetricCard(
                "SDR",
                bss + "SDR = 10 log10(|target|^2 / |estimate - target|^2) in dB." + filters + common,
                True,
                REFERENCE,
            ),
            MetricCard(
                "SIR",
                bss + "interference = projection on all references - target; "
                "SIR = 10 log10(|target|^2 / |interference|^2) in dB." + filters + common,
                True,
                REFERENCE,
            ),
            MetricCard(
                "SAR",
                bss + "artifacts = estimate - projection on all references; "
                "SAR = 10 log10(|projection on all|^2 / |artifacts|^2) in dB." + filters + common,
                True,
                REFERENCE,
            ),
            MetricCard(
                "SI-SDR",
                "Zero-mean signals; target = (<e, s> / <s, s>) s; "
                "SI-SDR = 10 log10(|target|^2 / |target - e|^2) in dB." + common,
                True,
                "Le Roux et al., SDR - half-baked or well done? (ICASSP 2019)",
                notes="With permutation search, an estimate is scored against the reference BSS-Eval gave it.",
            ),
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        permutation = options.get("permutation", False)
        filter_length = options.get("filter_length", DEFAULT_FILTER_LENGTH)
        if not isinstance(permutation, bool):
            raise SuiteError(f"option 'permutation' must be true or false, got {permutation!r}")
        if isinstance(filter_length, bool) or not isinstance(filter_length, int) or filter_length < 1:
            raise SuiteError(f"option 'filter_length' must be a positive integer, got {filter_length!r}")
        pairs = inputs.waveforms()
        ids = list(inputs.item_ids)
        if len(pairs) != len(ids):
            raise DataError(f"separation: {len(pairs)} waveform pairs for {len(ids)} items")
        scores = np.full((len(NAMES), len(ids)), np.nan)  # per item: mean SDR, SIR, SAR, SI-SDR over its sources
        silent = 0
        for rows in self._batches(pairs, ids):
            reference = np.stack([pairs[k][0] for k in rows]).astype(np.float64)
            estimate = np.stack([pairs[k][1] for k in rows]).astype(np.float64)
            silent += int(silent_mixtures(reference, estimate).sum())
            bss = bss_eval_sources(reference, estimate, filter_length, permutation)
            matched = np.take_along_axis(estimate, bss.permutation[..., None], 1)  # estimates ordered by reference
            scores[:, rows] = [
                bss.sdr.mean(-1),
                bss.sir.mean(-1),
                bss.sar.mean(-1),
                si_sdr(reference, matched).mean(-1),
            ]
        skipped = int(np.isnan(scores[0]).sum())
        details = {
            "filter_length": filter_length,
            "permutation": permutation,
            "silence_threshold": SILENCE_THRESHOLD,
            "aggregation": AGGREGATION,
            "skipped_silent": silent,
        }
        return [
            MetricValue(
                name=name,
                value=float(np.nanmean(per_item)) if skipped < len(ids) else float("nan"),
                higher_is_better=True,
                backbone=name[name.index("[") + 1 : -1],
                per_item=per_item,
                item_ids=ids,
                n=len(ids) - skipped,
                skipped=skipped,
                details=dict(details),
            )
            for name, per_item in zip(NAMES, scores, strict=True)
        ]

    def _batches(self, pairs: list, ids: list[str]) -> list[list[int]]:
        """Item indices in groups of one waveform shape, at most `_ITEMS_PER_CALL` each."""
        groups: dict[tuple, list[int]] = {}
        for k, (reference, estimate) in enumerate(pairs):
            if np.shape(reference) != np.shape(estimate) or np.ndim(reference) != 2:
                raise DataError(
                    f"item {ids[k]}: reference {np.shape(reference)} and estimate "
                    f"{np.shape(estimate)} must both be [S, T] of the same shape"
                )
            groups.setdefault(np.shape(reference), []).append(k)
        return [
            members[start : start + self._ITEMS_PER_CALL]
            for members in groups.values()
            for start in range(0, len(members), self._ITEMS_PER_CALL)
        ]
