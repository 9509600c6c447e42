"""FID / KID / IS, and Fréchet distance on any backbone, exact to torch-fidelity.

The numbers must equal torch-fidelity's `calculate_metrics` on the same images
and weights, so the statistics are torch-fidelity's own functions:
`fid_statistics_to_metric`, `kid_features_to_metric`, `isc_features_to_metric`.
What avbench adds is around them: streaming, mergeable float64 Gaussian
statistics (so FID of N items can be computed in chunks and across processes),
a clear small-N policy, and metric names that carry their backbone.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..defaults import BACKBONE_LAYERS, FIDELITY_METRICS, FIDELITY_SEED, IS_SPLITS, KID_SUBSET_SIZE, KID_SUBSETS
from ..errors import AvbenchError, DataError
from .base import Metric, MetricCard, MetricValue, ScoringInputs

_STATS_FORMAT = "avbench-gaussian-stats-v1"


def _features(array: Any, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[0] == 0:
        raise DataError(f"{what}: expected a non-empty [N, D] feature array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{what}: {int((~np.isfinite(array)).any(axis=1).sum())} feature rows are NaN or infinite")
    return array


@dataclass(eq=False)
class GaussianStats:
    """Sufficient statistics of a feature set: count, float64 sum and sum of outer products.

    Sums merge by plain addition (an all-reduce SUM across processes), so
    chunked and merged statistics equal one-shot ones up to float64 rounding.
    """

    dim: int
    count: int = 0
    sum: np.ndarray = field(default=None)  # type: ignore[assignment]
    outer: np.ndarray = field(default=None)  # type: ignore[assignment]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sum is None:
            self.sum = np.zeros(self.dim, dtype=np.float64)
        if self.outer is None:
            self.outer = np.zeros((self.dim, self.dim), dtype=np.float64)

    @classmethod
    def of(cls, features: Any) -> "GaussianStats":
        features = _features(features, "GaussianStats")
        return cls(features.shape[1]).update(features)

    def update(self, features: Any) -> "GaussianStats":
        features = _features(features, "GaussianStats.update").astype(np.float64, copy=False)
        if features.shape[1] != self.dim:
            raise DataError(f"GaussianStats: features have dimension {features.shape[1]}, statistics {self.dim}")
        self.count += features.shape[0]
        self.sum += features.sum(axis=0)
        self.outer += features.T @ features
        return self

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        if other.dim != self.dim:
            raise DataError(f"GaussianStats: cannot merge dimension {other.dim} into {self.dim}")
        self.count += other.count
        self.sum += other.sum
        self.outer += other.outer
        return self

    @property
    def mu(self) -> np.ndarray:
        self._need(1)
        return self.sum / self.count

    @property
    def sigma(self) -> np.ndarray:
        """Unbiased covariance (N - 1), as np.cov and torch-fidelity use."""
        self._need(2)
        mu = self.sum / self.count
        return (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)

    def _need(self, n: int) -> None:
        if self.count < n:
            raise DataError(f"GaussianStats: need at least {n} feature rows, have {self.count}")

    def to_file(self, path: str | Path, metadata: dict | None = None) -> None:
        """Write .npz, or .safetensors when the name says so; `metadata` (JSON) travels along."""
        from ..cache import atomic_write

        path = Path(path)
        meta = json.dumps({"format": _STATS_FORMAT, **self.metadata, **(metadata or {})}, sort_keys=True)
        arrays = {"count": np.array([self.count], dtype=np.int64), "sum": self.sum, "outer": self.outer}
        if path.suffix == ".safetensors":
            from safetensors.numpy import save

            data = save(arrays, metadata={"avbench": meta})
        else:
            buffer = io.BytesIO()
            np.savez(buffer, metadata=np.array(meta), **arrays)
            data = buffer.getvalue()
        atomic_write(path, data)

    @classmethod
    def from_file(cls, path: str | Path) -> "GaussianStats":
        path = Path(path)
        try:
            if path.suffix == ".safetensors":
                from safetensors import safe_open
                from safetensors.numpy import load_file

                arrays = load_file(str(path))
                with safe_open(str(path), framework="numpy") as handle:
                    meta = json.loads((handle.metadata() or {}).get("avbench", "{}"))
            else:
                with np.load(path, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
                meta = json.loads(str(arrays.pop("metadata", "{}")))
            count, total, outer = int(arrays["count"][0]), arrays["sum"], arrays["outer"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a readable statistics file ({exc})") from None
        if meta.pop("format", None) != _STATS_FORMAT or outer.shape != (total.size, total.size):
            raise DataError(f"{path}: not an avbench Gaussian statistics file")
        return cls(total.size, count, total.astype(np.float64), outer.astype(np.float64), meta)


def fd_from_stats(generated: GaussianStats, reference: GaussianStats) -> float:
    """Fréchet distance between two fitted Gaussians, by torch-fidelity's own formula."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    if generated.dim != reference.dim:
        raise DataError(f"Fréchet distance: feature dimensions differ ({generated.dim} vs {reference.dim})")
    stats = [{"mu": s.mu, "sigma": s.sigma} for s in (generated, reference)]
    return float(fid_statistics_to_metric(stats[0], stats[1], verbose=False)[KEY_METRIC_FID])


