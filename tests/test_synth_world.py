"""The synthetic world: seeded, well-formed, separable, and its manifests balanced."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from avbench.errors import DataError, SuiteError
from avbench.suites.manifest import dump_items, parse_manifest
from avbench.synth.world import (
    CLASSES,
    MANIFEST_SEED_LIMIT,
    World,
    build_synth_manifest,
    clip_id,
    parse_clip_id,
    slug,
)

WORLD = World()


def test_classes_have_distinct_everyday_names():
    assert 8 <= len(CLASSES) <= 12
    assert len({slug(c) for c in CLASSES}) == len(CLASSES)
    assert slug("dog barking") == "dog-barking"


@pytest.mark.parametrize("label", CLASSES)
def test_audio_and_images_are_well_formed(label):
    audio = WORLD.source_audio(label, 7)
    assert audio.dtype == np.float32 and audio.shape == (32000,)
    assert np.all(np.isfinite(audio)) and 0.4 < np.max(np.abs(audio)) <= 1.0
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 1e-3  # never silent
    image = WORLD.object_image(label, 7)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert image.std() > 5  # an object over a background, not a flat fill


def test_world_parameters_shape_the_output():
    world = World(sample_rate=11025, clip_seconds=1.5, image_size=48)
    assert world.source_audio("siren wailing", 1).shape == (round(11025 * 1.5),)
    assert world.object_image("siren wailing", 1).shape == (48, 48, 3)
    assert world.scene_image(["siren wailing", "rain falling"], [1, 2]).shape == (48, 48, 3)


def test_rendering_is_deterministic_and_seed_dependent():
    other = World()
    for label in CLASSES:
        np.testing.assert_array_equal(WORLD.source_audio(label, 3), other.source_audio(label, 3))
        np.testing.assert_array_equal(WORLD.object_image(label, 3), other.object_image(label, 3))
        assert not np.array_equal(WORLD.source_audio(label, 3), WORLD.source_audio(label, 4))
        assert not np.array_equal(WORLD.object_image(label, 3), WORLD.object_image(label, 4))
    pair = ["dog barking", "phone ringing"]
    np.testing.assert_array_equal(WORLD.scene_image(pair, [1, 2]), other.scene_image(pair, [1, 2]))
    assert not np.array_equal(WORLD.scene_image(pair, [1, 2]), WORLD.scene_image(pair, [1, 3]))
    np.testing.assert_array_equal(WORLD.noise_image(5), other.noise_image(5))
    assert not np.array_equal(WORLD.noise_image(5), WORLD.noise_image(6))


def test_scene_does_not_depend_on_label_order_and_frame_picks_object_or_scene():
    a = WORLD.scene_image(["dog barking", "phone ringing"], [1, 2])
    b = WORLD.scene_image(["phone ringing", "dog barking"], [2, 1])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(WORLD.frame(["rain falling"], [9]), WORLD.object_image("rain falling", 9))
    np.testing.assert_array_equal(WORLD.frame(["dog barking", "phone ringing"], [1, 2]), a)


def _colour_count(image: np.ndarray, colour: np.ndarray) -> int:
    return int(np.sum(np.all(np.abs(image.astype(int) - colour.astype(int)) <= 1, axis=-1)))


def test_scene_contains_both_objects_colours_and_not_an_absent_ones():
    rng = np.random.default_rng(0)
    for trial in range(20):
        a, b, absent = rng.choice(len(CLASSES), 3, replace=False)
        labels, seeds = [CLASSES[a], CLASSES[b]], [trial, trial + 100]
        scene = WORLD.scene_image(labels, seeds)
        for label, seed in zip(labels, seeds, strict=True):
            colour = WORLD.object_colour(label, seed)
            assert _colour_count(WORLD.object_image(label, seed), colour) >= 20
            assert _colour_count(scene, colour) >= 8, (labels, label)
        assert _colour_count(scene, WORLD.object_colour(CLASSES[absent], trial + 200)) < 8


def _nearest_centroid_accuracy(feature, render) -> float:
    centroids = np.array([np.mean([feature(render(c, s)) for s in range(20)], axis=0) for c in CLASSES])
    hits = [
        np.argmin(((centroids - feature(render(c, s))) ** 2).sum(axis=1)) == k
        for k, c in enumerate(CLASSES)
        for s in range(MANIFEST_SEED_LIMIT, MANIFEST_SEED_LIMIT + 10)
    ]
    return float(np.mean(hits))


def _mean_log_spectrum(audio: np.ndarray) -> np.ndarray:
    frames = audio[: audio.size // 512 * 512].reshape(-1, 512) * np.hanning(512)
    return np.log(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-8)


def _foreground_colours(image: np.ndarray) -> np.ndarray:
    """Coarse colour histogram of the pixels that differ from the border (the background)."""
    small = image.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)) / 255.0
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    mask = np.abs(small - np.median(border, axis=0)).sum(axis=-1) > 0.25
    q = np.clip((small[mask] * 4).astype(int), 0, 3)
    return np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64) / max(mask.sum(), 1)


def test_classes_are_separable_by_simple_features_on_held_out_clips():
    assert _nearest_centroid_accuracy(_mean_log_spectrum, WORLD.source_audio) >= 0.9
    assert _nearest_centroid_accuracy(_foreground_colours, WORLD.object_image) >= 0.85


def test_clip_ids_round_trip_and_reject_strangers():
    for label in CLASSES:
        name = clip_id(label, 123)
        assert name == f"{slug(label)}-000123"
        assert parse_clip_id(name) == (label, 123)
    assert parse_clip_id("dog-barking-1234567") == ("dog barking", 1234567)
    for bad in ("dog-barking", "cat-meowing-000001", "dog-barking-x1", "Dog-Barking-000001"):
        with pytest.raises(DataError):
            parse_clip_id(bad)
    with pytest.raises(DataError):
        clip_id("cat meowing", 1)
    with pytest.raises(DataError):
        WORLD.source_audio("cat meowing", 1)


@pytest.mark.parametrize("kind, per_item", [("synth-single", 1), ("synth-mixed2", 2), ("synth-sep", 2)])
def test_manifests_are_valid_balanced_and_seeded(kind, per_item):
    items = build_synth_manifest(kind, 37, seed=0)
    assert len(items) == 37
    parsed = parse_manifest(dump_items(items), kind)  # the project's own validator
    assert [p.id for p in parsed] == [f"{kind}-{k:05d}" for k in range(37)]
    counts = Counter(label for item in items for label in item["labels"])
    assert set(counts) == set(CLASSES) and max(counts.values()) - min(counts.values()) <= 1
    clips = [s["clip"] for item in items for s in item["sources"]]
    assert len(set(clips)) == len(clips)
    for item in items:
        assert len(item["labels"]) == len(set(item["labels"])) == per_item
        assert [s["label"] for s in item["sources"]] == item["labels"]
        for source in item["sources"]:
            label, seed = parse_clip_id(source["clip"])
            assert label == source["label"] and 0 <= seed < MANIFEST_SEED_LIMIT
            assert source["path"] == f"synth/audio/{source['clip']}.wav"
            assert source["frame"] == {"path": f"synth/frames/{source['clip']}.png", "rule": "synthetic-object"}
        if per_item == 1:
            assert item["mix"] == "mean" and item["frame"] == item["sources"][0]["frame"]
        else:
            assert item["mix"] == "equal-rms-mean"
            assert item["frame"] == {"path": f"synth/scenes/{item['id']}.png", "rule": "synthetic-scene"}
    assert build_synth_manifest(kind, 37, seed=0) == items
    assert build_synth_manifest(kind, 37, seed=1) != items


def test_manifest_rejects_unknown_kind_and_empty_size():
    with pytest.raises(SuiteError):
        build_synth_manifest("synth-triple", 10, 0)
    with pytest.raises(SuiteError):
        build_synth_manifest("synth-single", 0, 0)
