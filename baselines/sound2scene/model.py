"""Sound2Scene (Sung-Bin et al., CVPR 2023) as an avbench model.

Audio -> Sound2Scene's log-spectrogram -> ResNet-18 audio encoder (512 -> 2048,
ReLU) -> L2-normalised embedding, used as the instance feature of an IC-GAN
BigGAN generator with z ~ N(0, 1) (papers.md 2.3-2.4). One image per clip: a
mixture gets the single embedding of the whole mixture, which is exactly the
mixed-audio gap that AV-GAS addresses.

Configurations:
  paper  the published architecture. `--checkpoint DIR` with the official
         files from the Sound2Scene README: `sound2scene.pth` (audio encoder)
         and the IC-GAN directory `icgan_biggan_imagenet_res128/`
         (`G_ema_best*.pth`, and `state_dict_best*.pth` whose stored config and
         best FID choose the generator, as IC-GAN's loader does). Either file may
         be given as .safetensors instead. Output: 128 x 128.
  synth  the same families at small scale (baselines/common/synth_scale.py),
         trained on the embedded synthetic world by
         `python -m baselines.sound2scene.train`; shipped, sha256-pinned, and the
         default on synthetic suites. Output: 64 x 64.
`--checkpoint FILE` takes one file holding both `audnet.*` and `generator.*`:
an avbench-format safetensors file (written by `checkpoint_io.save_weights`,
its metadata holds the config) or a plain state dict, read as the paper config.

Caveats. Sound2Scene aligns audio to a frozen SwAV ResNet-50; the synth
configuration aligns to its own small image encoder trained on world images
(common/image_stage.py), never to the clip-synth evaluator, so evaluation is
not circular. Its generator is trained by regression, not as a GAN, so it
draws the mean image of a feature and z barely matters. Images are the
generator's tanh output mapped linearly to 0..255 (the official visualisation
rescales each image by its own min and max instead).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from avbench.checkpoints import file_sha256, load_state_dict, map_keys
from avbench.errors import CheckpointError
from avbench.models.base import Batch, Model

from ..common.audio_resnet import PAPER_AUDIO_RESNET, AudioResNet, AudioResNetConfig
from ..common.biggan import DROPPED_OFFICIAL_KEYS, PAPER_GENERATOR, BigGANGenerator, GeneratorConfig
from ..common.checkpoint_io import one_file, single_file_config
from ..common.generation import item_noise, to_uint8
from ..common.icgan import find_generator
from ..common.spectrogram import PAPER_SPECTROGRAM, LogSpectrogram, SpectrogramConfig
from ..common.synth_scale import SYNTH_AUDIO_RESNET, SYNTH_GENERATOR, SYNTH_SPECTROGRAM

NAME = "sound2scene"
SYNTH_WEIGHTS = Path(__file__).with_name("weights") / "sound2scene_synth.safetensors"
SYNTH_WEIGHTS_SHA256 = "7b2cf69fe2980afc6b439c0283dd62adec6918192b605b9a389a7e445da37834"
AUDIO_FILES = ("sound2scene.pth", "sound2scene.safetensors")
OFFICIAL_HELP = (
    "pass --checkpoint DIR, where DIR holds the official files linked from the Sound2Scene README "
    "(github.com/kaist-ami/Sound2Scene): sound2scene.pth (audio encoder) and the folder "
    "icgan_biggan_imagenet_res128/ with G_ema_best*.pth and state_dict_best*.pth"
)


@dataclass(frozen=True)
class Sound2SceneConfig:
    spectrogram: SpectrogramConfig
    audio: AudioResNetConfig
    generator: GeneratorConfig


PAPER = Sound2SceneConfig(PAPER_SPECTROGRAM, PAPER_AUDIO_RESNET, PAPER_GENERATOR)
SYNTH = Sound2SceneConfig(SYNTH_SPECTROGRAM, SYNTH_AUDIO_RESNET, SYNTH_GENERATOR)
NESTED = {"spectrogram": SpectrogramConfig, "audio": AudioResNetConfig, "generator": GeneratorConfig}


class Sound2SceneNet(nn.Module):
    """Parameters: `audnet.*` (the official AVENet names) and `generator.*` (BigGAN names)."""

    def __init__(self, config: Sound2SceneConfig):
        super().__init__()
        self.config = config
        self.spectrogram = LogSpectrogram(config.spectrogram)
        self.audnet = AudioResNet(config.audio)
        self.generator = BigGANGenerator(config.generator)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """float [B, T] at 16 kHz -> L2-normalised embedding [B, feature_dim]."""
        return F.normalize(self.audnet(self.spectrogram(audio))[0], dim=1)


def official_audio_key(key: str) -> str:
    """`sound2scene.pth` is AVENet's state dict, whose names are ours: `audnet.conv1.weight`,
    `audnet.bn1.*`, `audnet.layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}.*`,
    `audnet.fc.weight` (2048 x 512), `audnet.fc.bias`. A DataParallel `module.` prefix is removed."""
    return key[len("module."):] if key.startswith("module.") else key


def official_generator_key(key: str) -> str | None:
    """IC-GAN's `G_ema` names are ours under `generator.`; its unused class table is dropped."""
    return None if key in DROPPED_OFFICIAL_KEYS else f"generator.{key}"


