"""The embedded synthetic world: seeded sounds, objects and scenes on demand.

Every suite, model and metric can run on a fresh machine with no downloads:
a clip is named by (class, clip seed), and its audio, its object frame and
any scene it takes part in are rendered from that name alone. All randomness
comes from explicitly seeded PCG64 generators, one per (stream, class, seed),
so rendering is order-independent and identical across runs.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from ..errors import DataError, SuiteError
from .objects import LOOKS, appearance, background, draw, to_uint8
from .sounds import SYNTHS

CLASSES: tuple[str, ...] = (
    "dog barking",
    "church bell ringing",
    "siren wailing",
    "rain falling",
    "bird chirping",
    "car engine idling",
    "people clapping",
    "phone ringing",
    "drum beating",
    "wind blowing",
)

MANIFEST_KINDS = ("synth-single", "synth-mixed2", "synth-sep")
# Manifests draw clip seeds below this; the evaluator trains on seeds at or above it.
MANIFEST_SEED_LIMIT = 1_000_000

_AUDIO, _LOOK, _PLACE, _SCENE, _NOISE, _MANIFEST, _UNLABELLED = range(7)
_CLIP_ID = re.compile(r"^([a-z]+(?:-[a-z]+)*)-(\d+)$")
# A clip that also carries unlabelled classes joins their clip ids with CARRIES, its labelled clip first:
# 'dog-barking-000123_rain-falling-004567' is a dog-barking clip in which rain is heard too.
CARRIES = "_"


def slug(label: str) -> str:
    """'dog barking' -> 'dog-barking'."""
    return "-".join(label.lower().split())


_BY_SLUG = {slug(c): c for c in CLASSES}


def class_index(label: str) -> int:
    try:
        return CLASSES.index(label)
    except ValueError:
        raise DataError(f"unknown synthetic class {label!r}; known: {', '.join(CLASSES)}") from None


def clip_id(label: str, clip_seed: int) -> str:
    class_index(label)
    if clip_seed < 0:
        raise DataError(f"synthetic clip seed must be >= 0, got {clip_seed}")
    return f"{slug(label)}-{clip_seed:06d}"


def parse_clip_id(name: str) -> tuple[str, int]:
    """'dog-barking-000123' -> ('dog barking', 123)."""
    match = _CLIP_ID.match(name)
    if not match or match.group(1) not in _BY_SLUG:
        raise DataError(
            f"{name!r} is not a synthetic clip id (expected '<class-slug>-<seed>', e.g. 'dog-barking-000123')"
        )
    return _BY_SLUG[match.group(1)], int(match.group(2))


def clip_parts(name: str) -> list[tuple[str, int]]:
    """The (class, clip seed) of every sound in a clip: its labelled clip first, then what it carries."""
    return [parse_clip_id(part) for part in name.split(CARRIES)]


def clip_labels(name: str) -> list[str]:
    """Every class heard in a clip: its audible classes."""
    return [label for label, _ in clip_parts(name)]


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


class World:
    """Renders the world's clips at a fixed sample rate, clip length and image size."""

    def __init__(self, sample_rate: int = 16000, clip_seconds: float = 2.0, image_size: int = 64):
        self.sample_rate = int(sample_rate)
        self.clip_seconds = float(clip_seconds)
        self.image_size = int(image_size)
        self.num_samples = int(round(self.sample_rate * self.clip_seconds))

    def source_audio(self, label: str, clip_seed: int) -> np.ndarray:
        """float32 [T] in [-1, 1]: the clip's sound, peak-normalised to a random level."""
        index = class_index(label)
        rng = _rng(_AUDIO, index, clip_seed)
        signal = SYNTHS[index](rng, self.num_samples, self.sample_rate)
        peak = float(np.max(np.abs(signal)))
        level = rng.uniform(0.5, 0.9)
        return (signal * (level / peak if peak > 0 else 0.0)).astype(np.float32)

    def clip_audio(self, name: str) -> np.ndarray:
        """float32 [T]: a clip's sound, the mean of its sounds when it carries unlabelled ones."""
        return np.mean([self.source_audio(label, seed) for label, seed in clip_parts(name)], axis=0, dtype=np.float32)

    def _appearance(self, label: str, clip_seed: int):
        index = class_index(label)
        return appearance(LOOKS[index], _rng(_LOOK, index, clip_seed))

    def object_colour(self, label: str, clip_seed: int) -> np.ndarray:
        """uint8 [3]: the clip's base object colour, as painted wherever its texture is unshaded."""
        return to_uint8(self._appearance(label, clip_seed).colour)

    def object_image(self, label: str, clip_seed: int) -> np.ndarray:
        """uint8 [H, W, 3]: the clip's object over a background, the clip's 'frame'."""
        index = class_index(label)
        rng = _rng(_PLACE, index, clip_seed)
        size = self.image_size
        canvas = background(rng, size)
        half = size / 2 * rng.uniform(0.5, 0.85)
        centre = (rng.uniform(half, size - half), rng.uniform(half, size - half))
        draw(canvas, self._appearance(label, clip_seed), centre, half)
        return to_uint8(canvas)

    def scene_image(self, labels: Sequence[str], clip_seeds: Sequence[int]) -> np.ndarray:
        """uint8 [H, W, 3]: every clip's object, each in its own cell: the ideal image of a mixture."""
        if len(labels) != len(clip_seeds) or not labels:
            raise DataError(
                f"a scene needs one clip seed per label, got {len(labels)} labels and {len(clip_seeds)} seeds"
            )
        if len(set(labels)) != len(labels):
            raise DataError(f"a scene's labels must be distinct, got {list(labels)}")
        key = sorted((class_index(label), int(seed)) for label, seed in zip(labels, clip_seeds, strict=True))
        rng = _rng(_SCENE, *[k for pair in key for k in pair])
        size = self.image_size
        canvas = background(rng, size)
        cols = math.ceil(math.sqrt(len(key)))
        rows = math.ceil(len(key) / cols)
        cell_h, cell_w = size / rows, size / cols
        for cell, (index, seed) in zip(rng.permutation(rows * cols), key, strict=False):  # more cells than objects
            row, col = divmod(int(cell), cols)
            half = min(cell_h, cell_w) / 2 * rng.uniform(0.75, 0.95)
            centre = (
                row * cell_h + rng.uniform(half, cell_h - half),
                col * cell_w + rng.uniform(half, cell_w - half),
            )
            draw(canvas, self._appearance(CLASSES[index], seed), centre, half)
        return to_uint8(canvas)

    def frame(self, labels: Sequence[str], clip_seeds: Sequence[int]) -> np.ndarray:
        """The reference frame of an item: the object frame for one source, else the scene."""
        if len(labels) == 1:
            return self.object_image(labels[0], clip_seeds[0])
        return self.scene_image(labels, clip_seeds)

    def noise_image(self, seed: int) -> np.ndarray:
        """uint8 [H, W, 3] uniform noise: what the `random` sanity model returns."""
        return _rng(_NOISE, seed).integers(0, 256, (self.image_size, self.image_size, 3), dtype=np.uint8)


