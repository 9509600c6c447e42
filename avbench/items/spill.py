"""Scoring reads each item's ground truth back from a scratch file, not from memory.

Scoring may need an item's reference media (frames, source waveforms, the
mixture) once per image set, audio pass and separation metric. Holding all
of them would make memory grow with the suite (about 0.3 MB per synthetic
item, several MB per real separation item); loading them again would repeat
the slowest step (decoding, resampling, rendering). So each loaded array is
appended to an unlinked scratch file, and only its place, shape and content
hash stay in memory. The file vanishes when it is closed or the process dies.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import array_hash
from ..errors import AvbenchError


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
            raise AvbenchError(
                f"cannot create the scoring scratch file in {directory or tempfile.gettempdir()}: {exc.strerror or exc}"
            ) from None
        self._end = 0

    def put(self, array: np.ndarray, what: str) -> Stored:
        array = np.ascontiguousarray(array)
        data = array.tobytes()
        try:
            written = os.pwrite(self._file.fileno(), data, self._end)
        except OSError as exc:
            raise AvbenchError(
                f"cannot keep {what} in the scoring scratch file in {self.directory or tempfile.gettempdir()}: "
                f"{exc.strerror or exc}"
            ) from None
        if written != len(data):
            raise AvbenchError(f"cannot keep {what} in the scoring scratch file: short write")
        stored = Stored(self._end, tuple(array.shape), array.dtype.str, array_hash(array))
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
