"""The open_clip loader on a tiny random model saved to disk, loaded the way real weights are.

Also checks CLIPScore against torchmetrics' CLIPScore fed through the callable
route with the same model. torchmetrics clamps the *mean* score at 0 while
avbench clamps each item; the tiny model is built so every image-caption
cosine is positive, where the two agree (the per-item clamp itself is tested
in test_clip_metrics.py).
"""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torchmetrics.functional.multimodal.clip_score import clip_score  # the package hides it without transformers
from torchmetrics.multimodal.clip_score import CLIPScore

from avbench.backbones import catalog
from avbench.backbones import clip as C
from avbench.backbones.base import BackboneSpec
from avbench.errors import RegistryError, WeightsError
from avbench.metrics.alignment import ClipScoreMetric, label_caption

OPEN_CLIP_NAME = "avbench-test-tiny-clip"
BACKBONE = "clip-test-tiny"
TINY_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
SPEC = BackboneSpec(name=BACKBONE, kind="clip", weights=None, preprocessing="", loader=catalog.CLIP_LOADER)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(extractor, reference open_clip model, open_clip's own eval transform, weights path)."""
    root = tmp_path_factory.mktemp("tiny_clip")
    (root / f"{OPEN_CLIP_NAME}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(root / f"{OPEN_CLIP_NAME}.json")
    torch.manual_seed(0)
    model, _, transform = open_clip.create_model_and_transforms(OPEN_CLIP_NAME)
    with torch.no_grad():  # a shared dominant direction makes every image-text cosine positive
        bias = torch.randn(64)
        model.visual.ln_post.bias.copy_(bias)
        model.ln_final.bias.copy_(bias)
        model.text_projection.copy_(model.visual.proj)
        model.logit_scale.fill_(np.log(20.0))
    weights = root / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    C.register_open_clip_name(BACKBONE, OPEN_CLIP_NAME)
    extractor = C.load_clip(SPEC, weights, "cpu")
    return extractor, model.eval(), transform, weights


def test_loader_goes_through_create_model_and_transforms_with_the_file(tiny, monkeypatch):
    _, reference, _, weights = tiny
    calls = []
    original = open_clip.create_model_and_transforms

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", spy)
    extractor = C.load_clip(SPEC, weights, "cpu")
    assert calls == [((OPEN_CLIP_NAME,), {"pretrained": str(weights), "weights_only": True})]
    loaded, saved = extractor.model.state_dict(), reference.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert extractor.logit_scale == pytest.approx(20.0)
    assert extractor.name == BACKBONE and extractor.weights_sha256 is None


def make_images():
    gen = torch.Generator().manual_seed(1)
    images = []
    for h, w in [(64, 64), (100, 80), (37, 53), (300, 200), (48, 64), (513, 255)]:
        images.append(torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8))
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        images.append(torch.stack([yy, xx, xx * yy]).mul(255).round().to(torch.uint8))
    return images


def test_preprocessing_matches_open_clip_pil_transform_within_one_grey_level(tiny):
    extractor, reference, transform, _ = tiny
    std = torch.tensor(extractor.model.visual.preprocess_cfg["std"]).view(3, 1, 1)
    for image in make_images():
        ours = extractor.preprocess(image[None])[0]
        theirs = transform(Image.fromarray(image.permute(1, 2, 0).numpy()))
        assert ours.shape == theirs.shape == (3, 64, 64)
        grey_levels = ((ours - theirs) * std * 255).abs()
        # measured: max 1.0 (PIL's fixed-point 8-bit intermediate vs torch float), mean <= 0.15
        assert grey_levels.max() <= 1.0 + 1e-3, tuple(image.shape)
        assert grey_levels.mean() <= 0.2, tuple(image.shape)
        with torch.no_grad():
            np.testing.assert_allclose(
                extractor.encode_images(image[None])["embedding"][0].numpy(),
                reference.encode_image(theirs[None])[0].numpy(),
                atol=0.01,
                rtol=0,
            )
    assert extractor.preprocessing == catalog.describe_preprocessing(64, catalog.OPENAI_MEAN, catalog.OPENAI_STD)


def test_batched_encoding_equals_one_by_one(tiny):
    extractor = tiny[0]
    batch = torch.stack([img for img in make_images() if img.shape[1:] == (100, 80)])
    together = extractor.encode_images(batch)["embedding"]
    alone = torch.cat([extractor.encode_images(img[None])["embedding"] for img in batch])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        extractor.encode_images(batch.float())


def test_encode_text_uses_the_open_clip_tokenizer(tiny):
    extractor, reference, _, _ = tiny
    prompts = ["a photo of dog barking.", "a photo of siren wailing."]
    with torch.no_grad():
        expected = reference.encode_text(open_clip.get_tokenizer(OPEN_CLIP_NAME)(prompts)).numpy()
    np.testing.assert_allclose(extractor.encode_text(prompts), expected, rtol=1e-5, atol=1e-6)


def test_clipscore_equals_torchmetrics_through_the_callable_route(tiny):
    extractor = tiny[0]
    images = [img for img in make_images() if img.shape[1] <= 100][:5]
    labels = [
        ("dog barking",),
        ("siren wailing", "rain falling"),
        ("church bell ringing",),
        ("rain falling",),
        ("dog barking", "siren wailing", "rain falling"),
    ]
    captions = [label_caption(g) for g in labels]
    features = np.concatenate([extractor.encode_images(img[None])["embedding"].double().numpy() for img in images])
    inputs = SimpleNamespace(
        labels=labels,
        item_ids=[f"item{k}" for k in range(len(labels))],
        image_features=lambda backbone, which: features,
        text_features=lambda backbone, prompts: extractor.encode_text(prompts).astype(np.float64),
    )
    (ours,) = ClipScoreMetric().compute(inputs, {"backbone": BACKBONE})
    assert (ours.per_item > 0).all()  # the regime where per-item and mean clamping agree

    metric = CLIPScore(model_name_or_path=C.torchmetrics_clip_callable(extractor))
    metric.update(images, captions)
    assert ours.value == pytest.approx(metric.compute().item(), rel=1e-5)
    per_item = [
        clip_score(img, cap, model_name_or_path=C.torchmetrics_clip_callable(extractor)).item()
        for img, cap in zip(images, captions, strict=True)
    ]
    np.testing.assert_allclose(ours.per_item, per_item, rtol=1e-5)


def test_loader_errors(tiny, tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        C.load_clip(SPEC, tmp_path / "missing.safetensors", "cpu")
    with pytest.raises(RegistryError, match="clip-unknown"):
        C.load_clip(BackboneSpec("clip-unknown", "clip", None, "", catalog.CLIP_LOADER), tiny[3], "cpu")
    with pytest.raises(RegistryError, match="already maps"):
        C.register_open_clip_name(BACKBONE, "ViT-B-32")
    C.register_open_clip_name(BACKBONE, OPEN_CLIP_NAME)  # re-registering the same mapping is fine


@pytest.fixture
def scripted(tiny, tmp_path):
    """The tiny model's weights in a TorchScript archive laid out as OpenAI publishes CLIP: the model's
    tensors under their usual names plus the three scalar fields OpenAI keeps beside them."""
    tensors = dict(tiny[1].state_dict())
    tensors.update(input_resolution=torch.tensor(64), context_length=torch.tensor(32), vocab_size=torch.tensor(49408))
    root = torch.nn.Module()
    for key, value in tensors.items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_buffer(leaf, value.clone())
    path = tmp_path / "tiny-openai.pt"
    torch.jit.script(root).save(str(path))
    return path


def test_a_torchscript_archive_loads_only_when_its_published_hash_matches(tiny, scripted):
    from avbench import weights

    assert C._is_torchscript(scripted) and not C._is_torchscript(tiny[3])
    with pytest.raises(WeightsError, match="TorchScript archive that is not the published file"):
        C.load_clip(SPEC, scripted, "cpu")  # no weights entry at all
    name = "clip-test-tiny-openai"
    pinned = BackboneSpec(name=BACKBONE, kind="clip", weights=name, preprocessing="", loader=catalog.CLIP_LOADER)
    try:
        weights.register_weights(weights.WeightsEntry(name=name, file_name=scripted.name, sha256="0" * 64))
        with pytest.raises(WeightsError, match="not the published file"):
            C.load_clip(pinned, scripted, "cpu")  # an entry whose hash differs
        weights.register_weights(
            weights.WeightsEntry(name=name, file_name=scripted.name, sha256=weights.file_sha256(scripted)),
            replace=True,
        )
        with pytest.warns(UserWarning, match="TorchScript"):  # torch.load hands the archive to torch.jit.load
            extractor = C.load_clip(pinned, scripted, "cpu")
    finally:
        weights.registry.weights.unregister(name)
    loaded, saved = extractor.model.state_dict(), tiny[1].state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_builtin_specs_name_quickgelu_configs_that_open_clip_knows():
    for spec, config in [
        (catalog.CLIP_VIT_B32_OPENAI, "ViT-B-32-quickgelu"),
        (catalog.CLIP_VIT_L14_OPENAI, "ViT-L-14-quickgelu"),
    ]:
        assert C.open_clip_name(spec.name) == config
        assert open_clip.get_model_config(config)["quick_gelu"] is True
        assert open_clip.get_model_config(config)["vision_cfg"]["image_size"] == 224
        module, attr = spec.loader.split(":")
        assert getattr(importlib.import_module(module), attr) is C.load_clip
        assert spec.weights == spec.name and spec.kind == "clip"
    assert catalog.CLIP_VIT_B32_OPENAI.preprocessing == catalog.describe_preprocessing(
        224, catalog.OPENAI_MEAN, catalog.OPENAI_STD
    )
