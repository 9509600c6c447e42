"""Model outputs on disk: one marker per (task, item), written last.

An item counts as done only when its marker exists and every file it lists
still has the recorded sha256. Files are written atomically before the
marker, so a run killed at any point resumes with no item lost, half-written
or done twice; a corrupt file is reported and its item generated again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

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
                log.warning("output %s/%s is corrupt (sha256 %s, expected %s); the item will be generated again", task, name, actual[:12], sha[:12])
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
