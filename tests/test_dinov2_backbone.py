"""DINOv2 ViT-L/14 and CLIP ViT-L/14@336 from checkpoints in their publishers' key layouts, through `weights import`.

No real weights exist offline, so each test file is random and the backbone's weights entry is re-pinned to it
for the module (restored afterwards); everything else is the real spec, loader and feature path.
  DINOv2: the keys and shapes of `dinov2_vitl14_pretrain.pth` (facebookresearch/dinov2 DinoVisionTransformer:
  cls_token, pos_embed for a 37x37 grid, mask_token, patch_embed.proj, blocks.N.{norm1, attn.qkv, attn.proj,
  ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm), float32 as published.
  CLIP: the keys of OpenAI's ViT-L-14-336px.pt state dict (open_clip's CLIP names them the same), float16 as published.
A full ViT-L forward costs several seconds per image on these CPUs, so the DINOv2 forward check uses two images
and the 336 px CLIP is checked through its weights and its preprocessing, not a forward.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from avbench import weights
from avbench.backbones import catalog
from avbench.backbones import dinov2 as DV
from avbench.backbones.clip import SquareCropClipExtractor
from avbench.cache import ArrayCache, array_hash
from avbench.cli import weights as weights_cli
from avbench.errors import CheckpointError
from avbench.features import Backbones, FeatureStore, ImageSet

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def random_state(shapes: dict[str, torch.Size], dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random tensors: norm weights near 1, everything else small, so activations stay finite."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        value = torch.randn(shape, generator=generator) * 0.02
        module = key.rsplit(".", 2)[-2] if key.count(".") else ""
        if ("norm" in module or module.startswith("ln")) and key.endswith("weight"):
            value += 1.0
        state[key] = value.to(dtype)
    return state


def dinov2_hub_shapes() -> dict[str, torch.Size]:
    import timm

    with torch.device("meta"):
        hub_sized = timm.create_model(DV.TIMM_ARCH, pretrained=False, num_classes=0)  # 518 px: the hub's 37x37 grid
    shapes = {key: value.shape for key, value in hub_sized.state_dict().items()}
    shapes["mask_token"] = torch.Size([1, 1024])
    return shapes


@pytest.fixture(scope="module")
def repinned(tmp_path_factory):
    """Re-pin a real weights entry to a test file for this module; the originals come back afterwards."""
    originals = {}

    def pin(name: str, path) -> str:
        digest = sha256(path)
        originals.setdefault(name, weights.entry(name))
        weights.register_weights(weights.WeightsEntry(name=name, file_name=path.name, sha256=digest), replace=True)
        return digest

    yield pin
    for entry in originals.values():
        weights.register_weights(entry, replace=True)


@pytest.fixture(scope="module")
def dinov2_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_vitl14_pretrain.pth"
    state = random_state(dinov2_hub_shapes(), torch.float32, seed=14)
    state["mask_token"].zero_()  # as the hub initialises it
    torch.save(state, path)
    return path, state


def test_dinov2_entry_says_no_hash_is_published_and_import_refuses_it(tmp_path):
    entry = weights.entry("dinov2-vitl14")
    assert not entry.pinned and entry.expected == "(none published)" and "No hash is published" in entry.description
    assert entry.file_name == "dinov2_vitl14_pretrain.pth" and entry.url.startswith("https://dl.fbaipublicfiles.com/")
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(weights_cli.app, ["list", "--json"]).stdout)}
    assert rows["dinov2-vitl14"]["sha256"] is None and rows["dinov2-vitl14"]["sha256_prefix"] is None
    assert rows["clip-vit-l14-336-openai"]["sha256"] == (
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"
    )
    blob = tmp_path / "dinov2_vitl14_pretrain.pth"
    blob.write_bytes(b"not checked")
    result = CliRunner().invoke(weights_cli.app, ["import", str(blob), "--name", "dinov2-vitl14"])
    assert result.exit_code != 0 and "no published hash" in str(result.exception or result.output)


@pytest.mark.timeout(900)
def test_dinov2_loads_through_weights_import_and_equals_a_bare_forward(dinov2_file, repinned, tmp_path):
    path, state = dinov2_file
    repinned("dinov2-vitl14", path)
    result = CliRunner().invoke(weights_cli.app, ["import", str(path), "--name", "dinov2-vitl14"])
    assert result.exit_code == 0, result.output
    backbones = Backbones(torch.device("cpu"))
    extractor = backbones.get("dinov2-vitl14")
    assert isinstance(extractor, DV.Dinov2Extractor) and extractor.preprocessing == catalog.DINOV2_PREPROCESSING

    # The weights, key for key; the positional embeddings resampled as the hub resamples them at 224 px.
    loaded = extractor.module.state_dict()
    assert set(loaded) == set(state) - {"mask_token"}
    for key in loaded:
        if key != "pos_embed":
            assert torch.equal(loaded[key], state[key]), key
    grid = state["pos_embed"][:, 1:].reshape(1, 37, 37, 1024).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, scale_factor=(16.1 / 37, 16.1 / 37), mode="bicubic")
    hub_pos = torch.cat([state["pos_embed"][:, :1], grid.permute(0, 2, 3, 1).reshape(1, 256, 1024)], dim=1)
    torch.testing.assert_close(loaded["pos_embed"], hub_pos, rtol=0, atol=0)

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (190, 250, 3), dtype=np.uint8) for _ in range(2)]  # not square: no crop, squashed
    store = FeatureStore(ArrayCache(tmp_path / "cache"), backbones, batch_size=2)
    ours = store.images("dinov2-vitl14", ImageSet([array_hash(im) for im in images], images.__getitem__))["embedding"]

    # dgm-eval's transform written out: PIL bicubic to 224x224, ToTensor, ImageNet mean/std.
    pixels = np.stack([np.asarray(Image.fromarray(im).resize((224, 224), Image.BICUBIC)) for im in images])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD, dtype=torch.float32
    ).view(1, 3, 1, 1)
    # The hub model's forward: patchify, CLS token, the resampled positions, the blocks, the final norm, CLS out.
    model = extractor.module
    with torch.inference_mode():
        tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([state["cls_token"].expand(len(x), -1, -1), tokens], dim=1) + hub_pos
        for block in model.blocks:
            tokens = block(tokens)
        expected = model.norm(tokens)[:, 0].double().numpy()
    assert ours.shape == (2, 1024) and np.isfinite(ours).all() and np.abs(ours).max() > 0.1
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_dinov2_files_with_wrong_keys_or_hash_are_refused(dinov2_file, repinned, tmp_path):
    path, state = dinov2_file
    repinned("dinov2-vitl14", path)
    missing = {k: v for k, v in state.items() if k != "blocks.3.attn.qkv.weight"}
    with pytest.raises(CheckpointError, match=r"does not fit DINOv2 ViT-L/14.*blocks\.3\.attn\.qkv\.weight"):
        DV.build_module(missing)
    other = tmp_path / "clip-like.pth"
    torch.save({"visual.conv1.weight": torch.zeros(4, 3, 14, 14)}, other)
    with pytest.raises(CheckpointError, match="not a DINOv2 hub checkpoint"):
        DV.load_dinov2(catalog.DINOV2_VITL14, other, "cpu")
    result = CliRunner().invoke(weights_cli.app, ["import", str(other), "--name", "dinov2-vitl14"])
    assert result.exit_code != 0 and "fails its hash check" in str(result.exception or result.output)


@pytest.fixture(scope="module")
def clip336_file(tmp_path_factory):
    logging.disable(logging.WARNING)  # open_clip warns it built a model without pretrained weights: wanted here
    try:
        with torch.device("meta"):
            model = open_clip.create_model("ViT-L-14-336-quickgelu", device="meta")
        shapes = {k: v.shape for k, v in model.state_dict().items()}
    finally:
        logging.disable(logging.NOTSET)
    state = random_state(shapes, torch.float16, seed=336)
    path = tmp_path_factory.mktemp("clip336") / "ViT-L-14-336px.pt"
    torch.save(state, path)
    return path, state


@pytest.mark.timeout(900)
def test_clip_336_loads_through_weights_import_with_cmmd_preprocessing(clip336_file, repinned):
    path, state = clip336_file
    repinned("clip-vit-l14-336-openai", path)
    result = CliRunner().invoke(weights_cli.app, ["import", str(path), "--name", "clip-vit-l14-336-openai"])
    assert result.exit_code == 0, result.output
    extractor = Backbones(torch.device("cpu")).get("clip-vit-l14-336-openai")
    assert isinstance(extractor, SquareCropClipExtractor) and extractor.image_size == 336
    assert extractor.preprocessing == catalog.CMMD_CLIP_PREPROCESSING
    loaded = extractor.model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value.float()), key

    # CMMD's io_util._center_crop_and_resize and embedding._clip_preprocess, written out.
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 241, 403, 3), dtype=np.uint8)  # landscape, odd sizes
    side = 241
    left = (403 - side) // 2
    expected = []
    for image in images:
        cropped = Image.fromarray(image).crop((left, 0, left + side, side)).resize((336, 336), Image.BICUBIC)
        expected.append((np.asarray(cropped).astype(np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD)
    ours = extractor.preprocess(torch.from_numpy(images).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, np.stack(expected), rtol=0, atol=1e-6)
    portrait = np.ascontiguousarray(images[:, :, :200])  # 241 high, 200 wide
    top = (241 - 200) // 2
    cropped = Image.fromarray(portrait[0]).crop((0, top, 200, top + 200)).resize((336, 336), Image.BICUBIC)
    ours = extractor.preprocess(torch.from_numpy(portrait[:1]).permute(0, 3, 1, 2))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, (np.asarray(cropped) / 255.0 - CLIP_MEAN) / CLIP_STD, rtol=0, atol=1e-6)
