"""CLIPScore against the ground-truth labels, and MACS's AIS / IIS with z-scores.

CLIPScore follows torchmetrics' definition, 100 * max(cos, 0), but clamps each
item before averaging, as its docstring formula says; torchmetrics' `compute()`
clamps the mean instead, which differs only when some cosine is negative.
The z-scores say how much better an item matches its own partner than the
other items' partners, which removes a backbone's global similarity offset.
"""

from __future__ import annotations

import numpy as np

from .. import registry
from ..errors import DataError, SuiteError
from .base import Metric, MetricCard, MetricValue, ScoringInputs
from .retrieval import DEFAULT_BACKBONE, cosine_similarity, normalize_rows, per_item_value

DEFAULT_TEMPLATE = "a photo of {c}."
REFERENCE_MACS = "MACS (Zhou et al., AAAI 2026): evaluation/ais.py, evaluation/iis.py"


def join_labels(labels) -> str:
    """'a', 'a and b', 'a, b and c': the item's labels in manifest order."""
    labels = list(labels)
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def label_caption(labels, template: str = DEFAULT_TEMPLATE) -> str:
    """The CLIPScore text of an item, e.g. 'a photo of dog barking and siren wailing.'."""
    return template.format(c=join_labels(labels))


def clip_scores(image_features: np.ndarray, text_features: np.ndarray) -> np.ndarray:
    """Per-item 100 * max(cos(image_i, text_i), 0); NaN for degenerate items."""
    cos = np.sum(normalize_rows(image_features) * normalize_rows(text_features), axis=1)
    return 100.0 * np.where(np.isnan(cos), np.nan, np.maximum(cos, 0.0))


def paired_cosines(queries: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """cos(q_i, t_i) for each pair i."""
    return np.sum(normalize_rows(queries) * normalize_rows(targets), axis=1)


def paired_z_scores(queries: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """z_i = (cos(q_i, t_i) - mu_i) / sigma_i over the non-degenerate j != i.

    mu_i and sigma_i are the mean and population std of cos(q_i, t_j). An item
    is NaN when it is degenerate, has fewer than two valid others, or sigma_i = 0.
    """
    cos = cosine_similarity(queries, targets)
    n = len(cos)
    z = np.full(n, np.nan)
    for i in range(n):
        others = np.delete(cos[i], i)
        others = others[~np.isnan(others)]
        if np.isnan(cos[i, i]) or len(others) < 2:
            continue
        sigma = others.std()
        if sigma > 0:
            z[i] = (cos[i, i] - others.mean()) / sigma
    return z


class ClipScoreMetric(Metric):
    """CLIPScore between each generated image and the caption of its ground-truth labels."""

    name = "clipscore"
    tasks = frozenset({"generate"})
    options = {"backbone": str, "template": str}
    backbone_options = frozenset({"backbone"})

    def cards(self) -> list[MetricCard]:
        return [
            MetricCard(
                "CLIPScore",
                "Mean over items of 100 * max(cos(image, text), 0); text = "
                f"'{DEFAULT_TEMPLATE}' with c = the item's labels joined as 'a', 'a and b', 'a, b and c'.",
                True,
                "torchmetrics CLIPScore (Hessel et al., 2021)",
                notes="Clamped per item; torchmetrics clamps the mean, which differs only when a cosine is negative.",
            )
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        backbone = options.get("backbone", DEFAULT_BACKBONE)
        template = options.get("template", DEFAULT_TEMPLATE)
        if not isinstance(template, str) or "{c}" not in template:
            raise SuiteError(f"clipscore option 'template' must be a string containing '{{c}}', got {template!r}")
        captions = [label_caption(labels, template) for labels in inputs.labels]
        unique = sorted(set(captions))
        text = inputs.text_features(backbone, unique)
        row = {caption: k for k, caption in enumerate(unique)}
        per_item = clip_scores(inputs.image_features(backbone, "generated"), text[[row[c] for c in captions]])
        details = {"template": template, "join": "', ' between labels, ' and ' before the last", "clamp": "per item"}
        return [per_item_value(f"CLIPScore[{backbone}]", per_item, inputs.item_ids, True, backbone, details)]


class AlignmentMetric(Metric):
    """AIS (audio -> generated image) and IIS (reference frame -> generated image), with z-scores.

    Options: backbone (image space), audio_backbone (an audio tower embedding
    into that space; AIS is reported only when given).
    """

    name = "ais-iis"
    tasks = frozenset({"generate"})
    options = {"backbone": str, "audio_backbone": str}
    backbone_options = frozenset({"backbone", "audio_backbone"})

    def cards(self) -> list[MetricCard]:
        z_def = (
            "Mean over items of z_i = (cos(q_i, v_i) - mu_i) / sigma_i, mu_i and sigma_i the mean and population "
            "std of cos(q_i, v_j) over the other items j; items with sigma_i = 0 are degenerate."
        )
        return [
            MetricCard(
                "AIS",
                "Mean over items of cos(audio embedding in CLIP image space, generated image embedding).",
                True,
                REFERENCE_MACS,
                notes="MACS: Wav2CLIP 0.1.0 (backbone wav2clip) on each clip alone, CLIP ViT-B/32's projected "
                "image embedding. avbench embeds the suite's clip (llp-multi: the centred 8 s at 16 kHz); "
                "MACS's ais.py embeds the whole audio file it reads at 16 kHz.",
            ),
            MetricCard("AIS-z", f"{z_def} q = audio embedding, v = generated image.", True, REFERENCE_MACS),
            MetricCard(
                "IIS",
                "Mean over items of cos(reference frame embedding, generated image embedding).",
                True,
                REFERENCE_MACS,
            ),
            MetricCard("IIS-z", f"{z_def} q = reference frame, v = generated image.", True, REFERENCE_MACS),
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        backbone = options.get("backbone", DEFAULT_BACKBONE)
        generated = inputs.image_features(backbone, "generated")
        pairs = [("IIS", backbone, inputs.image_features(backbone, "reference"))]
        audio_backbone = options.get("audio_backbone")
        if audio_backbone is not None:
            space = registry.backbones.get(audio_backbone).image_backbone
            if space != backbone:
                raise SuiteError(f"ais-iis: audio backbone {audio_backbone!r} embeds into {space!r}, not {backbone!r}")
            pairs.insert(0, ("AIS", audio_backbone, inputs.audio_features(audio_backbone)))
        values = []
        for name, named_backbone, queries in pairs:
            if queries.shape != generated.shape:
                raise DataError(
                    f"{name}: {named_backbone} features {queries.shape} do not pair with generated "
                    f"image features {generated.shape}"
                )
            details = {"image_backbone": backbone, "query_backbone": named_backbone}
            values.append(
                per_item_value(
                    f"{name}[{named_backbone}]",
                    paired_cosines(queries, generated),
                    inputs.item_ids,
                    True,
                    named_backbone,
                    details,
                )
            )
            values.append(
                per_item_value(
                    f"{name}-z[{named_backbone}]",
                    paired_z_scores(queries, generated),
                    inputs.item_ids,
                    True,
                    named_backbone,
                    {**details, "std": "population (ddof=0)", "others": "all other items"},
                )
            )
        return values
