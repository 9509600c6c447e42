"""`davis`: visually guided separation by a generative model of the target spectrogram.

On synthetic suites (`suite.data == "synth"`) it loads the small model avbench
trains with `python -m baselines.davis.train` (shipped, pinned by sha256).
On real suites it needs DAVIS's released checkpoint folder (`unet_best.pth` +
`frame_best.pth`, see checkpoint.py). A model whose rate differs from the
suite's (DAVIS runs at 11,025 Hz) returns its estimates resampled to the
suite's rate, since references are compared at the suite's rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import soxr
import torch

from avbench.errors import CheckpointError
from avbench.models.base import Batch, Model

from .checkpoint import SYNTH_FILE, SYNTH_SHA256, WEIGHTS_DIR, combined_sha256, load_paper, load_synth
from .separator import SYNTH, DavisSeparator


class DAVIS(Model):
    name: ClassVar[str] = "davis"
    version: ClassVar[str] = "1"
    tasks: ClassVar[frozenset[str]] = frozenset({"separate_audio"})

    def __init__(self, separator: DavisSeparator, *, device="cpu", configuration: str = "synth", output_rate: int | None = None):
        super().__init__(device=device)
        self.separator = separator.eval().to(self.device)
        self.configuration = configuration
        self.sample_rate = separator.config.spec.sample_rate
        self.output_rate = output_rate or self.sample_rate
        self.checkpoint_files: dict[str, str] = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, device: str = "cpu", suite=None) -> "DAVIS":
        output_rate = suite.sample_rate if suite is not None else None
        if path is None:
            if suite is not None and suite.data != "synth":
                raise CheckpointError(
                    f"davis has no shipped weights for real-data suite {suite.name!r}: pass --checkpoint FOLDER, "
                    "the folder of DAVIS's released unet_best.pth and frame_best.pth (github.com/WikiChao/DAVIS, Model Zoo)"
                )
            path = WEIGHTS_DIR / SYNTH_FILE
            separator, digest = load_synth(path, SYNTH, SYNTH_SHA256)
            model = cls(separator, device=device, configuration="synth", output_rate=output_rate)
            model.checkpoint_sha256 = digest
            return model
        path = Path(path)
        if path.suffix == ".safetensors":  # a model trained by baselines.davis.train
            separator, digest = load_synth(path, SYNTH, None)
            model = cls(separator, device=device, configuration="synth", output_rate=output_rate)
            model.checkpoint_sha256 = digest
            return model
        separator, hashes = load_paper(path)
        model = cls(separator, device=device, configuration="paper", output_rate=output_rate)
        model.checkpoint_files = hashes
        model.checkpoint_sha256 = combined_sha256(hashes)
        return model

    def separate_audio(self, batch: Batch) -> list[np.ndarray]:
        if batch.cues is None:
            raise ValueError("davis needs one visual cue per source (batch.cues)")
        cues = [list(item_cues)[:n] for item_cues, n in zip(batch.cues, batch.num_sources)]
        if any(len(c) != n for c, n in zip(cues, batch.num_sources)):
            raise ValueError("davis needs one visual cue per source; some item has fewer cues than sources")
        generators = [batch.generator(i) for i in range(len(batch))]
        audio = batch.audio.to(self.device, torch.float32)
        estimates = self.separator.separate(audio, cues, generators)
        if self.output_rate == self.sample_rate:
            return estimates
        return [self._to_output_rate(e) for e in estimates]

    def _to_output_rate(self, waves: np.ndarray) -> np.ndarray:
        resampled = [soxr.resample(w, self.sample_rate, self.output_rate, quality="HQ") for w in waves]
        length = min(min(len(r) for r in resampled), waves.shape[1] * self.output_rate // self.sample_rate)
        return np.stack([r[:length] for r in resampled]).astype(np.float32)

    def set_steps(self, steps: int) -> "DAVIS":
        """Use `steps` sampling steps (DDIM or Euler); the record's model identity changes with it."""
        if int(steps) < 1:
            raise ValueError(f"davis: steps must be >= 1, got {steps}")
        self.separator.set_steps(int(steps))
        return self

    def describe(self) -> dict:
        config = self.separator.config
        return {
            **super().describe(),
            "configuration": self.configuration,
            "objective": config.objective,
            "steps": config.steps,
            "sample_rate": self.sample_rate,
            "checkpoint_files": dict(self.checkpoint_files),
        }