def _split_keys(net: nn.Module, prefix: str) -> tuple[set[str], set[str]]:
    keys = set(net.state_dict())
    inside = {k for k in keys if k.startswith(prefix)}
    return inside, keys - inside


def load_official(directory: Path) -> tuple[Sound2SceneNet, str, dict[str, str]]:
    """The net from the official files in `directory`, a combined sha256, and each file's sha256."""
    audio_path = one_file(directory, AUDIO_FILES, "Sound2Scene audio encoder (sound2scene.pth)")
    generator_path, generator_config = find_generator(directory)
    net = Sound2SceneNet(Sound2SceneConfig(PAPER_SPECTROGRAM, PAPER_AUDIO_RESNET, generator_config))
    audio_keys, generator_keys = _split_keys(net, "audnet.")
    state = map_keys(load_state_dict(audio_path), official_audio_key, audio_keys, f"{audio_path} (Sound2Scene audio encoder)")
    state.update(map_keys(load_state_dict(generator_path), official_generator_key, generator_keys, f"{generator_path} (IC-GAN generator)"))
    net.load_state_dict(state)
    files = {audio_path.name: file_sha256(audio_path), generator_path.name: file_sha256(generator_path)}
    combined = hashlib.sha256("".join(f"{name}:{digest}\n" for name, digest in sorted(files.items())).encode()).hexdigest()
    return net, combined, files


def load_single_file(path: Path, expected_sha256: str | None = None) -> tuple[Sound2SceneNet, str]:
    """The net from one file holding `audnet.*` and `generator.*`: an avbench-format safetensors
    checkpoint (its metadata holds the config) or a plain state dict (paper config)."""
    state = load_state_dict(path, expected_sha256=expected_sha256)  # hash first: nothing of a bad file is read
    config = single_file_config(path, NAME, Sound2SceneConfig, NESTED, PAPER)
    if not any(key.startswith("generator.") for key in state):
        raise CheckpointError(f"{path} holds no 'generator.*' weights; if it is the audio encoder alone, {OFFICIAL_HELP}")
    net = Sound2SceneNet(config)
    net.load_state_dict(map_keys(state, official_audio_key, set(net.state_dict()), str(path)))
    return net, expected_sha256 or file_sha256(path)


class Sound2Scene(Model):
    name = NAME
    version = "1"
    tasks = frozenset({"generate"})
    sample_rate = 16000

    def __init__(self, net: Sound2SceneNet, device: str | torch.device = "cpu", checkpoint_sha256: str | None = None,
                 files: dict[str, str] | None = None):
        super().__init__(device)
        self.net = net.to(self.device).eval()
        self.checkpoint_sha256 = checkpoint_sha256
        self.files = files or {}

    @classmethod
    def from_checkpoint(cls, path=None, *, device: str = "cpu", suite=None) -> "Sound2Scene":
        if path is None:
            if suite is None or suite.data != "synth":
                where = f"suite {suite.name!r}" if suite is not None else "a real suite"
                raise CheckpointError(f"{NAME} ships weights only for the synthetic suites; for {where} {OFFICIAL_HELP}")
            net, digest = load_single_file(SYNTH_WEIGHTS, SYNTH_WEIGHTS_SHA256)
            return cls(net, device, digest, {SYNTH_WEIGHTS.name: digest})
        path = Path(path)
        if path.is_dir():
            net, digest, files = load_official(path)
            return cls(net, device, digest, files)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist; {OFFICIAL_HELP}")
        net, digest = load_single_file(path)
        return cls(net, device, digest, {path.name: digest})

    @torch.inference_mode()
    def generate(self, batch: Batch) -> list:
        features = self.net.embed(batch.audio.to(self.device))
        z = item_noise(batch, self.net.generator.dim_z, [1] * len(batch), self.device)
        return to_uint8(self.net.generator(z, features))

    def describe(self) -> dict:
        return {**super().describe(), "files": dict(self.files), "resolution": self.net.config.generator.resolution}
