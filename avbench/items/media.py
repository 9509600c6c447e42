"""The scored items' media: hashes known up front, arrays read only when needed.

Scoring names every reference by content hash (the feature-cache keys) and
reads the arrays themselves only on a cache miss or for a separation metric.
So `MediaStore` answers hashes from media already loaded in this process
(generation hands over what it loaded), else from the media index, else by
loading the item. Loaded arrays wait in the scoring scratch file (spill.py).
The first read of an item that was never loaded loads every such item, in
one DataLoader pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

from ..cache import array_hash
from ..errors import DataError
from ..suites.manifest import Item
from ..suites.spec import Suite
from .loader import batches
from .media_index import ItemHashes, MediaIndex
from .sources import DataSource, ReadyItem
from .spill import ArraySpill, Stored

T = TypeVar("T")


@dataclass(frozen=True)
class _Placed:
    """Where one item's arrays are in the scratch file."""

    mixture: Stored
    reference: Stored | None
    source_images: tuple[Stored, ...]
    sources: Stored

    def hashes(self) -> ItemHashes:
        return ItemHashes(
            self.mixture.sha256,
            None if self.reference is None else self.reference.sha256,
            tuple(s.sha256 for s in self.source_images),
            self.sources.sha256,
        )


@dataclass(frozen=True)
class ItemMedia:
    """One scored item: its manifest entry, its media hashes, and readers for the arrays."""

    item: Item
    hashes: ItemHashes
    store: "MediaStore"

    def mixture(self) -> np.ndarray:
        return self.store.read(self.item.id).mixture

    def reference(self) -> np.ndarray:
        return self.store.read(self.item.id).reference

    def source_image(self, k: int) -> np.ndarray:
        return self.store.read(self.item.id).source_images[k]

    def sources(self) -> np.ndarray:
        return self.store.read(self.item.id).sources


class _Arrays:
    """Reads one item's arrays from the scratch file on attribute access."""

    def __init__(self, spill: ArraySpill, placed: _Placed):
        self._spill, self._placed = spill, placed

    @property
    def mixture(self) -> np.ndarray:
        return self._spill.get(self._placed.mixture)

    @property
    def reference(self) -> np.ndarray:
        return self._spill.get(self._placed.reference)

    @property
    def source_images(self) -> list[np.ndarray]:
        return [self._spill.get(s) for s in self._placed.source_images]

    @property
    def sources(self) -> np.ndarray:
        return self._spill.get(self._placed.sources)


class MediaStore:
    """Hashes and lazily loaded arrays of a suite's items, for one process."""

    def __init__(
        self,
        source: DataSource,
        suite: Suite,
        index: MediaIndex,
        batch_size: int,
        workers: int | None = None,
        scratch_dir: Path | None = None,
    ):
        self.source, self.suite, self.index = source, suite, index
        self.batch_size, self.workers, self.scratch_dir = batch_size, workers, scratch_dir
        self.loaded = 0  # items loaded for scoring (not handed over by generation)
        self._spill: ArraySpill | None = None
        self._placed: dict[str, _Placed] = {}
        self._known: dict[str, Item] = {}
        self._handed_out: dict[str, ItemHashes] = {}

    def index_only(self, ready: ReadyItem) -> None:
        """Record a loaded item's hashes without keeping its arrays (generation in a process that will not score)."""
        self._remember(ready.item, ItemHashes(*_each_array(ready, lambda array, what: array_hash(array))))

    def keep(self, ready: ReadyItem) -> None:
        """Keep a loaded item's arrays for scoring, and index its hashes."""
        if ready.item.id in self._placed:
            return
        spill, name = self._scratch(), ready.item.id
        placed = _Placed(*_each_array(ready, lambda array, what: spill.put(array, f"{what} of item {name}")))
        self._placed[name] = placed
        self._remember(ready.item, placed.hashes())

    def media(self, items: Sequence[Item]) -> list[ItemMedia]:
        """The items with their hashes; only items neither kept nor indexed are loaded now."""
        for item in items:
            self._known[item.id] = item
        hashes = {item.id: self._hashes(item) for item in items}
        unknown = [item for item in items if hashes[item.id] is None]
        if unknown:
            self.index.refresh()
            self._load([item for item in unknown if self._hashes(item) is None])
            hashes.update((item.id, self._hashes(item)) for item in unknown)
        self._handed_out.update(hashes)
        return [ItemMedia(item, hashes[item.id], self) for item in items]

    def read(self, item_id: str) -> _Arrays:
        if item_id not in self._placed:
            self._load([item for key, item in self._known.items() if key not in self._placed])
        return _Arrays(self._scratch(), self._placed[item_id])

    def save_index(self) -> None:
        self.index.save()

    def close(self) -> None:
        self.save_index()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _hashes(self, item: Item) -> ItemHashes | None:
        if item.id in self._placed:
            return self._placed[item.id].hashes()
        return self.index.get(item.id, self.source.fingerprint(item))

    def _remember(self, item: Item, hashes: ItemHashes) -> None:
        handed = self._handed_out.get(item.id)
        self.index.put(item.id, self.source.fingerprint(item), hashes)
        if handed is not None and handed != hashes:
            self.save_index()
            raise DataError(
                f"item {item.id}: its media changed after the media index {self.index.path} "
                "was written, without a change to their files' sizes or times; "
                "the index is now refreshed: run the same command again"
            )

    def _load(self, items: Sequence[Item]) -> None:
        if not items:
            return
        for loaded in batches(self.source, self.suite, items, self.batch_size, self.workers):
            for one in loaded:
                if not isinstance(one, ReadyItem):
                    raise DataError(one[1])
                self.keep(one)
                self.loaded += 1
        self.save_index()

    def _scratch(self) -> ArraySpill:
        if self._spill is None:
            self._spill = ArraySpill(self.scratch_dir)
        return self._spill

    def __enter__(self) -> "MediaStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _each_array(ready: ReadyItem, apply: Callable[[np.ndarray, str], T]) -> tuple[T, T | None, tuple[T, ...], T]:
    """`apply(array, what)` over an item's mixture, reference frame, source frames and sources, in ItemHashes' order."""
    truth = ready.truth
    return (
        apply(ready.mixture, "the mixture"),
        None if truth.reference is None else apply(truth.reference, "the reference frame"),
        tuple(apply(im, f"source frame {k}") for k, im in enumerate(truth.source_images)),
        apply(truth.sources, "the source waveforms"),
    )
