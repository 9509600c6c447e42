"""Model outputs on disk: one marker per (task, item), written last.

An item counts as done only when its marker exists and every file it lists
still has the recorded sha256. Files are written atomically before the
marker, so a run killed at any point resumes with no item lost, half-written
or done twice; a corrupt file is reported and its item generated again.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from PIL import Image

from .cache import atomic_write, atomic_write_text

log = logging.getLogger("avbench.outputs")


@dataclass(frozen=True)
class Done:
    status: str  # "ok" or "failed"
    files: tuple[tuple[str, str], ...]  # (file name, sha256)
    reason: str = ""


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.ascontiguousarray(audio.T), sample_rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


class OutputStore:
    """The outputs of one run: `DIR/outputs/<task>/<item>...`."""

    def __init__(self, root: Path):
        self.root = Path(root) / "outputs"
        self.corrupt = 0

    def _marker(self, task: str, item: str) -> Path:
        return self.root / task / f"{item}.done.json"

    def done(self, task: str, item: str) -> Done | None:
        """The item's marker, if it and all its files are intact."""
        marker = self._marker(task, item)
        try:
            meta = json.loads(marker.read_text("utf-8"))
            files = tuple((str(name), str(sha)) for name, sha in meta["files"])
            result = Done(status=str(meta["status"]), files=files, reason=str(meta.get("reason", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("output marker %s is unreadable (%s); the item will be generated again", marker, exc)
            self.corrupt += 1
            marker.unlink(missing_ok=True)
            return None
        for name, sha in result.files:
            try:
                actual = hashlib.sha256((marker.parent / name).read_bytes()).hexdigest()
            except OSError:
                actual = "missing"
            if actual != sha:
                log.warning(
                    "output %s/%s is corrupt (sha256 %s, expected %s); the item will be generated again",
                    task,
                    name,
                    actual[:12],
                    sha[:12],
                )
                self.corrupt += 1
                marker.unlink(missing_ok=True)
                return None
        return result

    def write(self, task: str, item: str, files: dict[str, bytes]) -> None:
        folder = self.root / task
        listing = []
        for name, data in files.items():
            atomic_write(folder / name, data)
            listing.append([name, hashlib.sha256(data).hexdigest()])
        atomic_write_text(self._marker(task, item), json.dumps({"status": "ok", "files": listing}))

    def write_failure(self, task: str, item: str, reason: str) -> None:
        atomic_write_text(self._marker(task, item), json.dumps({"status": "failed", "files": [], "reason": reason}))

    def path(self, task: str, name: str) -> Path:
        return self.root / task / name

    def image(self, task: str, name: str) -> np.ndarray:
        with Image.open(self.path(task, name)) as im:
            return np.asarray(im.convert("RGB"))

    def audio(self, task: str, name: str) -> np.ndarray:
        data, _ = sf.read(str(self.path(task, name)), dtype="float32", always_2d=True)
        return data.T


Encoded = dict[str, tuple[Callable[[np.ndarray], bytes], np.ndarray]]  # file name -> (encoder, checked array)


class OutputWriter:
    """Encodes and writes checked outputs on one background thread, so PNG encoding overlaps the next batch.

    At most `depth` items wait (their arrays are held until written). An item
    is marked done only once its files are on disk, as with `OutputStore.write`.
    `submit` and `wait()` raise a failed write as `WriteFailed` (item id and
    OSError); whatever else was submitted is still written by `shutdown()`.
    """

    def __init__(self, store: OutputStore, depth: int):
        self.store = store
        self.depth = max(1, depth)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="avbench-writer")
        self._pending: collections.deque = collections.deque()

    def submit(self, task: str, item: str, files: Encoded) -> None:
        while len(self._pending) >= self.depth or (self._pending and self._pending[0][1].done()):
            self._finish(*self._pending.popleft())
        self._pending.append((item, self._pool.submit(self._write, task, item, files)))

    def _write(self, task: str, item: str, files: Encoded) -> None:
        self.store.write(task, item, {name: encode(array) for name, (encode, array) in files.items()})

    @staticmethod
    def _finish(item: str, future: concurrent.futures.Future) -> None:
        try:
            future.result()
        except OSError as exc:
            raise WriteFailed(item, exc) from None

    def wait(self) -> None:
        while self._pending:
            self._finish(*self._pending.popleft())

    def shutdown(self) -> None:
        """Let every submitted write finish (their errors are not raised here), then stop the thread."""
        self._pool.shutdown(wait=True)
        self._pending.clear()


class WriteFailed(Exception):
    """An output could not be written: which item, and the OSError."""

    def __init__(self, item: str, error: OSError):
        super().__init__(item, error)
        self.item, self.error = item, error
