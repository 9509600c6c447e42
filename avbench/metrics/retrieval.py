"""CLIP retrieval metrics: R@K (Sound2Scene), R@K*, CRS, CRS-prob and per-source scores (AV-GAS).

Everything is image -> text retrieval over the suite's candidate classes C,
computed from cosine similarities. Ties count against the model: the rank of
class c for image i is #{c' : s_ic' >= s_ic}, i.e.
1 + #{c' : s_ic' > s_ic} + #{c' != c : s_ic' = s_ic} (PROTOCOLS.md). An item
whose embedding is zero or not finite is degenerate and scores NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from ..errors import DataError, SuiteError
from .base import Metric, MetricCard, MetricValue, ScoringInputs

DEFAULT_BACKBONE = "clip-vit-b32-openai"
DEFAULT_TEMPLATES = ("a photo of {c}.",)
PROMPTS_DOC = f"'{DEFAULT_TEMPLATES[0]}' (option 'templates': an ensemble averaging unit text embeddings)"
TIE_RULE = "rank_i(c) = #{c' in C : s_ic' >= s_ic}; ties count against the model"
K_RULE = "A K is reported only where K < |C|, the number of candidate classes: at K >= |C| every model scores 1."
REFERENCE_S2S = "Sound2Scene (Sung-Bin et al., CVPR 2023): CLIP R@K"
REFERENCE_AVGAS = "AV-GAS (Kang and Brandão, arXiv 2504.18283): CRS and modified R@K*"


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit rows; rows that are zero or not finite become NaN (degenerate)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    ok = np.isfinite(norms) & (norms > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, x / np.where(ok, norms, 1.0), np.nan)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, D] x [M, D] -> [N, M] cosines (NaN rows for degenerate inputs)."""
    return normalize_rows(a) @ normalize_rows(b).T


def class_text_embeddings(text_features: np.ndarray, n_templates: int) -> np.ndarray:
    """[T*C, D] prompt features, template-major -> [C, D] ensemble (mean of unit vectors)."""
    feats = normalize_rows(text_features)
    return feats.reshape(n_templates, -1, feats.shape[-1]).mean(axis=0)


def class_prompts(classes, templates=DEFAULT_TEMPLATES) -> list[str]:
    """Template-major prompt list matching `class_text_embeddings`."""
    return [t.format(c=c) for t in templates for c in classes]


def tie_pessimistic_ranks(scores: np.ndarray) -> np.ndarray:
    """[N, C] scores -> [N, C] rank of every class (1 = best; ties share the worst rank)."""
    scores = np.asarray(scores, dtype=np.float64)
    ranks = np.full(scores.shape, np.nan)
    n_classes = scores.shape[1]
    for i, row in enumerate(scores):
        if np.isfinite(row).all():  # #{c' : s_c' >= s_c} = C - #{c' : s_c' < s_c}
            ranks[i] = n_classes - np.searchsorted(np.sort(row), row, side="left")
    return ranks


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """rank_i of class targets[i] for each row i (NaN for degenerate rows)."""
    return tie_pessimistic_ranks(scores)[np.arange(len(scores)), targets]


