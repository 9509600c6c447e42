"""The report's media: every file a page links to is written into the report folder.

Audio is re-encoded as 16-bit PCM WAV, which every browser plays (the runs
store float WAVs, which some do not). Reference media are re-created from the
suite, so they are written once per suite and shared by its runs' pages.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..cache import atomic_write
from ..errors import AvbenchError
from ..items.sources import data_source, load_item
from ..outputs import png_bytes
from ..suites.manifest import Item
from ..suites.spec import Suite
from .runs import ItemView, Media, RunView

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")  # a file name inside its folder, nothing more


def wav16_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono or [S, T] audio as 16-bit PCM; audio louder than full scale is scaled down, never clipped."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float64))
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    buffer = io.BytesIO()
    sf.write(buffer, audio.T if audio.ndim == 2 else audio, int(sample_rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class MediaWriter:
    """Writes each file of the report folder once, atomically; returns its relative link.

    The folder's list of written files (`.avbench-report.json`) lets the next
    report remove the pages and media of runs it no longer shows, and never
    touch a file it did not write.
    """

    LISTING = ".avbench-report.json"

    def __init__(self, out: Path):
        self.out = Path(out)
        self._written: set[str] = set()

    def put(self, relative: str, data: Callable[[], bytes]) -> str:
        if relative not in self._written:
            atomic_write(self.out / relative, data())
            self._written.add(relative)
        return relative

    def finish(self) -> None:
        """Remove what an earlier report wrote and this one did not; record what this one wrote."""
        try:
            earlier = json.loads((self.out / self.LISTING).read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            earlier = []
        stale = {name for name in earlier if isinstance(name, str)} - self._written
        for relative in sorted(stale):
            path = self.out / relative
            if ".." in Path(relative).parts or Path(relative).is_absolute() or not path.is_file():
                continue
            path.unlink()
            for folder in path.parents:
                if folder == self.out or any(folder.iterdir()):
                    break
                folder.rmdir()
        atomic_write(self.out / self.LISTING, json.dumps(sorted(self._written), indent=1).encode("utf-8"))


class SuiteMedia:
    """Mixture audio, reference frame and cue frames of a suite's items, re-created from its data."""

    def __init__(self, writer: MediaWriter, suite: Suite, data_root: Path | None, folder: str):
        self.writer, self.suite, self.folder = writer, suite, folder
        self._done: dict[str, Media] = {}
        try:
            self.source = data_source(suite, data_root)
            self.unavailable = ""
        except AvbenchError as exc:
            self.source, self.unavailable = None, f"reference media not shown: {exc}"

    def media(self, item: Item) -> Media:
        if item.id not in self._done:
            self._done[item.id] = self._write(item)
        cached = self._done[item.id]
        return Media(mixture=cached.mixture, reference=cached.reference, cues=list(cached.cues), note=cached.note)

    def _write(self, item: Item) -> Media:
        if self.source is None:
            return Media(note=self.unavailable)
        try:
            ready = load_item(self.source, self.suite, item)
        except AvbenchError as exc:
            return Media(note=f"reference media not shown: {exc}")
        stem = f"{self.folder}/{item.id}"
        put = self.writer.put
        media = Media(mixture=put(f"{stem}.mix.wav", lambda: wav16_bytes(ready.mixture, self.suite.sample_rate)))
        if ready.truth.reference is not None:
            media.reference = put(f"{stem}.ref.png", lambda: png_bytes(ready.truth.reference))
        cues = ready.truth.source_images if "separate_audio" in self.suite.tasks else ()
        for k, frame in enumerate(cues):
            media.cues.append(put(f"{stem}.cue{k}.png", lambda frame=frame: png_bytes(frame)))
        return media


def output_files(run: RunView, task: str, item_id: str) -> list[Path]:
    """The files the run's output marker lists for this item, if they are still there."""
    folder = run.dir / "outputs" / task
    try:
        names = [str(name) for name, _ in json.loads((folder / f"{item_id}.done.json").read_text("utf-8"))["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    paths = [folder / name for name in names if SAFE_NAME.match(name)]
    return paths if len(paths) == len(names) and all(p.is_file() for p in paths) else []


def write_run_outputs(writer: MediaWriter, run: RunView, shown: list[ItemView], folder: str) -> None:
    """Copy the shown items' generated images; split each separation into one WAV per source."""
    for view in shown:
        for task, (status, _) in view.status.items():
            if status != "ok":
                continue
            links = []
            for path in output_files(run, task, view.item.id):
                if task == "separate_audio":
                    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
                    for k in range(audio.shape[1]):
                        links.append(
                            writer.put(
                                f"{folder}/{task}/{view.item.id}.{k}.wav",
                                lambda k=k, audio=audio, rate=rate: wav16_bytes(audio[:, k], rate),
                            )
                        )
                else:
                    links.append(writer.put(f"{folder}/{task}/{path.name}", path.read_bytes))
            view.media.outputs[task] = links
