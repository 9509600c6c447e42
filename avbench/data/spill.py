"""Scoring reads each item's ground truth back from a scratch file, not from memory.

Scoring needs every item's reference media (frames, source waveforms, the
mixture), once per image set, audio pass and separation metric. Holding all
of them would make memory grow with the suite (about 0.3 MB per synthetic
item, several MB per real separation item); loading them again would repeat
the slowest step (decoding, resampling, rendering). So the one loading pass
appends every array to an unlinked scratch file and keeps only its place,
shape and content hash. The file vanishes when it is closed or the process
dies.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AvbenchError, DataError
from ..features import image_hash
from .items import DataSource, ReadyItem
from .loader import batches
from .manifest import Item
from .suite import Suite


@dataclass(frozen=True)
class Stored:
    """Where one array lives in the scratch file, and its content hash (shape included)."""

    offset: int
    shape: tuple[int, ...]
    dtype: str
    sha256: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class ArraySpill:
    """An append-only scratch file of arrays, read back by position."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory
        try:
            self._file = tempfile.TemporaryFile(prefix="avbench-truth-", dir=directory)
        except OSError as exc:
            raise AvbenchError(f"cannot create the scoring scratch file in {directory or tempfile.gettempdir()}: {exc.strerror or exc}") from None
        self._end = 0

    def put(self, array: np.ndarray, what: str) -> Stored:
        array = np.ascontiguousarray(array)
        data = array.tobytes()
        try:
            written = os.pwrite(self._file.fileno(), data, self._end)
        except OSError as exc:
            raise AvbenchError(f"cannot keep {what} in the scoring scratch file in {self.directory or tempfile.gettempdir()}: {exc.strerror or exc}") from None
        if written != len(data):
            raise AvbenchError(f"cannot keep {what} in the scoring scratch file: short write")
        stored = Stored(self._end, tuple(array.shape), array.dtype.str, image_hash(array))
        self._end += len(data)
        return stored

    def get(self, stored: Stored) -> np.ndarray:
        buffer = bytearray(stored.nbytes)
        if os.preadv(self._file.fileno(), [buffer], stored.offset) != stored.nbytes:
            raise AvbenchError("the scoring scratch file was truncated while in use")
        return np.frombuffer(buffer, dtype=np.dtype(stored.dtype)).reshape(stored.shape)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ArraySpill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class SpilledItem:
    """One item as scoring sees it: its manifest entry and handles to its media."""

    item: Item
    spill: ArraySpill
    mixture: Stored
    reference: Stored | None
    source_images: tuple[Stored, ...]
    sources: Stored

    @classmethod
    def of(cls, ready: ReadyItem, spill: ArraySpill) -> "SpilledItem":
        name, truth = ready.item.id, ready.truth
        return cls(
            item=ready.item,
            spill=spill,
            mixture=spill.put(ready.mixture, f"the mixture of item {name}"),
            reference=None if truth.reference is None else spill.put(truth.reference, f"the reference frame of item {name}"),
            source_images=tuple(spill.put(im, f"source frame {k} of item {name}") for k, im in enumerate(truth.source_images)),
            sources=spill.put(truth.sources, f"the source waveforms of item {name}"),
        )

    def read(self, stored: Stored) -> np.ndarray:
        return self.spill.get(stored)


def spill_items(source: DataSource, suite: Suite, items: Sequence[Item], spill: ArraySpill, batch_size: int, workers: int | None = None) -> list[SpilledItem]:
    """Load every item once (through the DataLoader) into `spill`; a broken item is an error that names it."""
    out: list[SpilledItem] = []
    for loaded in batches(source, suite, items, batch_size, workers):
        for one in loaded:
            if not isinstance(one, ReadyItem):
                raise DataError(one[1])
            out.append(SpilledItem.of(one, spill))
    return out