def fid_from_features(generated: Any, reference: Any) -> float:
    """Fréchet distance of two [N, D] feature sets (float64 statistics)."""
    return fd_from_stats(GaussianStats.of(generated), GaussianStats.of(reference))


@dataclass(frozen=True)
class SpreadScore:
    """A distribution metric with its own spread (std over KID subsets or IS splits)."""

    value: float
    spread: float
    details: dict


def kid_from_features(
    generated: Any,
    reference: Any,
    *,
    subset_size: int = KID_SUBSET_SIZE,
    subsets: int = KID_SUBSETS,
    seed: int = FIDELITY_SEED,
    allow_small_n: bool = False,
) -> SpreadScore:
    """KID (unbiased MMD², cubic polynomial kernel) by torch-fidelity's `kid_features_to_metric`.

    Features are handed over as float32, as torch-fidelity holds its
    extractor's output: KID is a difference of large kernel sums, and a float64
    computation differs from the reference by up to ~1e-3 relative when KID≈0.
    Extractor outputs are float32, so the cast loses nothing.
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    generated, reference = _features(generated, "KID generated"), _features(reference, "KID reference")
    n = min(len(generated), len(reference))
    small = n < subset_size
    if small and not allow_small_n:
        raise AvbenchError(
            f"KID needs at least {subset_size} items per set (subset size), got {len(generated)} generated and "
            f"{len(reference)} reference; use more items, a smaller kid_subset_size, or allow_small_n "
            f"(--allow-small-n on the command line) to shrink the subsets to {n}"
        )
    if n < 2:
        raise AvbenchError(f"KID needs at least 2 items per set, got {n}")
    size = n if small else subset_size
    out = kid_features_to_metric(
        torch.from_numpy(np.ascontiguousarray(generated, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)),
        kid_subsets=subsets,
        kid_subset_size=size,
        rng_seed=seed,
        verbose=False,
    )
    details = {
        "subset_size": size,
        "subsets": subsets,
        "seed": seed,
        "kernel": "poly, degree 3, gamma 1/dim, coef0 1",
        "small_n": small,
    }
    if small:
        details["note"] = (
            f"allow_small_n: subset size shrunk from {subset_size} to {size}; not comparable with full-size KID"
        )
    return SpreadScore(float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD]), details)


def isc_from_logits(
    logits: Any, *, splits: int = IS_SPLITS, seed: int = FIDELITY_SEED, allow_small_n: bool = False
) -> SpreadScore:
    """Inception Score by torch-fidelity's `isc_features_to_metric` (seeded shuffle, then splits).

    With fewer images than splits, `allow_small_n` shrinks the splits to one image each, as KID
    shrinks its subsets; the record says so, since such an IS is not comparable with the protocol's.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    logits = _features(logits, "IS logits")
    small = len(logits) < splits
    if small and not allow_small_n:
        raise AvbenchError(
            f"IS with {splits} splits needs at least {splits} images, got {len(logits)}; use more items, "
            f"fewer is_splits, or allow_small_n (--allow-small-n on the command line) to use {len(logits)} splits"
        )
    used = len(logits) if small else splits
    out = isc_features_to_metric(
        torch.from_numpy(np.ascontiguousarray(logits)), splits=used, shuffle=True, rng_seed=seed
    )
    details = {"splits": used, "seed": seed, "shuffle": True, "small_n": small}
    if small:
        details["note"] = f"allow_small_n: splits shrunk from {splits} to {used}; not comparable with {splits}-split IS"
    return SpreadScore(float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD]), details)


