"""Sanity models: fixed points that every metric must order correctly.

`oracle` returns the item's own references, `oracle-one` only the first
class, `random` seeded noise, `mixture` the mixture itself for every source
(DAVIS's mixture-as-estimate baseline). They read the item's ground truth,
which the base class hands only to models declaring `uses_ground_truth`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Batch, Model

ALL_TASKS = frozenset({"generate", "generate_per_source", "separate_audio"})
NOISE_SIZE = 64


def _noise_image(seed: int, like: np.ndarray | None) -> np.ndarray:
    shape = like.shape if like is not None else (NOISE_SIZE, NOISE_SIZE, 3)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


class _TruthModel(Model):
    uses_ground_truth: ClassVar[bool] = True
    tasks: ClassVar[frozenset[str]] = ALL_TASKS
    version: ClassVar[str] = "1"

    @property
    def sample_rate(self) -> int:  # answers at whatever rate the suite uses
        return 0


class OracleModel(_TruthModel):
    """Returns the reference: the ideal scene, each source's image, the true sources."""

    name = "oracle"

    def generate(self, batch: Batch) -> list[np.ndarray]:
        return [t.reference for t in batch.truth]

    def generate_per_source(self, batch: Batch) -> list[list[np.ndarray]]:
        return [list(t.source_images) for t in batch.truth]

    def separate_audio(self, batch: Batch) -> list[np.ndarray]:
        return [t.sources.copy() for t in batch.truth]


class OracleOneModel(_TruthModel):
    """Knows only the first class of each item."""

    name = "oracle-one"

    def generate(self, batch: Batch) -> list[np.ndarray]:
        return [t.source_images[0] for t in batch.truth]

    def generate_per_source(self, batch: Batch) -> list[list[np.ndarray]]:
        return [[t.source_images[0]] * n for t, n in zip(batch.truth, batch.num_sources, strict=True)]

    def separate_audio(self, batch: Batch) -> list[np.ndarray]:
        return [np.repeat(t.sources[:1], n, axis=0) for t, n in zip(batch.truth, batch.num_sources, strict=True)]


class RandomModel(_TruthModel):
    """Seeded noise of the reference's shape: images, or waveforms at the mixture's level."""

    name = "random"

    def generate(self, batch: Batch) -> list[np.ndarray]:
        return [_noise_image(seed, t.reference) for seed, t in zip(batch.seeds, batch.truth, strict=True)]

    def generate_per_source(self, batch: Batch) -> list[list[np.ndarray]]:
        return [
            [_noise_image(seed * 7919 + k, t.reference) for k in range(n)]
            for seed, t, n in zip(batch.seeds, batch.truth, batch.num_sources, strict=True)
        ]

    def separate_audio(self, batch: Batch) -> list[np.ndarray]:
        audio = batch.audio.cpu().numpy()
        out = []
        for i, n in enumerate(batch.num_sources):
            level = float(np.sqrt(np.mean(audio[i] ** 2))) or 1e-3
            rng = np.random.default_rng(batch.seeds[i])
            out.append((rng.standard_normal((n, audio.shape[1])) * level).astype(np.float32))
        return out


class MixtureModel(Model):
    """Separation baseline: every estimated source is the mixture itself."""

    name = "mixture"
    version = "1"
    tasks = frozenset({"separate_audio"})
    sample_rate = 0

    def separate_audio(self, batch: Batch) -> list[np.ndarray]:
        audio = batch.audio.cpu().numpy()
        return [np.repeat(audio[i][None], n, axis=0) for i, n in enumerate(batch.num_sources)]
