"""CMMD and precision / recall / density / coverage: distribution metrics beyond the Fréchet distance.

CMMD (Jayasumana et al., CVPR 2024). Reference: google-research/google-research
`cmmd/distance.py`. MMD² with the Gaussian RBF kernel k(x, y) = exp(-||x - y||² / (2σ²)),
σ = 10, times 1000, between L2-normalised CLIP ViT-L/14@336px image embeddings
(`cmmd/embedding.py` takes scenic CLIP's `encode_image`, which normalises). The
official code uses the biased, minimum-variance estimator (Gretton et al. 2012,
Eq. 5, a V-statistic): the plain means of k over all n², m² and nm pairs,
diagonals included; avbench follows it, in float64 (the reference runs in
float32), summing the kernel in row blocks so memory stays O(block · m).

Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et
al. 2020), as the authors' `prdc` package (clovaai/generative-evaluation-prdc,
`compute_prdc`) computes them: the radius of a point is its Euclidean distance to
its k-th nearest neighbour in its own set (the (k+1)-th smallest distance, the
point itself included); comparisons are strict (<).
  precision = mean over generated g of [g is inside some reference ball]
  recall    = mean over reference r of [r is inside some generated ball]
  density   = mean over generated g of (number of reference balls holding g) / k
  coverage  = mean over reference r of [r's nearest generated point is inside r's ball]
Distances are float64 sqrt(|x|² + |y|² - 2 x·y) clipped at 0 (the formula of
scikit-learn's `pairwise_distances`, which `prdc` calls), in row blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import AvbenchError, DataError
from .base import Metric, MetricCard, MetricValue, ScoringInputs
from .fidelity import feature_layer

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
PRDC_K = 5
CMMD_BACKBONE = "clip-vit-l14-336-openai"
PRDC_BACKBONE = "dinov2-vitl14"  # dgm-eval's default representation for PRDC
_BLOCK = 1024  # rows per distance block
CMMD_REFERENCE = "google-research/google-research cmmd/distance.py mmd() (Jayasumana et al. 2024)"
PRDC_REFERENCE = "prdc package compute_prdc (clovaai; Kynkäänniemi et al. 2019, Naeem et al. 2020)"


def _features(array: Any, what: str, at_least: int = 1) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < at_least:
        raise DataError(f"{what}: expected a [N, D] feature array with N >= {at_least}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{what}: {int((~np.isfinite(array)).any(axis=1).sum())} feature rows are NaN or infinite")
    return array


def _squared_distances(x: np.ndarray, y: np.ndarray, x_sq: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    return np.maximum(x_sq[:, None] + y_sq[None, :] - 2.0 * (x @ y.T), 0.0)


def _kernel_mean(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Mean of exp(-gamma ||x_i - y_j||²) over all pairs, by row blocks."""
    x_sq, y_sq = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    total = 0.0
    for start in range(0, len(x), _BLOCK):
        block = slice(start, start + _BLOCK)
        total += float(np.exp(-gamma * _squared_distances(x[block], y, x_sq[block], y_sq)).sum())
    return total / (len(x) * len(y))


def cmmd_from_features(generated: Any, reference: Any) -> float:
    """1000 · biased MMD² with a Gaussian RBF kernel of bandwidth σ = 10, on L2-normalised embeddings."""
    x = _features(reference, "CMMD reference")
    y = _features(generated, "CMMD generated")
    if x.shape[1] != y.shape[1]:
        raise DataError(f"CMMD: feature dimensions differ ({y.shape[1]} vs {x.shape[1]})")
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    gamma = 1.0 / (2.0 * CMMD_SIGMA**2)
    return CMMD_SCALE * (_kernel_mean(x, x, gamma) + _kernel_mean(y, y, gamma) - 2.0 * _kernel_mean(x, y, gamma))


