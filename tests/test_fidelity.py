"""FID / KID / IS parity with torch-fidelity's own `calculate_metrics`, plus the statistics in closed form.

The Inception weights are random (no download), fixed so they discriminate
(a freshly initialised Inception maps every input to nearly one feature): BatchNorm statistics are
recomputed on random batches and the final fc is scaled by 0.02. Each folder
mixes 64, 128 and 512 px images (never 299) in runs aligned with the batch
size, so torch-fidelity's DataLoader can batch them. Inception runs at a few
images per second on these CPUs, so the folders are small and every heavy
pass happens once per session.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import scipy.linalg
import torch
import typer
from fake_weights import calibrate_random_inception
from PIL import Image
from typer.testing import CliRunner

from avbench import image_folders, registry
from avbench.backbones.base import BackboneSpec
from avbench.backbones.catalog import INCEPTION_V3_COMPAT
from avbench.backbones.inception import load_inception
from avbench.cli import fidelity as fidelity_cli
from avbench.errors import AvbenchError, CheckpointError, WeightsError
from avbench.metrics import fidelity as F

SIZES = (64, 128, 512)
PER_SIZE = 20  # images per size per folder; the batch size, so no batch mixes sizes
KID_SUBSET = 25  # smaller than the 60 images per folder, so the KID subsets really are subsets
BACKBONE = INCEPTION_V3_COMPAT.name


def ensure_backbone(name: str, target) -> None:
    if name not in registry.backbones:
        registry.backbones.register(name, target)


def random_inception_weights(path: Path) -> Path:
    """torch-fidelity's InceptionV3 with seeded random weights that still discriminate."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    empty = path.with_name("empty.pth")
    torch.save({}, empty)
    with (
        torch.random.fork_rng(),
        mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None),
    ):
        torch.manual_seed(20240601)
        net = FeatureExtractorInceptionV3(BACKBONE, ["logits"], feature_extractor_weights_path=str(empty))
        calibrate_random_inception(net)
    torch.save(net.state_dict(), path)
    return path


