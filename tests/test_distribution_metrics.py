"""CMMD against the paper's formula written out plainly; PRDC against the authors' `prdc` package."""

from __future__ import annotations

import numpy as np
import prdc  # the authors' reference implementation (a test dependency)
import pytest
import torch

from avbench import registry
from avbench.errors import DataError
from avbench.metrics import distribution as D


def reference_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    return {name: float(value) for name, value in prdc.compute_prdc(real, fake, nearest_k=k).items()}


def ours(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    scores = D.prdc_from_features(real, fake, k=k)
    return {name: float(getattr(scores, name).mean()) for name in ("precision", "recall", "density", "coverage")}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_equals_the_prdc_package_on_continuous_features(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(150, 16))
    fake = rng.normal(loc=0.3, scale=1.2, size=(120, 16))
    expected, got = reference_prdc(real, fake, k), ours(real, fake, k)
    assert 0 < expected["precision"] < 1 and 0 < expected["coverage"] < 1  # not a degenerate case
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_prdc_equals_the_prdc_package_with_ties_and_duplicate_points(monkeypatch):
    """Small-integer lattice points: many equal distances, repeated points, generated copies of reference points.

    Distances between such points are exact in float64, so the strict comparisons decide every tie; the test
    checks that ties on a ball's boundary really occur, and that a non-strict rule would give other numbers.
    """
    rng = np.random.default_rng(7)
    real = rng.integers(0, 3, size=(80, 3)).astype(np.float64)
    fake = np.concatenate([rng.integers(0, 4, size=(50, 3)), real[:20]]).astype(np.float64)
    assert len(np.unique(real, axis=0)) < len(real) and len(np.unique(fake, axis=0)) < len(fake)
    monkeypatch.setattr(D, "_BLOCK", 7)  # several distance blocks, one of them ragged
    k = 5
    radii = D._radii(real, k)
    distances = np.sqrt(((real[:, None, :] - fake[None, :, :]) ** 2).sum(-1))
    assert (distances == radii[:, None]).sum() > 20  # generated points exactly on reference balls' boundaries
    non_strict_precision = (distances <= radii[:, None]).any(axis=0).mean()
    expected, got = reference_prdc(real, fake, k), ours(real, fake, k)
    assert non_strict_precision != expected["precision"]
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_prdc_needs_more_points_than_k():
    with pytest.raises(DataError, match="N >= 6"):
        D.prdc_from_features(np.zeros((5, 2)), np.zeros((9, 2)), k=5)


def plain_cmmd(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0, biased: bool = True) -> float:
    """The paper's MMD² with k(a, b) = exp(-|a - b|² / (2 sigma²)) on normalised embeddings, pair by pair."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    if biased:
        return scale * (kxx.sum() / n**2 + kyy.sum() / m**2 - 2 * kxy.sum() / (n * m))
    unbiased_xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    unbiased_yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return scale * (unbiased_xx + unbiased_yy - 2 * kxy.sum() / (n * m))


def test_cmmd_equals_the_biased_estimator_written_out(monkeypatch):
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(70, 24)) * rng.uniform(0.5, 3, size=(70, 1))  # unnormalised rows
    generated = rng.normal(loc=0.2, size=(45, 24)) * 5
    monkeypatch.setattr(D, "_BLOCK", 16)
    value = D.cmmd_from_features(generated, reference)
    expected = plain_cmmd(reference, generated)
    assert value == pytest.approx(expected, rel=1e-9)
    assert abs(plain_cmmd(reference, generated, biased=False) - expected) > 1e-3 * abs(expected)  # the choice matters
    assert D.cmmd_from_features(reference, reference) == pytest.approx(0.0, abs=1e-9)
    # scale-invariant per row (normalised embeddings), symmetric in its two sets
    assert D.cmmd_from_features(generated * 3, reference) == pytest.approx(value, rel=1e-9)
    assert D.cmmd_from_features(reference, generated) == pytest.approx(value, rel=1e-9)


class StubInputs:
    """`ScoringInputs` with fixed features for one backbone."""

    task = "generate"

    def __init__(self, generated: np.ndarray, reference: np.ndarray):
        self.item_ids = [f"item{i}" for i in range(len(generated))]
        self._features = {"generated": generated, "reference": reference}
        self.asked: list[tuple[str, str, str]] = []

    def image_features(self, backbone: str, which: str, layer: str | None = None) -> np.ndarray:
        self.asked.append((backbone, which, layer))
        return self._features[which]


def test_metric_plugins_name_their_backbone_and_report_per_item_scores():
    rng = np.random.default_rng(11)
    generated, reference = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    inputs = StubInputs(generated, reference)
    cmmd = registry.metrics.get("cmmd")().compute(inputs, {"backbone": "clip-synth"})
    assert [(v.name, v.higher_is_better, v.per_item) for v in cmmd] == [("CMMD[clip-synth]", False, None)]
    assert cmmd[0].value == pytest.approx(plain_cmmd(reference, generated), rel=1e-9)
    values = {v.name: v for v in registry.metrics.get("prdc")().compute(inputs, {"backbone": "clip-synth", "k": 3})}
    expected = reference_prdc(reference, generated, 3)
    for name in ("precision", "recall", "density", "coverage"):
        value = values[f"{name}[clip-synth]"]
        assert value.higher_is_better and value.value == pytest.approx(expected[name], abs=1e-12)
        assert value.per_item is not None and value.per_item.mean() == pytest.approx(expected[name], abs=1e-12)
    assert set(inputs.asked) == {("clip-synth", "generated", "embedding"), ("clip-synth", "reference", "embedding")}
    # a reference set of another size has no per-item reading for recall and coverage
    values = {v.name: v for v in registry.metrics.get("prdc")().compute(StubInputs(generated, reference[:30]), {})}
    assert values["recall[dinov2-vitl14]"].per_item is None and values["precision[dinov2-vitl14]"].per_item is not None


def test_cards_document_every_reported_name():
    cards = {c.name: c for name in ("cmmd", "prdc") for c in registry.metrics.get(name)().cards()}
    assert set(cards) == {"CMMD", "precision", "recall", "density", "coverage"}
    assert "σ = 10" in cards["CMMD"].definition and "biased" in cards["CMMD"].definition
    assert "cmmd/distance.py" in cards["CMMD"].reference
    assert all("prdc" in cards[n].reference for n in ("precision", "recall", "density", "coverage"))


@pytest.mark.timeout(900)
def test_suite_metrics_read_an_imported_reference_set(tmp_path):
    """CMMD and PRDC in a synthetic suite, with the reference features exported, imported and found in the cache."""
    import avbench
    from avbench import reference_sets

    meta = reference_sets.export("synth-single", "clip-synth", tmp_path / "ref.npz", cache_dir=tmp_path / "made-here")
    fresh = tmp_path / "elsewhere"
    reference_sets.import_file(tmp_path / "ref.npz", cache_dir=fresh)
    record = avbench.evaluate("oracle", "synth-single", out=tmp_path / "run", cache_dir=fresh)
    assert record.calls["feature_cache_hits"] >= 1 and meta["n"] == 200
    with np.load(tmp_path / "ref.npz") as data:
        reference = data["embedding"]
    # the oracle returns each item's reference frame, so the generated features are the exported ones
    cmmd = record.metric("CMMD[clip-synth]").value
    assert cmmd == pytest.approx(D.cmmd_from_features(reference, reference), abs=1e-9)
    expected = reference_prdc(reference, reference, 5)
    for name in ("precision", "recall", "density", "coverage"):
        entry = record.metric(f"{name}[clip-synth]")
        assert entry.value == pytest.approx(expected[name], abs=1e-12) and entry.ci_low is not None


def test_fidelity_cli_scores_cmmd_and_prdc_between_folders(tmp_path):
    """`avbench fidelity DIR1 DIR2 --metrics cmmd,prdc,fd-dinov2`, here with the world's CLIP in both roles."""
    import json

    import typer
    from PIL import Image
    from typer.testing import CliRunner

    from avbench.cli import fidelity as fidelity_cli
    from avbench.features import Backbones
    from avbench.image_folders import encode_files, list_images

    rng = np.random.default_rng(5)
    for name, shift in (("generated", 40), ("reference", 0)):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(12):
            image = np.clip(rng.normal(128 + shift, 50, (48, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{i:02d}.png")
    app = typer.Typer()
    app.command()(fidelity_cli.fidelity)
    args = [
        str(tmp_path / "generated"),
        str(tmp_path / "reference"),
        "--metrics",
        "cmmd,prdc,fd-dinov2",
        "--json",
        "--cmmd-backbone",
        "clip-synth",
        "--dinov2-backbone",
        "clip-synth",
        "--prdc-k",
        "3",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert set(metrics) == {"CMMD[clip-synth]", "FD[clip-synth]"} | {
        f"{n}[clip-synth]" for n in ("precision", "recall", "density", "coverage")
    }
    extractor = Backbones(torch.device("cpu")).get("clip-synth")
    generated, reference = (
        encode_files(list_images(tmp_path / which), extractor, 64)["embedding"] for which in ("generated", "reference")
    )
    assert metrics["CMMD[clip-synth]"]["value"] == pytest.approx(plain_cmmd(reference, generated), rel=1e-6)
    expected = reference_prdc(reference, generated, 3)
    for name in ("precision", "recall", "density", "coverage"):
        assert metrics[f"{name}[clip-synth]"]["value"] == pytest.approx(expected[name], abs=1e-12)
    clash = [*args[:3], "prdc,fd-dinov2,cmmd", "--dinov2-weights", str(tmp_path / "generated" / "00.png")]
    assert "two different weights files" in str(CliRunner().invoke(app, clash + args[4:]).exception)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("suite", ["synth-single", "synth-mixed2"])
def test_sanity_models_order_on_cmmd_and_prdc(leaderboard_runs, suite):
    """Noise is worst on each new metric, of the leaderboard models, and the oracle (the reference scenes) best.

    Density is not bounded by 1: a model crowding dense regions scores above it. The oracle's generated set equals
    the reference set, where density is exactly 1 (each ball holds its own centre and k - 1 neighbours).
    """
    records = leaderboard_runs.records(suite)
    assert records["oracle"].metric("density[clip-synth]").value == pytest.approx(1.0, abs=1e-12)
    for metric in ("CMMD", "precision", "recall", "density", "coverage"):
        name = f"{metric}[clip-synth]"
        sign = 1 if records["oracle"].metric(name).higher_is_better else -1
        values = {model: sign * record.metric(name).value for model, record in records.items()}
        assert values["random"] == min(values.values()) and values["oracle"] > values["random"], (name, values)
        if metric != "density":
            assert values["oracle"] == max(values.values()), (name, values)