def recall_at_k(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per-item [rank_i <= k] as float, NaN for degenerate items."""
    ranks = target_ranks(scores, targets)
    return np.where(np.isnan(ranks), np.nan, (ranks <= k).astype(np.float64))


def _label_ranks(scores: np.ndarray, label_sets: list[np.ndarray]) -> list[np.ndarray]:
    ranks = tie_pessimistic_ranks(scores)
    return [ranks[i, g] for i, g in enumerate(label_sets)]


def _per_item(values) -> np.ndarray:
    return np.fromiter(values, dtype=np.float64)


def recall_at_k_star(scores: np.ndarray, label_sets: list[np.ndarray], k: int) -> np.ndarray:
    """Modified R@K*: 1 iff every class of G has tie-pessimistic rank <= k."""
    return _per_item(
        np.nan if len(r) == 0 or np.isnan(r).any() else float((r <= k).all()) for r in _label_ranks(scores, label_sets)
    )


def class_representation_score(scores: np.ndarray, label_sets: list[np.ndarray]) -> np.ndarray:
    """CRS_i = |G ∩ top_m(i)| / m with m = |G|, top-m by tie-pessimistic rank."""
    return _per_item(
        np.nan if len(r) == 0 or np.isnan(r).any() else float((r <= len(r)).mean())
        for r in _label_ranks(scores, label_sets)
    )


def class_probability_mass(scores: np.ndarray, label_sets: list[np.ndarray], logit_scale: float) -> np.ndarray:
    """CRS-prob_i = sum over G of softmax(logit_scale * s_i) over C."""
    probs = softmax(logit_scale * np.asarray(scores, dtype=np.float64), axis=1)
    return _per_item(np.nan if len(g) == 0 else float(probs[i, g].sum()) for i, g in enumerate(label_sets))


def match_sources(scores: np.ndarray, label_set: np.ndarray) -> np.ndarray:
    """Hungarian match of S images to the classes of G, maximising total cosine.

    scores: [S, C] for one item's images. Returns [S] matched class index,
    -1 for an image left unmatched (when S > |G|).
    """
    matched = np.full(len(scores), -1, dtype=np.int64)
    from scipy.optimize import linear_sum_assignment  # here, not at the top: loading a suite imports this module

    rows, cols = linear_sum_assignment(scores[:, label_set], maximize=True)
    matched[rows] = label_set[cols]
    return matched


def per_source_scores(scores: np.ndarray, label_set: np.ndarray) -> tuple[np.ndarray, float]:
    """One mixture's (sepR@1 per image, sep-acc).

    sepR@1 of an image is 1 iff its matched class ranks first among C (ties
    against the model); an unmatched image scores 0. sep-acc is 1 iff every
    class of G is matched to an image on which it ranks first.
    """
    if len(label_set) == 0 or not np.isfinite(scores).all():
        return np.full(len(scores), np.nan), np.nan
    matched = match_sources(scores, label_set)
    ranks = tie_pessimistic_ranks(scores)
    hits = np.array([float(c >= 0 and ranks[s, c] == 1) for s, c in enumerate(matched)])
    all_classes_first = len(label_set) <= len(scores) and hits.sum() == len(label_set)
    return hits, float(all_classes_first)


def _label_indices(classes, labels, item_ids) -> list[np.ndarray]:
    index = {c: k for k, c in enumerate(classes)}
    out = []
    for item_id, item_labels in zip(item_ids, labels, strict=True):
        missing = [label for label in item_labels if label not in index]
        if missing:
            raise DataError(f"item {item_id!r}: labels {missing} are not among the suite's classes")
        out.append(np.array(sorted({index[label] for label in item_labels}), dtype=np.int64))
    return out


def _class_scores(inputs: ScoringInputs, backbone: str, which: str, templates) -> np.ndarray:
    classes = list(inputs.suite.classes)
    text = class_text_embeddings(inputs.text_features(backbone, class_prompts(classes, templates)), len(templates))
    return cosine_similarity(inputs.image_features(backbone, which), text)


def per_item_value(name, per_item, item_ids, higher_is_better, backbone, details) -> MetricValue:
    """A MetricValue whose value is the mean over non-degenerate units."""
    per_item = np.asarray(per_item, dtype=np.float64)
    valid = ~np.isnan(per_item)
    return MetricValue(
        name=name,
        value=float(per_item[valid].mean()) if valid.any() else float("nan"),
        higher_is_better=higher_is_better,
        backbone=backbone,
        per_item=per_item,
        item_ids=list(item_ids),
        n=int(valid.sum()),
        skipped=int((~valid).sum()),
        details=dict(details),
    )


def _options(options: dict) -> tuple[str, tuple[str, ...]]:
    templates = tuple(options.get("templates", DEFAULT_TEMPLATES))
    if not templates or not all(isinstance(t, str) and "{c}" in t for t in templates):
        raise SuiteError(
            f"option 'templates' must be a non-empty list of strings containing '{{c}}', got {templates!r}"
        )
    return options.get("backbone", DEFAULT_BACKBONE), templates


def _ks(options: dict, default: tuple[int, ...], candidates: int) -> tuple[int, ...]:
    """The requested K that can fail: K at or above the number of candidate classes scores 1 for any model."""
    ks = tuple(options.get("ks", default))
    if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise SuiteError(f"option 'ks' must be a non-empty list of positive integers, got {ks!r}")
    return tuple(k for k in ks if k < candidates)


class RetrievalMetric(Metric):
    """R@1/5/10 for single-label items; CRS, CRS-prob and R@2*/5*/10* for mixtures.

    Options: backbone, templates, mode ("single" | "multi", default: "single"
    iff every item has exactly one label) and ks.
    """

    name = "clip-retrieval"
    tasks = frozenset({"generate"})
    options = {"backbone": str, "templates": list, "mode": str, "ks": list}
    backbone_options = frozenset({"backbone"})

    def cards(self) -> list[MetricCard]:
        common = f" Prompts: {PROMPTS_DOC}. Tie rule: {TIE_RULE}. {K_RULE}"
        cards = [
            MetricCard(
                f"R@{k}",
                f"Mean over items of [rank of the true class among the suite's classes <= {k}], "
                f"image->text cosine retrieval.{common}",
                True,
                REFERENCE_S2S,
            )
            for k in (1, 5, 10)
        ]
        cards += [
            MetricCard(
                f"R@{k}*",
                f"Mean over items of [every ground-truth class of the mixture has rank <= {k}].{common}",
                True,
                REFERENCE_AVGAS,
            )
            for k in (2, 5, 10)
        ]
        cards.append(
            MetricCard(
                "CRS",
                f"Mean over items of |G ∩ top_m| / m, m = |G|, top_m = classes of rank <= m.{common}",
                True,
                REFERENCE_AVGAS,
                notes="The paper's exact formula could not be verified; this is avbench's reading of it.",
            )
        )
        cards.append(
            MetricCard(
                "CRS-prob",
                "Mean over items of the summed softmax probability of the ground-truth classes, "
                f"softmax over the suite's classes at the backbone's logit scale.{common}",
                True,
                REFERENCE_AVGAS,
                notes="Reported beside CRS because CRS's exact formula could not be verified.",
            )
        )
        return cards

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        backbone, templates = _options(options)
        label_sets = _label_indices(inputs.suite.classes, inputs.labels, inputs.item_ids)
        mode = options.get("mode") or ("single" if all(len(g) == 1 for g in label_sets) else "multi")
        if mode not in ("single", "multi"):
            raise SuiteError(f"option 'mode' must be 'single' or 'multi', got {mode!r}")
        scores = _class_scores(inputs, backbone, "generated", templates)
        details = {
            "tie_rule": TIE_RULE,
            "templates": list(templates),
            "classes": len(inputs.suite.classes),
            "mode": mode,
        }
        ids = inputs.item_ids
        if mode == "single":
            if any(len(g) != 1 for g in label_sets):
                raise SuiteError("option mode='single' needs exactly one label per item")
            targets = np.array([g[0] for g in label_sets])
            return [
                per_item_value(f"R@{k}[{backbone}]", recall_at_k(scores, targets, k), ids, True, backbone, details)
                for k in _ks(options, (1, 5, 10), len(inputs.suite.classes))
            ]
        scale = float(inputs.logit_scale(backbone))
        values = [
            per_item_value(
                f"CRS[{backbone}]", class_representation_score(scores, label_sets), ids, True, backbone, details
            ),
            per_item_value(
                f"CRS-prob[{backbone}]",
                class_probability_mass(scores, label_sets, scale),
                ids,
                True,
                backbone,
                {**details, "logit_scale": scale},
            ),
        ]
        values += [
            per_item_value(f"R@{k}*[{backbone}]", recall_at_k_star(scores, label_sets, k), ids, True, backbone, details)
            for k in _ks(options, (2, 5, 10), len(inputs.suite.classes))
        ]
        return values


class PerSourceMetric(Metric):
    """sepR@1 (per image) and sep-acc (per mixture) for `generate_per_source`."""

    name = "clip-per-source"
    tasks = frozenset({"generate_per_source"})
    options = {"backbone": str, "templates": list}
    backbone_options = frozenset({"backbone"})

    def cards(self) -> list[MetricCard]:
        match = (
            "Each mixture's images are matched to its ground-truth classes by the Hungarian assignment "
            "maximising total cosine; an image left unmatched counts as a miss."
        )
        common = f" Prompts: {PROMPTS_DOC}. Tie rule: {TIE_RULE}."
        return [
            MetricCard(
                "sepR@1",
                f"{match} Mean over images of [matched class ranks first among the suite's classes].{common}",
                True,
                REFERENCE_AVGAS,
            ),
            MetricCard(
                "sep-acc",
                f"{match} Fraction of mixtures in which every ground-truth class ranks first "
                f"on its matched image.{common}",
                True,
                REFERENCE_AVGAS,
            ),
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        backbone, templates = _options(options)
        label_sets = _label_indices(inputs.suite.classes, inputs.labels, inputs.item_ids)
        groups = list(inputs.per_source_groups())
        if len(groups) != len(label_sets):
            raise DataError(f"per-source groups cover {len(groups)} items, expected {len(label_sets)}")
        scores = _class_scores(inputs, backbone, "per_source", templates)
        if sum(groups) != len(scores):
            raise DataError(f"per-source groups count {sum(groups)} images, features have {len(scores)}")
        starts = np.concatenate([[0], np.cumsum(groups)])
        image_hits, image_ids, mixture_acc = [], [], []
        for k, (item_id, label_set) in enumerate(zip(inputs.item_ids, label_sets, strict=True)):
            hits, acc = per_source_scores(scores[starts[k] : starts[k + 1]], label_set)
            image_hits.extend(hits)
            image_ids.extend(f"{item_id}#{s}" for s in range(len(hits)))
            mixture_acc.append(acc)
        details = {
            "tie_rule": TIE_RULE,
            "templates": list(templates),
            "classes": len(inputs.suite.classes),
            "assignment": "scipy.optimize.linear_sum_assignment(maximize=True) on cosines",
        }
        return [
            per_item_value(f"sepR@1[{backbone}]", image_hits, image_ids, True, backbone, {**details, "unit": "image"}),
            per_item_value(
                f"sep-acc[{backbone}]", mixture_acc, inputs.item_ids, True, backbone, {**details, "unit": "mixture"}
            ),
        ]
