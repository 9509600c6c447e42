"""`macs`: multi-source audio -> image via separated, significance-ordered slots.

On synthetic suites (`suite.data == "synth"`) it loads the miniature MACS
trained by `python -m baselines.macs.train` (shipped, pinned by sha256). On
real suites it needs MACS's released files and Stable Diffusion v1.4 in a
checkpoint folder, plus the optional dependencies `avbench[macs]` (paper.py);
importing this module never imports them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from avbench.checkpoints import file_sha256, load_state_dict, map_keys
from avbench.errors import CheckpointError
from avbench.models.base import Batch, Model

from .generator import to_uint8
from .synth import SynthConfig, SynthMACS

WEIGHTS_DIR = Path(__file__).with_name("weights")
SYNTH_FILE = "macs_synth.safetensors"
SYNTH_SHA256 = "ad9f55c465522ab73e3d85954c99319c693527e758804dcc9031fc506f5741ea"
SYNTH_CONFIG = SynthConfig()


def fit_length(audio: torch.Tensor, samples: int) -> torch.Tensor:
    """Tile short audio; keep the first `samples` of long audio (MACS crops at random; avbench stays deterministic)."""
    if audio.shape[-1] < samples:
        audio = audio.repeat(1, -(-samples // audio.shape[-1]))
    return audio[:, :samples]


def combined_sha256(hashes: dict[str, str]) -> str:
    """One identity for a multi-file checkpoint: sha256 over sorted 'name:sha256' lines."""
    return hashlib.sha256("".join(f"{n}:{h}\n" for n, h in sorted(hashes.items())).encode("utf-8")).hexdigest()


def load_synth(path: str | Path, expected_sha256: str | None) -> SynthMACS:
    """The miniature MACS from avbench's safetensors layout (separator, embedder, mlp, generator)."""
    state = load_state_dict(path, expected_sha256=expected_sha256)
    model = SynthMACS(SYNTH_CONFIG)
    model.load_state_dict(map_keys(state, lambda k: k, set(model.state_dict()), f"macs weights {path}"), strict=True)
    return model.eval()


class MACS(Model):
    name: ClassVar[str] = "macs"
    version: ClassVar[str] = "1"
    tasks: ClassVar[frozenset[str]] = frozenset({"generate"})
    sample_rate: ClassVar[int] = 16000

    def __init__(self, *, device="cpu", synth: SynthMACS | None = None, paper=None):
        super().__init__(device=device)
        if (synth is None) == (paper is None):
            raise ValueError("MACS needs exactly one of a synthetic-world model or the paper pipeline")
        self.synth = synth.to(self.device).eval() if synth is not None else None
        self.paper = paper
        self.configuration = "synth" if synth is not None else "paper"
        self.checkpoint_files: dict[str, str] = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, device: str = "cpu", suite=None) -> "MACS":
        if path is None:
            if suite is not None and suite.data != "synth":
                raise CheckpointError(
                    f"macs has no shipped weights for real-data suite {suite.name!r}: pass --checkpoint FOLDER holding MACS's "
                    "separator_FSD50K_full.pt, {Dataset}_mlp.pt, {Dataset}_unet.pt (Hugging Face alxzzz/MACS) and "
                    "stable-diffusion-v1-4/, and install the optional dependencies: pip install 'avbench[macs]'"
                )
            model = cls(device=device, synth=load_synth(WEIGHTS_DIR / SYNTH_FILE, SYNTH_SHA256))
            model.checkpoint_sha256 = SYNTH_SHA256
            return model
        path = Path(path)
        if path.suffix == ".safetensors":  # a model trained by baselines.macs.train
            model = cls(device=device, synth=load_synth(path, None))
            model.checkpoint_sha256 = file_sha256(path)
            return model
        from .paper import PaperMACS, require_paper_dependencies

        require_paper_dependencies()
        paper = PaperMACS(path, None, torch.device(device))
        model = cls(device=device, paper=paper)
        model.checkpoint_files = dict(paper.hashes)
        model.checkpoint_sha256 = combined_sha256(paper.hashes)
        return model

    def generate(self, batch: Batch) -> list[np.ndarray]:
        """Paper: SD sampling from each item's seeded latent. Synth: deterministic given the audio (generator.py)."""
        audio = batch.audio.to(self.device, torch.float32)
        if self.paper is not None:
            from .paper import PAPER_SEPARATOR

            generators = [batch.generator(i) for i in range(len(batch))]
            return self.paper.generate(fit_length(audio, PAPER_SEPARATOR.samples), generators)
        with torch.no_grad():
            embeddings = self.synth.slot_embeddings(fit_length(audio, self.synth.config.separator.samples))
            return to_uint8(self.synth.images(embeddings))

    def describe(self) -> dict:
        return {**super().describe(), "configuration": self.configuration, "checkpoint_files": dict(self.checkpoint_files)}