def _distance_block(x: np.ndarray, y: np.ndarray, x_sq: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    return np.sqrt(_squared_distances(x, y, x_sq, y_sq))


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest neighbour in `x` (itself at distance 0 counted first)."""
    x_sq = np.einsum("ij,ij->i", x, x)
    radii = np.empty(len(x))
    for start in range(0, len(x), _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, len(x)))
        distances = _distance_block(x[rows], x, x_sq[rows], x_sq)
        distances[np.arange(len(rows)), rows] = 0.0
        radii[rows] = np.partition(distances, k, axis=1)[:, k]
    return radii


@dataclass(frozen=True)
class PrdcScores:
    """Per-point indicators: `precision` and `density` per generated point, `recall` and `coverage` per reference."""

    precision: np.ndarray
    density: np.ndarray
    recall: np.ndarray
    coverage: np.ndarray
    k: int


def prdc_from_features(reference: Any, generated: Any, *, k: int = PRDC_K) -> PrdcScores:
    """Precision, recall, density and coverage of `generated` against `reference`, per point."""
    real = _features(reference, "PRDC reference", at_least=k + 1)
    fake = _features(generated, "PRDC generated", at_least=k + 1)
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"PRDC: feature dimensions differ ({fake.shape[1]} vs {real.shape[1]})")
    real_radii, fake_radii = _radii(real, k), _radii(fake, k)
    real_sq, fake_sq = np.einsum("ij,ij->i", real, real), np.einsum("ij,ij->i", fake, fake)
    balls_holding = np.zeros(len(fake), dtype=np.int64)  # per generated point: reference balls it lies in
    recall = np.empty(len(real))
    coverage = np.empty(len(real))
    for start in range(0, len(real), _BLOCK):
        rows = slice(start, start + _BLOCK)
        distances = _distance_block(real[rows], fake, real_sq[rows], fake_sq)  # [reference block, generated]
        balls_holding += (distances < real_radii[rows, None]).sum(axis=0)
        recall[rows] = (distances < fake_radii[None, :]).any(axis=1)
        coverage[rows] = distances.min(axis=1) < real_radii[rows]
    return PrdcScores(
        precision=(balls_holding > 0).astype(np.float64),
        density=balls_holding / float(k),
        recall=recall,
        coverage=coverage,
        k=k,
    )


def _check_options(metric: Metric, options: dict) -> None:
    unknown = set(options) - set(metric.options)
    if unknown:
        raise AvbenchError(
            f"metric {metric.name!r}: unknown option(s) {sorted(unknown)}; known: {sorted(metric.options)}"
        )


def _pair(inputs: ScoringInputs, backbone: str) -> tuple[np.ndarray, np.ndarray]:
    from ..registry import backbones

    layer = feature_layer(backbone, backbones.get(backbone).kind)
    return (
        inputs.image_features(backbone, "generated", layer=layer),
        inputs.image_features(backbone, "reference", layer=layer),
    )


class CmmdMetric(Metric):
    """CMMD of the generated images against the suite's reference images."""

    name: ClassVar[str] = "cmmd"
    tasks: ClassVar[frozenset[str]] = frozenset({"generate"})
    options: ClassVar[dict] = {"backbone": str}
    backbone_options: ClassVar[frozenset[str]] = frozenset({"backbone"})

    def cards(self) -> list[MetricCard]:
        return [
            MetricCard(
                name="CMMD",
                definition=(
                    f"{CMMD_SCALE:g} · MMD² between the L2-normalised image embeddings of the generated and the "
                    f"reference images, Gaussian RBF kernel exp(-|x - y|² / (2σ²)) with σ = {CMMD_SIGMA:g}, biased "
                    "(minimum-variance, V-statistic) estimator as in the official code: mean k(x, x') + mean k(y, y') "
                    "- 2 mean k(x, y) over all pairs, diagonals included; float64. Canonical backbone "
                    f"{CMMD_BACKBONE}: the central square, PIL bicubic to 336x336, /255, CLIP mean/std "
                    "(google-research cmmd/io_util.py _center_crop_and_resize, cmmd/embedding.py), the projected "
                    "image embedding. No per-item decomposition, so no interval is reported."
                ),
                higher_is_better=False,
                reference=CMMD_REFERENCE,
            )
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        _check_options(self, options)
        backbone = options.get("backbone", CMMD_BACKBONE)
        generated, reference = _pair(inputs, backbone)
        details = {
            "sigma": CMMD_SIGMA,
            "scale": CMMD_SCALE,
            "estimator": "biased (V-statistic), as google-research cmmd",
            "embeddings": "L2-normalised",
            "n_reference": len(reference),
            "interval": "none (no per-item decomposition)",
        }
        value = cmmd_from_features(generated, reference)
        return [MetricValue(f"CMMD[{backbone}]", value, False, backbone, n=len(generated), details=details)]


class PrdcMetric(Metric):
    """Precision, recall, density and coverage of the generated images against the reference images."""

    name: ClassVar[str] = "prdc"
    tasks: ClassVar[frozenset[str]] = frozenset({"generate"})
    options: ClassVar[dict] = {"backbone": str, "k": int}
    backbone_options: ClassVar[frozenset[str]] = frozenset({"backbone"})

    def cards(self) -> list[MetricCard]:
        common = (
            f"k-NN balls with k = {PRDC_K} (option k): a point's radius is the distance to its k-th nearest neighbour "
            "in its own set; strict comparisons; float64 Euclidean distances. Default backbone "
            f"{PRDC_BACKBONE} (dgm-eval's representation)."
        )
        given = " The interval is a bootstrap over the {} images with the {} set held fixed."
        return [
            MetricCard(
                "precision",
                "Fraction of generated images inside at least one reference image's k-NN ball. "
                + common
                + given.format("generated", "reference"),
                True,
                PRDC_REFERENCE,
            ),
            MetricCard(
                "recall",
                "Fraction of reference images inside at least one generated image's k-NN ball. "
                + common
                + given.format("reference", "generated"),
                True,
                PRDC_REFERENCE,
            ),
            MetricCard(
                "density",
                "Mean over generated images of the number of reference k-NN balls holding it, "
                "divided by k (can exceed 1). " + common + given.format("generated", "reference"),
                True,
                PRDC_REFERENCE,
            ),
            MetricCard(
                "coverage",
                "Fraction of reference images whose nearest generated image lies inside their own "
                "k-NN ball. " + common + given.format("reference", "generated"),
                True,
                PRDC_REFERENCE,
            ),
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        _check_options(self, options)
        backbone = options.get("backbone", PRDC_BACKBONE)
        k = int(options.get("k", PRDC_K))
        if k < 1:
            raise AvbenchError(f"metric 'prdc': k must be at least 1, got {k}")
        generated, reference = _pair(inputs, backbone)
        scores = prdc_from_features(reference, generated, k=k)
        details = {"k": k, "n_reference": len(reference), "n_generated": len(generated)}
        out = []
        for name, per_point, side in (
            ("precision", scores.precision, "generated"),
            ("recall", scores.recall, "reference"),
            ("density", scores.density, "generated"),
            ("coverage", scores.coverage, "reference"),
        ):
            # Per-point scores bootstrap as per-item scores where a point is an item: every generated image is
            # one, a reference image is one when the reference set has one image per item (a suite's frames).
            per_item = per_point if side == "generated" or len(per_point) == len(inputs.item_ids) else None
            value_details = {**details, "per_point": f"per {side} image, the other set held fixed"}
            out.append(
                MetricValue(
                    f"{name}[{backbone}]",
                    float(per_point.mean()),
                    True,
                    backbone,
                    per_item=per_item,
                    n=len(per_point),
                    details=value_details,
                )
            )
        return out