def feature_layer(backbone_name: str, kind: str) -> str:
    """The layer a backbone kind feeds distribution metrics (Fréchet distance, KID, CMMD, PRDC)."""
    if kind not in BACKBONE_LAYERS:
        raise AvbenchError(f"backbone {backbone_name!r} is a {kind} backbone; use an image backbone")
    return BACKBONE_LAYERS[kind][0]


def fd_label(backbone_name: str, kind: str) -> str:
    """FID on Inception, CLIP-FID on OpenAI-style CLIP ViTs (clean-fid's name), FD elsewhere."""
    if kind == "inception":
        return "FID"
    if kind == "clip" and backbone_name.startswith("clip-vit"):
        return "CLIP-FID"
    return "FD"


class FidelityMetric(Metric):
    """FD / KID / IS of the generated images against the suite's reference images."""

    name: ClassVar[str] = "fidelity"
    tasks: ClassVar[frozenset[str]] = frozenset({"generate"})
    options: ClassVar[dict] = {
        "backbone": str,
        "metrics": list,
        "allow_small_n": bool,
        "kid_subset_size": int,
        "kid_subsets": int,
        "is_splits": int,
        "seed": int,
    }
    backbone_options: ClassVar[frozenset[str]] = frozenset({"backbone"})

    def cards(self) -> list[MetricCard]:
        return [
            MetricCard(
                name="FID",
                definition=(
                    "Fréchet distance between Gaussians fitted in float64 to backbone features of the generated and "
                    "the "
                    "reference images: Inception pool3 (FID), CLIP image embeddings (CLIP-FID / FD), or DINOv2 "
                    "ViT-L/14 CLS tokens after the final norm (FD[dinov2-vitl14], FD-DINOv2 of Stein et al. 2023) with "
                    "dgm-eval's preprocessing: PIL bicubic resize to 224x224 whatever the aspect, /255, ImageNet "
                    "mean/std (layer6ai-labs/dgm-eval dgm_eval/models/dinov2.py); the same statistics code for all. "
                    "No per-item decomposition, so no interval is reported"
                ),
                higher_is_better=False,
                reference="torch-fidelity metric_fid.fid_statistics_to_metric (TTUR formula; Heusel et al. 2017)",
            ),
            MetricCard(
                name="KID",
                definition=(
                    f"unbiased MMD² with the kernel (x·y/d + 1)³, averaged over {KID_SUBSETS} random subsets of "
                    f"{KID_SUBSET_SIZE} items per set (seed {FIDELITY_SEED}); spread = std over subsets; "
                    "fewer items fail unless allow_small_n"
                ),
                higher_is_better=False,
                reference="torch-fidelity metric_kid.kid_features_to_metric (Bińkowski et al. 2018)",
            ),
            MetricCard(
                name="IS",
                definition=(
                    f"exp(E_x KL(p(y|x) || p(y))) on Inception logits without the fc bias, over {IS_SPLITS} splits "
                    f"after a shuffle with seed {FIDELITY_SEED}; spread = std over splits; fewer images than splits "
                    "fail unless allow_small_n (one image per split, recorded)"
                ),
                higher_is_better=True,
                reference="torch-fidelity metric_isc.isc_features_to_metric (Salimans et al. 2016)",
            ),
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        from ..registry import backbones

        unknown = set(options) - set(self.options)
        if unknown:
            raise AvbenchError(f"metric 'fidelity': unknown option(s) {sorted(unknown)}; known: {sorted(self.options)}")
        backbone = options.get("backbone", "inception-v3-compat")
        kind = backbones.get(backbone).kind
        wanted = list(options.get("metrics", FIDELITY_METRICS))
        if not set(wanted) <= set(FIDELITY_METRICS) or not wanted:
            raise AvbenchError(f"metric 'fidelity': metrics must be a non-empty subset of fd, kid, is, got {wanted}")
        if kind not in BACKBONE_LAYERS:
            raise AvbenchError(f"metric 'fidelity': backbone {backbone!r} is a {kind} backbone; use an image backbone")
        layer, is_layer = BACKBONE_LAYERS[kind]
        if "is" in wanted and is_layer is None:
            raise AvbenchError(f"metric 'fidelity': IS needs an Inception backbone, not {backbone!r}")
        one = {"fd": self._fd, "kid": self._kid, "is": self._is}
        return [one[m](inputs, options, backbone, kind, is_layer if m == "is" else layer) for m in wanted]

    @staticmethod
    def _pair(inputs: ScoringInputs, backbone: str, layer: str) -> tuple[np.ndarray, np.ndarray]:
        return (
            inputs.image_features(backbone, "generated", layer=layer),
            inputs.image_features(backbone, "reference", layer=layer),
        )

    def _fd(self, inputs, options, backbone, kind, layer) -> MetricValue:
        generated, reference = self._pair(inputs, backbone, layer)
        value = fid_from_features(generated, reference)
        details = {
            "layer": layer,
            "n_reference": len(reference),
            "dim": generated.shape[1],
            "statistics": "float64 mean and covariance",
        }
        if min(len(generated), len(reference)) <= generated.shape[1]:
            details["note"] = "fewer items than feature dimensions: the covariances are rank-deficient"
        return MetricValue(
            f"{fd_label(backbone, kind)}[{backbone}]", value, False, backbone, n=len(generated), details=details
        )

    def _kid(self, inputs, options, backbone, kind, layer) -> MetricValue:
        generated, reference = self._pair(inputs, backbone, layer)
        score = kid_from_features(
            generated,
            reference,
            subset_size=int(options.get("kid_subset_size", KID_SUBSET_SIZE)),
            subsets=int(options.get("kid_subsets", KID_SUBSETS)),
            seed=int(options.get("seed", FIDELITY_SEED)),
            allow_small_n=bool(options.get("allow_small_n", getattr(inputs, "allow_small_n", False))),
        )
        details = {"layer": layer, "n_reference": len(reference), **score.details}
        return MetricValue(
            f"KID[{backbone}]", score.value, False, backbone, spread=score.spread, n=len(generated), details=details
        )

    def _is(self, inputs, options, backbone, kind, layer) -> MetricValue:
        logits = inputs.image_features(backbone, "generated", layer=layer)
        score = isc_from_logits(
            logits,
            splits=int(options.get("is_splits", IS_SPLITS)),
            seed=int(options.get("seed", FIDELITY_SEED)),
            allow_small_n=bool(options.get("allow_small_n", getattr(inputs, "allow_small_n", False))),
        )
        return MetricValue(
            f"IS[{backbone}]",
            score.value,
            True,
            backbone,
            spread=score.spread,
            n=len(logits),
            details={"layer": layer, **score.details},
        )
