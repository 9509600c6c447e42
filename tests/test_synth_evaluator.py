"""The shipped synthetic evaluator: it loads through the CLIP path and judges the world correctly."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avbench.backbones.clip import open_clip_name
from avbench.errors import WeightsError
from avbench.synth.catalog import AUDIO_SYNTH, AUDIO_WEIGHTS_FILE, CLIP_SYNTH, CLIP_WEIGHTS_FILE, WEIGHTS_DIR
from avbench.synth.evaluator import OPEN_CLIP_NAME, load_audio_synth, load_clip_synth
from avbench.synth.world import CLASSES, MANIFEST_SEED_LIMIT, World

FRESH = 7 * MANIFEST_SEED_LIMIT  # a seed range used neither in training nor in manifests
WORLD = World()
PROMPTS = [f"a photo of {c}." for c in CLASSES]


@pytest.fixture(scope="module")
def clip():
    return load_clip_synth(CLIP_SYNTH, WEIGHTS_DIR / CLIP_WEIGHTS_FILE, "cpu")


@pytest.fixture(scope="module")
def audio():
    return load_audio_synth(AUDIO_SYNTH, WEIGHTS_DIR / AUDIO_WEIGHTS_FILE, "cpu")


def _images(arrays) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _class_scores(clip, images: torch.Tensor) -> torch.Tensor:
    """Cosine of each image with each class prompt, [N, C]."""
    image = F.normalize(clip.encode_images(images)["embedding"], dim=-1)
    text = F.normalize(torch.from_numpy(clip.encode_text(PROMPTS)), dim=-1)
    return image @ text.T


def test_shipped_files_match_their_sha256sums():
    lines = (WEIGHTS_DIR / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    assert set(listed) == {CLIP_WEIGHTS_FILE, AUDIO_WEIGHTS_FILE}
    for name, digest in listed.items():
        assert hashlib.sha256((WEIGHTS_DIR / name).read_bytes()).hexdigest() == digest


def test_clip_synth_loads_through_the_shared_open_clip_path(clip):
    import open_clip

    assert open_clip.get_model_config(OPEN_CLIP_NAME) is not None
    assert open_clip_name("clip-synth") == OPEN_CLIP_NAME
    assert clip.preprocessing == CLIP_SYNTH.preprocessing  # the spec's cache key is what the extractor does
    assert clip.image_size == 64 and clip.name == "clip-synth"


def test_loading_is_deterministic(clip, audio):
    images = _images([WORLD.object_image(c, FRESH) for c in CLASSES])
    again = load_clip_synth(CLIP_SYNTH, WEIGHTS_DIR / CLIP_WEIGHTS_FILE, "cpu")
    assert torch.equal(clip.encode_images(images)["embedding"], again.encode_images(images)["embedding"])
    np.testing.assert_array_equal(clip.encode_text(PROMPTS), again.encode_text(PROMPTS))
    waves = torch.from_numpy(np.stack([WORLD.source_audio(c, FRESH) for c in CLASSES]))
    audio_again = load_audio_synth(AUDIO_SYNTH, WEIGHTS_DIR / AUDIO_WEIGHTS_FILE, "cpu")
    assert torch.equal(audio.encode_audio(waves), audio_again.encode_audio(waves))


def test_zero_shot_recognises_fresh_objects(clip):
    images = _images([WORLD.object_image(c, FRESH + k) for k in range(20) for c in CLASSES])
    truth = torch.arange(len(CLASSES)).repeat(20)
    r1 = (_class_scores(clip, images).argmax(dim=1) == truth).float().mean().item()
    assert r1 >= 0.9


def test_both_classes_of_fresh_scenes_rank_top_two(clip):
    rng = np.random.default_rng(3)
    pairs = [rng.choice(len(CLASSES), 2, replace=False) for _ in range(100)]
    images = _images(
        [
            WORLD.scene_image([CLASSES[a], CLASSES[b]], [FRESH + 2 * k, FRESH + 2 * k + 1])
            for k, (a, b) in enumerate(pairs)
        ]
    )
    top2 = _class_scores(clip, images).topk(2, dim=1).indices.tolist()
    assert np.mean([set(t) == {int(a), int(b)} for t, (a, b) in zip(top2, pairs, strict=True)]) >= 0.8


def test_noise_is_not_confidently_classified(clip):
    noise = _images([WORLD.noise_image(FRESH + k) for k in range(40)])
    objects = _images([WORLD.object_image(c, FRESH + 100 + k) for k in range(4) for c in CLASSES])
    noise_conf = (clip.logit_scale * _class_scores(clip, noise)).softmax(dim=1).amax(dim=1)
    object_conf = (clip.logit_scale * _class_scores(clip, objects)).softmax(dim=1).amax(dim=1)
    assert noise_conf.mean() < 0.5 and noise_conf.max() < 0.8
    assert object_conf.mean() > 0.8


def test_audio_lands_near_its_own_class_images(clip, audio):
    n = 10
    truth = torch.arange(len(CLASSES)).repeat(n)
    images = _images([WORLD.object_image(c, FRESH + 200 + k) for k in range(n) for c in CLASSES])
    image_emb = F.normalize(clip.encode_images(images)["embedding"], dim=-1)
    centroids = F.normalize(torch.stack([image_emb[truth == c].mean(0) for c in range(len(CLASSES))]), dim=-1)
    waves = torch.from_numpy(np.stack([WORLD.source_audio(c, FRESH + 300 + k) for k in range(n) for c in CLASSES]))
    audio_emb = audio.encode_audio(waves)
    assert audio_emb.shape == (n * len(CLASSES), image_emb.shape[1]) and audio_emb.dtype == torch.float32
    accuracy = (F.normalize(audio_emb, dim=-1) @ centroids.T).argmax(dim=1).eq(truth).float().mean().item()
    assert accuracy >= 0.8


def test_mixture_audio_matches_its_own_scene_best(clip, audio):
    """The AIS z-score of ideal scenes against their own mixtures is clearly positive."""
    rng = np.random.default_rng(4)
    pairs = [rng.choice(len(CLASSES), 2, replace=False) for _ in range(40)]
    seeds = [(FRESH + 500 + 2 * k, FRESH + 501 + 2 * k) for k in range(len(pairs))]
    scenes = _images([WORLD.scene_image([CLASSES[a], CLASSES[b]], s) for (a, b), s in zip(pairs, seeds, strict=True)])
    mixes = []
    for (a, b), (sa, sb) in zip(pairs, seeds, strict=True):
        waves = [WORLD.source_audio(CLASSES[a], sa), WORLD.source_audio(CLASSES[b], sb)]
        mixes.append(np.mean([w / np.sqrt(np.mean(w**2)) for w in waves], axis=0).astype(np.float32))
    a = F.normalize(audio.encode_audio(torch.from_numpy(np.stack(mixes))), dim=-1)
    v = F.normalize(clip.encode_images(scenes)["embedding"], dim=-1)
    cos = (a @ v.T).numpy()
    off = ~np.eye(len(pairs), dtype=bool)
    others = np.where(off, cos, np.nan)
    z = (np.diag(cos) - np.nanmean(others, axis=1)) / np.nanstd(others, axis=1)
    assert z.mean() > 1.0


def test_audio_embedding_ignores_gain(audio):
    waves = torch.from_numpy(np.stack([WORLD.source_audio(c, FRESH) for c in CLASSES[:4]]))
    torch.testing.assert_close(audio.encode_audio(waves), audio.encode_audio(0.25 * waves), atol=1e-3, rtol=1e-3)


def test_missing_or_foreign_weights_fail_clearly(tmp_path):
    with pytest.raises(WeightsError):
        load_audio_synth(AUDIO_SYNTH, tmp_path / "absent.safetensors", "cpu")
    with pytest.raises(WeightsError):
        load_audio_synth(AUDIO_SYNTH, WEIGHTS_DIR / CLIP_WEIGHTS_FILE, "cpu")
    with pytest.raises(WeightsError):
        load_clip_synth(CLIP_SYNTH, tmp_path / "absent.safetensors", "cpu")
