"""The stream of ready items: manifest entries turned into audio and images.

A data source renders one manifest source or frame. `SynthSource` draws them
from the embedded world, `FileSource` (data/files.py) reads them from a data
root; everything after this module is the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from ..errors import DataError
from ..models.base import Truth
from ..suites.manifest import Frame, Item, Source
from ..suites.spec import Suite
from .audio import mix_sources


class DataSource(Protocol):
    def source_audio(self, source: Source, sample_rate: int, seconds: float) -> np.ndarray: ...

    def frame(self, frame: Frame) -> np.ndarray: ...

    def missing(self, item: Item) -> list[str]: ...

    def kind(self) -> str:
        """What the media come from, for the media index (see media_index.py)."""

    def fingerprint(self, item: Item) -> str:
        """Changes whenever the item's media may have; cheap (no decoding)."""


@dataclass
class ReadyItem:
    item: Item
    mixture: np.ndarray  # float32 [T]
    truth: Truth


class SynthSource:
    """Renders manifest entries of the synthetic suites from the world."""

    def __init__(self, suite: Suite):
        from ..synth.world import World, parse_clip_id

        self.world = World(sample_rate=suite.sample_rate, clip_seconds=suite.clip_seconds)
        self.parse_clip_id = parse_clip_id

    def source_audio(self, source: Source, sample_rate: int, seconds: float) -> np.ndarray:
        return self.world.clip_audio(source.clip)

    def frame(self, frame: Frame) -> np.ndarray:
        """Object frames are named by their clip, scenes by their clips joined with '+'."""
        stem = frame.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        clips = [self.parse_clip_id(name) for name in stem.split("+")]
        if frame.rule == "synthetic-scene":
            return self.world.scene_image([c[0] for c in clips], [c[1] for c in clips])
        ((label, seed),) = clips
        return self.world.object_image(label, seed)

    def missing(self, item: Item) -> list[str]:
        return []

    def kind(self) -> str:
        return "synth"

    def fingerprint(self, item: Item) -> str:
        """The world's code is in the media index's key; an item's manifest entry fixes its media."""
        return ""


def _composite(images: Sequence[np.ndarray]) -> np.ndarray:
    """Side-by-side reference for items with several frames and no scene."""
    height = min(im.shape[0] for im in images)
    return np.concatenate([im[:height] for im in images], axis=1)


def data_source(suite: Suite, data_root) -> DataSource:
    if suite.data == "synth":
        return SynthSource(suite)
    from .files import FileSource

    if data_root is None:
        raise DataError(
            f"suite {suite.name!r} reads real data: pass --data-root DIR "
            f"(see `avbench data prepare {suite.name} --help` to build one)"
        )
    return FileSource(data_root)


def load_item(source: DataSource, suite: Suite, item: Item) -> ReadyItem:
    """Load and mix one item; errors name the item."""
    try:
        waves = [source.source_audio(s, suite.sample_rate, suite.clip_seconds) for s in item.sources]
        mixture, scaled = mix_sources(waves, [s.gain_db for s in item.sources], item.mix)
        frames = tuple(source.frame(s.frame) for s in item.sources if s.frame is not None)
        if item.frame is not None:
            reference = source.frame(item.frame)
        elif frames:
            reference = frames[0] if len(frames) == 1 else _composite(frames)
        else:
            reference = None
    except DataError as exc:
        raise DataError(f"item {item.id}: {exc}") from None
    truth = Truth(
        labels=item.labels, reference=reference, source_images=frames, sources=np.stack(scaled).astype(np.float32)
    )
    return ReadyItem(item=item, mixture=np.asarray(mixture, dtype=np.float32), truth=truth)
