"""AV-GAS (Kang & Brandao, arXiv 2504.18283) as an avbench model.

No official code or checkpoint of AV-GAS exists (Kang and Brandão, arXiv 2504.18283: no code or weights
were released). This module is avbench's reading of the paper's description: an audio-visual separator
with a ResNet-18 backbone maps mixed audio to one feature per class present
(K slots), trained with InfoNCE against the ground-truth per-source audio
embeddings (A2A) and image embeddings (A2V); a BigGAN-based generator of
Sound2Scene's design renders them. Here the separator is the Sound2Scene
audio trunk (global-pooled ResNet) followed by one MLP head per slot:
  generate_per_source  one image per slot; slots are unordered, the suite's
                       metric matches them to classes (Hungarian). An item with
                       fewer sources than slots uses the first slots; more is an error.
  generate             one scene holding every class: the K slot images,
                       each shrunk by K, side by side on one canvas. How AV-GAS
                       renders its single multi-class image is not public; this
                       is the reading that keeps the generator a single-object
                       decoder, as the BigGAN it uses is.

Configurations:
  paper  ResNet-18 trunk on the 257 x 1004 Sound2Scene spectrogram, K = 2
         slots of 2048-d (SwAV's feature size), IC-GAN BigGAN 128 generator.
         There are no official weights: pass an avbench-format checkpoint
         (one file with `separator.*` and `generator.*` keys; safetensors whose
         metadata holds the config, or a plain state dict read as the paper config).
  synth  the same families at small scale (baselines/common/synth_scale.py),
         trained by `python -m avbench.baselines.avgas.train` on two-class world
         mixtures; shipped, sha256-pinned, the default on synthetic suites. It
         reuses the synthetic Sound2Scene's frozen image encoder and generator
         (both systems decode with the same pre-trained generator) and its audio
         encoder as the A2A target and the trunk's initialisation.

Caveats. The training targets come from the baselines' own image encoder, never
from the clip-synth evaluator. The synthetic generator is trained by
regression, not as a GAN (see common/image_stage.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from avbench.checkpoints import file_sha256, load_state_dict, map_keys
from avbench.errors import CheckpointError
from avbench.models.base import Batch, Model

from ..common.audio_resnet import PAPER_AUDIO_RESNET, AudioResNet, AudioResNetConfig
from ..common.biggan import PAPER_GENERATOR, BigGANGenerator, GeneratorConfig
from ..common.checkpoint_io import single_file_config
from ..common.generation import item_noise, side_by_side, to_uint8
from ..common.spectrogram import PAPER_SPECTROGRAM, LogSpectrogram, SpectrogramConfig
from ..common.synth_scale import FEATURE_DIM, SYNTH_AUDIO_RESNET, SYNTH_GENERATOR, SYNTH_SPECTROGRAM
from ..sound2scene.model import SIZE_LIMITS as SOUND2SCENE_LIMITS

NAME = "avgas"
SYNTH_WEIGHTS = Path(__file__).with_name("weights") / "avgas_synth.safetensors"
SYNTH_WEIGHTS_SHA256 = "84928c7d64b3fdfeb4df93a87c80bfcaec3ac1427a103eee719254102007c63d"
NO_OFFICIAL = (
    "AV-GAS has no official checkpoint (Kang and Brandão, arXiv 2504.18283, released no code or weights); "
    "pass --checkpoint FILE with an avbench-format checkpoint holding 'separator.*' and 'generator.*' weights"
)


@dataclass(frozen=True)
class SeparatorConfig:
    trunk: AudioResNetConfig  # its `out_dim` is ignored: the heads read the pooled feature
    slots: int
    hidden: int
    feature_dim: int


@dataclass(frozen=True)
class AVGASConfig:
    spectrogram: SpectrogramConfig
    separator: SeparatorConfig
    generator: GeneratorConfig


PAPER = AVGASConfig(
    PAPER_SPECTROGRAM, SeparatorConfig(PAPER_AUDIO_RESNET, 2, 512, PAPER_GENERATOR.feature_dim), PAPER_GENERATOR
)
SYNTH = AVGASConfig(SYNTH_SPECTROGRAM, SeparatorConfig(SYNTH_AUDIO_RESNET, 2, 256, FEATURE_DIM), SYNTH_GENERATOR)
NESTED = {
    "spectrogram": SpectrogramConfig,
    "separator": (SeparatorConfig, {"trunk": AudioResNetConfig}),
    "generator": GeneratorConfig,
}
# Sizes a checkpoint's metadata config may ask for: Sound2Scene's for the shared families, and the separator's own.
SIZE_LIMITS = {
    **{key: bounds for key, bounds in SOUND2SCENE_LIMITS.items() if key.startswith(("spectrogram.", "generator."))},
    **{
        key.replace("audio.", "separator.trunk."): bounds
        for key, bounds in SOUND2SCENE_LIMITS.items()
        if key.startswith("audio.")
    },
    "separator.slots": (1, 16),
    "separator.hidden": (1, 8192),
    "separator.feature_dim": (1, 8192),
}


def _head(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_out))


class Separator(nn.Module):
    """Spectrogram [B, 1, F, T] -> slot features [B, K, D], not normalised."""

    def __init__(self, config: SeparatorConfig):
        super().__init__()
        self.trunk = AudioResNet(replace(config.trunk, out_dim=None))
        width = self.trunk.pooled_dim
        self.slot_heads = nn.ModuleList(_head(width, config.hidden, config.feature_dim) for _ in range(config.slots))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        pooled = self.trunk(spec)[1]
        return torch.stack([head(pooled) for head in self.slot_heads], dim=1)


class AVGASNet(nn.Module):
    def __init__(self, config: AVGASConfig):
        super().__init__()
        self.config = config
        self.spectrogram = LogSpectrogram(config.spectrogram)
        self.separator = Separator(config.separator)
        self.generator = BigGANGenerator(config.generator)

    def slots(self, audio: torch.Tensor) -> torch.Tensor:
        """float [B, T] at 16 kHz -> L2-normalised slot features [B, K, D]."""
        return F.normalize(self.separator(self.spectrogram(audio)), dim=-1)


def checked_shapes(config: AVGASConfig, state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a config that does not fit the file's tensors, before anything real is allocated.

    The network is built on the meta device, which allocates nothing, and its
    shapes are compared with the file's; sizes were bounded when the config was read.
    """
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in AVGASNet(config).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as exc:
        raise CheckpointError(
            f"{path}: its config does not describe an AV-GAS network ({type(exc).__name__}: {exc})"
        ) from None
    map_keys(state, lambda key: key, set(expected), f"{path} (AV-GAS checkpoint)")
    wrong = [
        f"{key} is {tuple(value.shape)}, the config needs {expected[key]}"
        for key, value in state.items()
        if tuple(value.shape) != expected[key]
    ]
    if wrong:
        raise CheckpointError(f"{path}: {len(wrong)} tensor(s) do not fit the config, first: {wrong[0]}")