def synthetic_image(rng: np.random.Generator, size: int, style: str) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    t = x * np.cos(angle) + y * np.sin(angle)
    if style == "gradients":
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        image = c0 + (c1 - c0) * (t - t.min())[..., None] / (np.ptp(t) + 1e-9)
        x0, y0 = rng.integers(0, size // 2, 2)
        image[y0 : y0 + size // 3, x0 : x0 + size // 3] = rng.uniform(0, 255, 3)
    else:
        stripes = np.sin(2 * np.pi * rng.uniform(2, 12) * t)[..., None]
        image = 127.5 + 120 * stripes * rng.uniform(-1, 1, 3)
    image = image + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_folder(directory: Path, style: str, seed: int) -> Path:
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    index = 0
    for size in SIZES:
        for _ in range(PER_SIZE):
            Image.fromarray(synthetic_image(rng, size, style)).save(directory / f"img_{index:03d}.png")
            index += 1
    return directory


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    ensure_backbone(BACKBONE, "avbench.backbones.catalog:INCEPTION_V3_COMPAT")
    return {
        "weights": random_inception_weights(root / "random-inception.pth"),
        "generated": write_folder(root / "generated", "gradients", seed=1),
        "reference": write_folder(root / "reference", "stripes", seed=2),
        "root": root,
    }


@pytest.fixture(scope="session")
def torch_fidelity_run(setup):
    """calculate_metrics on the two folders; its cache gives us its features too."""
    import torch_fidelity

    cache = setup["root"] / "tf-cache"
    metrics = torch_fidelity.calculate_metrics(
        input1=str(setup["generated"]),
        input2=str(setup["reference"]),
        cuda=False,
        isc=True,
        fid=True,
        kid=True,
        kid_subset_size=KID_SUBSET,
        batch_size=PER_SIZE,
        feature_extractor_weights_path=str(setup["weights"]),
        verbose=False,
        save_cpu_ram=True,
        cache_root=str(cache),
        input1_cache_name="generated",
        input2_cache_name="reference",
    )
    features = {
        (which, layer): torch.load(cache / f"{which}-{BACKBONE}-features-{layer}.pt").numpy()
        for which in ("generated", "reference")
        for layer in ("2048", "logits_unbiased")
    }
    return metrics, features


@pytest.fixture(scope="session")
def cli_run(setup):
    """`avbench fidelity DIR1 DIR2 --json` end to end, recording the features it extracted."""
    import json

    captured = {}
    real = image_folders.encode_files

    def recording(files, extractor, batch_size):
        out = real(files, extractor, batch_size)
        captured[files[0].parent.name] = out
        return out

    app = typer.Typer()
    app.command()(fidelity_cli.fidelity)
    args = [
        str(setup["generated"]),
        str(setup["reference"]),
        "--metrics",
        "fid,kid,is",
        "--weights",
        str(setup["weights"]),
        "--json",
        "--batch-size",
        str(PER_SIZE),
        "--device",
        "cpu",
        "--kid-subset-size",
        str(KID_SUBSET),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_folders, "encode_files", recording)
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), captured


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.timeout(900)
def test_features_are_bit_identical_to_torch_fidelity(torch_fidelity_run, cli_run):
    _, reference_features = torch_fidelity_run
    _, ours = cli_run
    for (which, layer), expected in reference_features.items():
        assert ours[which][layer].shape == expected.shape == ((60, 2048) if layer == "2048" else (60, 1008))
        np.testing.assert_array_equal(ours[which][layer], expected.astype(np.float64))


@pytest.mark.timeout(900)
def test_cli_json_equals_calculate_metrics(setup, torch_fidelity_run, cli_run):
    expected, _ = torch_fidelity_run
    out, _ = cli_run
    values = out["metrics"]
    fid, kid, isc = (values[f"{m}[{BACKBONE}]"] for m in ("FID", "KID", "IS"))
    assert rel(fid["value"], expected["frechet_inception_distance"]) <= 1e-6
    assert rel(kid["value"], expected["kernel_inception_distance_mean"]) <= 1e-6
    assert rel(kid["spread"], expected["kernel_inception_distance_std"]) <= 1e-6
    assert rel(isc["value"], expected["inception_score_mean"]) <= 1e-4
    assert rel(isc["spread"], expected["inception_score_std"]) <= 1e-4
    assert fid["value"] > 0 and isc["value"] > 1.005  # not the collapsed IS = 1 of untuned random weights
    assert kid["details"]["subset_size"] == KID_SUBSET and not kid["details"]["small_n"]
    assert out["generated"]["n"] == out["reference"]["n"] == 60
    weights = out["backbones"][BACKBONE]["weights"]
    assert weights["verified"] is False and weights["sha256"] == sha256_of(setup["weights"])


@pytest.mark.timeout(900)
def test_random_extractor_discriminates(torch_fidelity_run):
    """Without this, parity on collapsed features would prove little."""
    _, features = torch_fidelity_run
    generated, reference = features[("generated", "2048")], features[("reference", "2048")]
    within = F.kid_from_features(generated[::2], generated[1::2], subset_size=KID_SUBSET).value
    between = F.kid_from_features(generated[::2], reference[1::2], subset_size=KID_SUBSET).value
    assert between > 5 * abs(within)


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeInputs:
    """ScoringInputs holding fixed features per (backbone, set, layer)."""

    task, suite, seed = "generate", None, 0

    def __init__(self, features: dict):
        self.features = features
        self.item_ids = []

    def image_features(self, backbone, which, layer=None):
        return self.features[(which, layer)]


@pytest.mark.timeout(900)
def test_kid_small_n_fails_clearly_unless_allowed(torch_fidelity_run):
    from torch_fidelity.metric_kid import kid_features_to_metric

    _, features = torch_fidelity_run
    inputs = FakeInputs(features)
    metric = F.FidelityMetric()
    with pytest.raises(AvbenchError, match="allow_small_n"):
        metric.compute(inputs, {"backbone": BACKBONE, "metrics": ["kid"]})
    [kid] = metric.compute(inputs, {"backbone": BACKBONE, "metrics": ["kid"], "allow_small_n": True})
    expected = kid_features_to_metric(
        torch.from_numpy(features[("generated", "2048")]),
        torch.from_numpy(features[("reference", "2048")]),
        kid_subset_size=60,
        verbose=False,
    )
    assert kid.name == f"KID[{BACKBONE}]" and kid.details["subset_size"] == 60 and kid.details["small_n"]
    assert "shrunk from 1000 to 60" in kid.details["note"]
    assert rel(kid.value, expected["kernel_inception_distance_mean"]) <= 1e-6


def test_names_carry_the_backbone_and_is_needs_inception():
    ensure_backbone("clip-vit-test", BackboneSpec("clip-vit-test", "clip", None, "", "x:y"))
    ensure_backbone("clip-test-synth", BackboneSpec("clip-test-synth", "clip", None, "", "x:y"))
    rng = np.random.default_rng(0)
    inputs = FakeInputs(
        {("generated", "embedding"): rng.normal(size=(40, 8)), ("reference", "embedding"): rng.normal(1, 1, (40, 8))}
    )
    metric = F.FidelityMetric()
    options = {"metrics": ["fd", "kid"], "kid_subset_size": 20}
    names = [v.name for v in metric.compute(inputs, {"backbone": "clip-vit-test", **options})]
    assert names == ["CLIP-FID[clip-vit-test]", "KID[clip-vit-test]"]
    names = [v.name for v in metric.compute(inputs, {"backbone": "clip-test-synth", **options})]
    assert names == ["FD[clip-test-synth]", "KID[clip-test-synth]"]
    with pytest.raises(AvbenchError, match="IS needs an Inception backbone"):
        metric.compute(inputs, {"backbone": "clip-test-synth", "metrics": ["is"]})
    with pytest.raises(AvbenchError, match="unknown option"):
        metric.compute(inputs, {"backbone": "clip-test-synth", "kid_subset": 3})


def exact_gaussian_sample(rng, mean: np.ndarray, cov: np.ndarray, n: int) -> np.ndarray:
    """n points whose sample mean and (N-1) covariance are exactly `mean` and `cov`."""
    z = rng.normal(size=(n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return z @ np.linalg.cholesky(cov).T + mean


@pytest.mark.timeout(60)
def test_frechet_distance_closed_form():
    rng = np.random.default_rng(3)
    d = 6
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    cov1, cov2 = a @ a.T + 0.5 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    x1, x2 = exact_gaussian_sample(rng, mu1, cov1, 300), exact_gaussian_sample(rng, mu2, cov2, 250)
    root1 = scipy.linalg.sqrtm(cov1).real
    closed = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * scipy.linalg.sqrtm(root1 @ cov2 @ root1).real)
    assert F.fid_from_features(x1, x2) == pytest.approx(closed, rel=1e-9)
    assert F.fid_from_features(x1, x1) == pytest.approx(0.0, abs=1e-9)
    shifted = F.fid_from_features(x1, x1 + 2.0)  # equal covariances: FD is the squared mean distance
    assert shifted == pytest.approx(4.0 * d, rel=1e-9)


@pytest.mark.timeout(60)
def test_gaussian_stats_chunked_and_merged_equal_one_shot(tmp_path):
    rng = np.random.default_rng(4)
    features = rng.gamma(2.0, 0.3, size=(503, 16)).astype(np.float32)
    one = F.GaussianStats.of(features)
    np.testing.assert_allclose(one.mu, features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(one.sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-14)
    left, right = F.GaussianStats(16), F.GaussianStats(16)
    for chunk in np.array_split(features[:300], 7):
        left.update(chunk)
    for chunk in np.array_split(features[300:], 3):
        right.update(chunk)
    merged = left.merge(right)
    assert merged.count == 503
    np.testing.assert_allclose(merged.mu, one.mu, rtol=1e-12)
    np.testing.assert_allclose(merged.sigma, one.sigma, rtol=1e-10, atol=1e-14)
    other = rng.gamma(2.0, 0.35, size=(400, 16))
    assert F.fd_from_stats(merged, F.GaussianStats.of(other)) == pytest.approx(
        F.fid_from_features(features, other), rel=1e-10
    )
    for suffix in (".npz", ".safetensors"):
        path = tmp_path / f"stats{suffix}"
        merged.to_file(path, metadata={"backbone": BACKBONE, "n": 503})
        loaded = F.GaussianStats.from_file(path)
        assert loaded.count == 503 and loaded.metadata == {"backbone": BACKBONE, "n": 503}
        np.testing.assert_array_equal(loaded.outer, merged.outer)
    (tmp_path / "junk.npz").write_bytes(b"not a file")
    with pytest.raises(AvbenchError):
        F.GaussianStats.from_file(tmp_path / "junk.npz")
    with pytest.raises(AvbenchError, match="dimension"):
        F.GaussianStats(16).update(rng.normal(size=(4, 8)))


def test_inception_score_closed_form_and_small_n():
    k, n = 5, 50
    logits = np.full((n, k), -20.0)
    logits[np.arange(n), np.arange(n) % k] = 20.0
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    marginal = p.mean(0)
    closed = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1)))
    score = F.isc_from_logits(logits, splits=1)
    assert score.value == pytest.approx(closed, rel=1e-9) and score.value == pytest.approx(k, rel=1e-6)
    assert F.isc_from_logits(np.zeros((n, k)), splits=10).value == pytest.approx(1.0)
    with pytest.raises(AvbenchError, match="at least 10 images.*allow_small_n"):
        F.isc_from_logits(logits[:9])
    small = F.isc_from_logits(logits[:9], allow_small_n=True)  # one image per split: p(y) = p(y|x), so IS = 1
    assert small.value == pytest.approx(1.0, abs=1e-6) and small.spread == pytest.approx(0.0, abs=1e-6)
    assert small.details["splits"] == 9 and small.details["small_n"] and "not comparable" in small.details["note"]
    assert not F.isc_from_logits(logits, splits=10, allow_small_n=True).details["small_n"]
    with pytest.raises(AvbenchError, match="NaN"):
        F.fid_from_features(np.full((4, 2), np.nan), np.ones((4, 2)))


