"""Training data for the synthetic-world baselines, rendered from the world.

Clips use seeds from `TRAIN_SEED_BASE` up: above the manifests' range
(MANIFEST_SEED_LIMIT) and apart from the evaluator's own training clips, so no
suite item and no evaluator example is ever trained on. Pairs of clips of
distinct classes give mixtures (mixed with the suites' "equal-rms-mean" rule)
and their scenes (the world's ideal image of the mixture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avbench.items.audio import mix_sources
from avbench.synth.world import CLASSES, MANIFEST_SEED_LIMIT, World

TRAIN_SEED_BASE = MANIFEST_SEED_LIMIT + 2_000_000
SYNTH_RATE, SYNTH_SECONDS = 16000, 2.0  # the synth suites' audio


@dataclass
class WorldData:
    """N clips (audio, object image, class) and P pairs (mixture, scene, the two clip indices)."""

    labels: torch.Tensor  # long [N]
    audio: torch.Tensor  # float32 [N, T]
    objects: torch.Tensor  # uint8 [N, 3, H, W]
    pairs: torch.Tensor  # long [P, 2], indices into the clips, distinct classes
    mixtures: torch.Tensor  # float32 [P, T]
    scenes: torch.Tensor  # uint8 [P, 3, H, W]


def _chw(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def render_world_data(clips_per_class: int, n_pairs: int, seed: int, scenes: bool = True) -> WorldData:
    """Deterministic in (clips_per_class, n_pairs, seed); `scenes=False` skips rendering scenes (left empty)."""
    world = World(sample_rate=SYNTH_RATE, clip_seconds=SYNTH_SECONDS)
    rng = np.random.default_rng(seed)
    labels, audio, objects, clip_seeds = [], [], [], []
    for k in range(clips_per_class):
        for c, label in enumerate(CLASSES):
            clip_seed = TRAIN_SEED_BASE + seed * 100_000 + k
            labels.append(c)
            clip_seeds.append(clip_seed)
            audio.append(world.source_audio(label, clip_seed))
            objects.append(world.object_image(label, clip_seed))
    labels_np = np.array(labels)
    pairs, mixtures, scene_images = [], [], []
    while len(pairs) < n_pairs:
        i, j = (int(v) for v in rng.choice(len(labels), size=2, replace=False))
        if labels_np[i] == labels_np[j]:
            continue
        pairs.append((i, j))
        mixture, _ = mix_sources([audio[i], audio[j]], [0.0, 0.0], "equal-rms-mean")
        mixtures.append(mixture)
        if scenes:
            scene_images.append(
                world.scene_image([CLASSES[labels[i]], CLASSES[labels[j]]], [clip_seeds[i], clip_seeds[j]])
            )
    objects_chw = _chw(objects)
    return WorldData(
        labels=torch.from_numpy(labels_np).long(),
        audio=torch.from_numpy(np.stack(audio)),
        objects=objects_chw,
        pairs=torch.tensor(pairs, dtype=torch.long),
        mixtures=torch.from_numpy(np.stack(mixtures)),
        scenes=_chw(scene_images) if scene_images else torch.zeros(0, *objects_chw.shape[1:], dtype=torch.uint8),
    )


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float in [-1, 1], the generator's output range."""
    return images.float() / 127.5 - 1.0