def _source(label: str, clip_seed: int) -> dict:
    name = clip_id(label, clip_seed)
    return {
        "clip": name,
        "label": label,
        "path": f"synth/audio/{name}.wav",
        "start": 0.0,
        "gain_db": 0.0,
        "frame": {"path": f"synth/frames/{name}.png", "rule": "synthetic-object"},
    }


def _balanced_labels(rng: np.random.Generator, n_items: int, per_item: int) -> list[list[str]]:
    """Each block of items uses every class once (up to the remainder), so counts differ by at most one."""
    per_block = len(CLASSES) // per_item
    groups: list[list[str]] = []
    while len(groups) < n_items:
        order = rng.permutation(len(CLASSES))
        groups += [[CLASSES[i] for i in order[k * per_item : (k + 1) * per_item]] for k in range(per_block)]
    return groups[:n_items]


def _carry_unlabelled(items: list[dict], fraction: float, rng: np.random.Generator) -> None:
    """In round(fraction * len(items)) items, one source also carries a class that none of the item's labels name."""
    for number in sorted(rng.choice(len(items), size=round(fraction * len(items)), replace=False)):
        item = items[int(number)]
        source = item["sources"][int(rng.integers(len(item["sources"])))]
        others = [c for c in CLASSES if c not in item["labels"]]
        carried = clip_id(others[int(rng.integers(len(others)))], int(rng.integers(MANIFEST_SEED_LIMIT)))
        source["clip"] += CARRIES + carried
        source["path"] = f"synth/audio/{source['clip']}.wav"


def build_synth_manifest(
    kind: str, n_items: int, seed: int, unlabelled: float = 0.0, name: str | None = None
) -> list[dict]:
    """Manifest items for `synth-single`, `synth-mixed2` or `synth-sep`, balanced over classes.

    With `unlabelled` > 0, that fraction of the items, chosen from a stream of its own, has one source
    that also carries an unlabelled class; everything else is as without. `name` prefixes the ids.
    """
    if kind not in MANIFEST_KINDS:
        raise SuiteError(f"unknown synthetic manifest kind {kind!r}; known: {', '.join(MANIFEST_KINDS)}")
    if n_items < 1:
        raise SuiteError(f"{kind}: n_items must be >= 1, got {n_items}")
    per_item = 1 if kind == "synth-single" else 2
    rng = _rng(_MANIFEST, MANIFEST_KINDS.index(kind), seed)
    groups = _balanced_labels(rng, n_items, per_item)
    clip_seeds = rng.choice(MANIFEST_SEED_LIMIT, size=n_items * per_item, replace=False)
    items = []
    for number, labels in enumerate(groups):
        seeds = [int(s) for s in clip_seeds[number * per_item : (number + 1) * per_item]]
        sources = [_source(label, s) for label, s in zip(labels, seeds, strict=True)]
        item_id = f"{name or kind}-{number:05d}"
        items.append(
            {
                "id": item_id,
                "seed": int(rng.integers(0, 2**31 - 1)),
                "labels": list(labels),
                "mix": "mean" if per_item == 1 else "equal-rms-mean",
                "sources": sources,
                "frame": dict(sources[0]["frame"])
                if per_item == 1
                else {"path": f"synth/scenes/{item_id}.png", "rule": "synthetic-scene"},
            }
        )
    if unlabelled:
        _carry_unlabelled(items, unlabelled, _rng(_UNLABELLED, MANIFEST_KINDS.index(kind), seed))
    return items