def test_kid_from_features_small_n_error():
    rng = np.random.default_rng(5)
    with pytest.raises(AvbenchError, match="at least 1000 items"):
        F.kid_from_features(rng.normal(size=(30, 4)), rng.normal(size=(40, 4)))
    score = F.kid_from_features(rng.normal(size=(30, 4)), rng.normal(size=(40, 4)), allow_small_n=True)
    assert score.details["subset_size"] == 30 and score.details["small_n"]


def test_loader_refuses_unsafe_or_misfitting_files(tmp_path):
    pickled = tmp_path / "object.pth"
    torch.save({"fn": mock.sentinel.anything}, pickled)
    with pytest.raises(CheckpointError, match="not a plain tensor state dict"):
        load_inception(INCEPTION_V3_COMPAT, pickled, "cpu")
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(WeightsError, match="does not fit"):
        load_inception(INCEPTION_V3_COMPAT, wrong, "cpu")
    with pytest.raises(WeightsError, match="does not exist"):
        load_inception(INCEPTION_V3_COMPAT, tmp_path / "missing.pth", "cpu")


def test_cli_rejects_unknown_metric_tokens(tmp_path):
    with pytest.raises(AvbenchError, match="--metrics"):
        fidelity_cli.score_folders(tmp_path, tmp_path, ["fid", "fd"])