def load_file(path: Path, expected_sha256: str | None = None) -> tuple[AVGASNet, str]:
    state = load_state_dict(path, expected_sha256=expected_sha256)  # hash first: nothing of a bad file is read
    config = single_file_config(path, NAME, AVGASConfig, NESTED, PAPER, SIZE_LIMITS)
    checked_shapes(config, state, path)
    net = AVGASNet(config)
    net.load_state_dict(state)
    return net, expected_sha256 or file_sha256(path)


class AVGAS(Model):
    name = NAME
    version = "1"
    tasks = frozenset({"generate", "generate_per_source"})
    sample_rate = 16000

    def __init__(
        self,
        net: AVGASNet,
        device: str | torch.device = "cpu",
        checkpoint_sha256: str | None = None,
        file_name: str | None = None,
    ):
        super().__init__(device)
        self.net = net.to(self.device).eval()
        self.checkpoint_sha256 = checkpoint_sha256
        self.file_name = file_name

    @classmethod
    def from_checkpoint(cls, path=None, *, device: str = "cpu", suite=None) -> "AVGAS":
        if path is None:
            if suite is None or suite.data != "synth":
                where = f"suite {suite.name!r}" if suite is not None else "a real suite"
                raise CheckpointError(f"{NAME} ships weights only for the synthetic suites; for {where}: {NO_OFFICIAL}")
            net, digest = load_file(SYNTH_WEIGHTS, SYNTH_WEIGHTS_SHA256)
            return cls(net, device, digest, SYNTH_WEIGHTS.name)
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} is not a file; {NO_OFFICIAL}")
        net, digest = load_file(path)
        return cls(net, device, digest, path.name)

    def _render(self, batch: Batch, per_item: list[int]) -> list[torch.Tensor]:
        """Per item, the generator's images [n, 3, H, W] of its first n slots (each with its own z)."""
        slots = self.net.slots(batch.audio.to(self.device))
        features = torch.cat([slots[i, :n] for i, n in enumerate(per_item)])
        z = item_noise(batch, self.net.generator.dim_z, per_item, self.device)
        return list(self.net.generator(z, features).split(per_item))

    @torch.inference_mode()
    def generate(self, batch: Batch) -> list:
        slots = self.net.config.separator.slots
        scenes = [side_by_side(images) for images in self._render(batch, [slots] * len(batch))]
        return to_uint8(torch.stack(scenes))

    @torch.inference_mode()
    def generate_per_source(self, batch: Batch) -> list:
        slots = self.net.config.separator.slots
        too_many = [n for n in batch.num_sources if n > slots]
        if too_many:
            raise ValueError(f"{NAME} has {slots} slots but an item has {max(too_many)} sources")
        return [to_uint8(images) for images in self._render(batch, list(batch.num_sources))]

    def describe(self) -> dict:
        return {**super().describe(), "file": self.file_name, "resolution": self.net.config.generator.resolution}
