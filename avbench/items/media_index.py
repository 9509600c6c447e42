"""A persistent index of each item's media hashes, so a warm run loads no media.

Feature-cache keys name images and audio by content hash. Without an index,
re-scoring a finished run would decode, resample or render every item only
to learn hashes it computed last time. The index maps an item, as its data
source fingerprints it (file sizes and modification times under a data root,
or nothing beyond the world's code for the synthetic suites), to the hashes
of its mixture, reference frame, source frames and source waveforms. One
file per suite, manifest and loading code: a change to any of them starts a
new index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from ..cache import JsonIndex, stable_hash
from ..suites.spec import Suite
from ..versions import source_fingerprint

FORMAT = "avbench-media-index/1"
# Rendering, decoding, resampling and mixing all live in these packages.
LOADING_CODE = ("avbench.items.sources", "avbench.synth.world")


@dataclass(frozen=True)
class ItemHashes:
    """Content hashes (shape included) of one item's media, as scoring names them."""

    mixture: str
    reference: str | None
    source_images: tuple[str, ...]
    sources: str

    @classmethod
    def parse(cls, value: dict) -> "ItemHashes":
        return cls(
            str(value["mixture"]),
            None if value["reference"] is None else str(value["reference"]),
            tuple(str(h) for h in value["source_images"]),
            str(value["sources"]),
        )


class MediaIndex:
    """item id + source fingerprint -> ItemHashes."""

    def __init__(self, folder: Path, suite: Suite, source_kind: str):
        key = stable_hash(
            {
                "format": FORMAT,
                "suite": [suite.name, suite.version, suite.manifest_sha256, suite.sample_rate, suite.clip_seconds],
                "source": source_kind,
                "code": source_fingerprint(*LOADING_CODE),
                "libraries": {name: metadata.version(name) for name in ("numpy", "soxr", "soundfile", "pillow")},
            }
        )
        self._index = JsonIndex(Path(folder) / f"{suite.name}-{key[:16]}.json", "media index")
        self.path = self._index.path

    def get(self, item_id: str, fingerprint: str) -> ItemHashes | None:
        entry = self._index.get(f"{item_id}|{fingerprint}")
        try:
            return None if entry is None else ItemHashes.parse(entry)
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, item_id: str, fingerprint: str, hashes: ItemHashes) -> None:
        self._index.put(f"{item_id}|{fingerprint}", asdict(hashes))

    def refresh(self) -> None:
        self._index.refresh()

    def save(self) -> None:
        self._index.save()
