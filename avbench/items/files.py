"""Reading a suite's prepared files (audio/*.wav, frames/*.jpg) under a data root.

Every manifest path is resolved through `resolve_inside`, so neither '..' nor
a symlink can make avbench read outside the data root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, UnidentifiedImageError

from ..cache import stable_hash
from ..errors import DataError
from ..suites.manifest import Frame, Item, Source, resolve_inside
from .audio import load_audio

PREPARE_HINT = (
    "pass --data-root DIR pointing at the suite's prepared files; make them with "
    "`avbench data prepare SUITE --videos VIDEOS --data-root DIR` (see data_manifests/README.md)"
)


@dataclass(frozen=True)
class ItemFile:
    """One file an item needs: its kind ("audio" or "frame"), path and clip."""

    kind: str
    path: str
    clip: str


@dataclass(frozen=True)
class Problem:
    """What is wrong with one file: status "missing" or "corrupt", and why."""

    status: str
    message: str


def item_files(item: Item) -> list[ItemFile]:
    """The files an item reads, in manifest order; the item frame comes from the first source's clip."""
    files = []
    for source in item.sources:
        files.append(ItemFile("audio", source.path, source.clip))
        if source.frame is not None:
            files.append(ItemFile("frame", source.frame.path, source.clip))
    if item.frame is not None:
        files.append(ItemFile("frame", item.frame.path, item.sources[0].clip))
    return files


class FileSource:
    """Audio and frames of manifest items, read from a prepared data root.

    With `strict_rate` (the default) audio must already be at the suite's rate,
    as `avbench data prepare` writes it: a mismatch means the root was prepared
    for another suite, and is an error rather than a silent resample.
    """

    def __init__(self, data_root: str | Path, strict_rate: bool = True):
        self.root = Path(data_root)
        if not self.root.is_dir():
            raise DataError(f"data root {self.root} does not exist or is not a folder: {PREPARE_HINT}")
        self.strict_rate = strict_rate
        self._verdicts: dict[tuple[str, str, int], Problem | None] = {}

    def resolve(self, relative: str, what: str) -> Path:
        return resolve_inside(self.root, relative, what)

    def source_audio(self, source: Source, sample_rate: int, seconds: float) -> np.ndarray:
        """The source's mono float32 waveform of exactly `seconds` at `sample_rate`."""
        path = self.resolve(source.path, f"clip {source.clip}")
        if not path.is_file():
            raise DataError(f"clip {source.clip}: audio file {path} is missing; {PREPARE_HINT}")
        return load_audio(
            path,
            sample_rate,
            start=source.start,
            seconds=seconds,
            expect_rate=sample_rate if self.strict_rate else None,
        )

    def frame(self, frame: Frame) -> np.ndarray:
        """The frame as uint8 RGB [H, W, 3]."""
        path = self.resolve(frame.path, "frame")
        if not path.is_file():
            raise DataError(f"frame file {path} is missing; {PREPARE_HINT}")
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"frame file {path}: cannot decode image ({exc})") from None

    def missing(self, item: Item) -> list[str]:
        """Manifest paths of the item that are not present under the root.

        A path that names no file is missing wherever it would resolve, so only present files pay for
        resolving symlinks (one stat instead of a walk per path: a 15,000-item manifest on a sparse root).
        """
        return [
            f.path
            for f in item_files(item)
            if not (self.root / f.path).is_file() or not self.resolve(f.path, f"item {item.id}").is_file()
        ]

    def kind(self) -> str:
        return f"files:{self.root.resolve()}:strict-rate={self.strict_rate}"

    def fingerprint(self, item: Item) -> str:
        """Size and modification time of every file, as make and git judge a file unchanged."""
        stats = []
        for file in item_files(item):
            try:
                info = self.resolve(file.path, f"item {item.id}").stat()
                stats.append([file.path, info.st_size, info.st_mtime_ns])
            except OSError:
                stats.append([file.path, "missing"])
        return stable_hash(stats)[:32]

    def problems(self, item: Item, sample_rate: int) -> list[Problem]:
        """Missing or corrupt files of the item (audio header and rate, decodable image)."""
        found = []
        for file in item_files(item):
            key = (file.kind, file.path, sample_rate)
            if key not in self._verdicts:
                self._verdicts[key] = self._inspect(file, sample_rate, item.id)
            if self._verdicts[key] is not None:
                found.append(self._verdicts[key])
        return found

    def _inspect(self, file: ItemFile, sample_rate: int, item_id: str) -> Problem | None:
        path = self.resolve(file.path, f"item {item_id}")
        if not path.is_file():
            return Problem("missing", f"{file.path}: missing ({file.kind} of clip {file.clip})")
        if file.kind == "frame":
            try:
                with Image.open(path) as image:
                    image.load()
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                return Problem("corrupt", f"{file.path}: cannot decode image ({exc})")
            return None
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            return Problem("corrupt", f"{file.path}: cannot read audio ({exc})")
        if info.frames == 0:
            return Problem("corrupt", f"{file.path}: holds no audio samples")
        if self.strict_rate and info.samplerate != sample_rate:
            return Problem("corrupt", f"{file.path}: sample rate is {info.samplerate} Hz, expected {sample_rate} Hz")
        return None
