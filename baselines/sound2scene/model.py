"""Sound2Scene (Sung-Bin et al., CVPR 2023) as an avbench model.

Audio -> Sound2Scene's log-spectrogram -> ResNet-18 audio encoder (512 -> 2048,
ReLU) -> L2-normalised embedding, used as the instance feature of an IC-GAN
BigGAN generator with z ~ N(0, 1) (Sung-Bin et al., CVPR 2023; kaist-ami/Sound2Scene). One image per clip: a
mixture gets the single embedding of the whole mixture, which is exactly the
mixed-audio gap that AV-GAS addresses.

Configurations:
  paper  the published architecture. `--checkpoint DIR` with the official
         files from the Sound2Scene README: `sound2scene.pth` (audio encoder)
         and the IC-GAN directory `icgan_biggan_imagenet_res128/`
         (`G_ema_best*.pth`, and `state_dict_best0/1.pth`, whose stored config
         and best FID choose the generator exactly as IC-GAN's loader does:
         the strictly lower `best_FID`, best0 on a tie). The IC-GAN state files
         hold `torch.nn.ReLU` objects and a numpy scalar; they are read with
         torch.load(weights_only=True) and an allow-list of exactly those
         classes. Either weights file may be given as .safetensors instead.
         Output: 128 x 128.
  synth  the same families at small scale (baselines/common/synth_scale.py),
         trained on the embedded synthetic world by
         `python -m avbench.baselines.sound2scene.train`; shipped, sha256-pinned, and the
         default on synthetic suites. Output: 64 x 64.
`--checkpoint FILE` takes one file holding both `audnet.*` and `generator.*`:
an avbench-format safetensors file (written by `checkpoint_io.save_weights`,
its metadata holds the config) or a plain state dict, read as the paper config.

Model card. The paper configuration loads the official checkpoint and
reproduces the official outputs on recorded cases (`avbench conformance
sound2scene`, README "Conformance"): spectrogram, embedding, z, the generator's
tanh output and the saved PNG pixels. Where the protocol deliberately differs
from the official test.py, the official behaviour is an option
(`Sound2SceneOptions`, set on `model.options`):
  * tiling (`tiling`): avbench repeats a clip until 10 s are filled, so every
    clip gives a 257 x 1004 spectrogram; test.py tiles exactly 10 times, so a
    clip under 1 s gives a shorter one ("official"). Clips of 1 s or more are
    identical either way. Conformance runs with "official".
  * images (`image_scaling`): the paper default is the official
    visualisation, each image rescaled by its own min and max and truncated to
    uint8 ("minmax"); the synth configuration keeps the linear [-1, 1] ->
    0..255 mapping it was trained and scored with ("linear").
  * noise: test.py draws 8 images per clip from the global RNG; avbench draws
    one, z ~ N(0, 1) from the item's own seeded generator (the same draw as
    `torch.manual_seed(seed); torch.empty(8, 120).normal_()`, row 0).
  * spectrogram precision: test.py computes it in float64 numpy; avbench in
    float32 torch (within 1e-4 of it); conformance computes it in float64.
Caveats of the synth configuration: Sound2Scene aligns audio to a frozen SwAV
ResNet-50; the synth configuration aligns to its own small image encoder
trained on world images (common/image_stage.py), never to the clip-synth
evaluator, so evaluation is not circular. Its generator is trained by
regression, not as a GAN, so it draws the mean image of a feature and z
barely matters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from avbench.checkpoints import bounded_int, file_sha256, load_checked, load_state_dict, map_keys
from avbench.errors import CheckpointError
from avbench.models.base import Batch, Model

from ..common.audio_resnet import PAPER_AUDIO_RESNET, AudioResNet, AudioResNetConfig
from ..common.biggan import DROPPED_OFFICIAL_KEYS, PAPER_GENERATOR, BigGANGenerator, GeneratorConfig
from ..common.checkpoint_io import architecture_value, one_file, single_file_config
from ..common.generation import item_noise, minmax_to_uint8, to_uint8
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


OFFICIAL_TILE_REPEATS = 10  # test.py:122 np.tile(samples, 10)
OFFICIAL_IMAGES_PER_CLIP = 8  # test.py:99
OFFICIAL_Z_VAR = 1.0


@dataclass(frozen=True)
class Sound2SceneOptions:
    """Front- and back-end choices; the official test.py behaviour of each is selectable (see the model card)."""

    tiling: str = "fill"  # "fill": repeat to 10 s (avbench); "official": exactly 10 repeats (test.py)
    image_scaling: str = "minmax"  # "minmax": official per-image min-max + truncation; "linear": [-1, 1] -> 0..255

    def __post_init__(self):
        if self.tiling not in ("fill", "official"):
            raise ValueError(f"tiling must be 'fill' or 'official', not {self.tiling!r}")
        if self.image_scaling not in ("minmax", "linear"):
            raise ValueError(f"image_scaling must be 'minmax' or 'linear', not {self.image_scaling!r}")

    @property
    def repeats(self) -> int | None:
        return OFFICIAL_TILE_REPEATS if self.tiling == "official" else None


PAPER_OPTIONS = Sound2SceneOptions()
SYNTH_OPTIONS = Sound2SceneOptions(image_scaling="linear")
OFFICIAL_OPTIONS = Sound2SceneOptions(tiling="official", image_scaling="minmax")


@dataclass(frozen=True)
class Sound2SceneConfig:
    spectrogram: SpectrogramConfig
    audio: AudioResNetConfig
    generator: GeneratorConfig


PAPER = Sound2SceneConfig(PAPER_SPECTROGRAM, PAPER_AUDIO_RESNET, PAPER_GENERATOR)
SYNTH = Sound2SceneConfig(SYNTH_SPECTROGRAM, SYNTH_AUDIO_RESNET, SYNTH_GENERATOR)
NESTED = {"spectrogram": SpectrogramConfig, "audio": AudioResNetConfig, "generator": GeneratorConfig}
# Sizes a single-file checkpoint's metadata config may ask for (the paper's are well inside).
SIZE_LIMITS = {
    "spectrogram.sample_rate": (1000, 192_000),
    "spectrogram.clip_samples": (512, 16_000 * 60),
    "spectrogram.nperseg": (8, 8192),
    "spectrogram.noverlap": (0, 8191),
    "audio.widths": (1, 1024),
    "audio.blocks": (1, 8),
    "audio.out_dim": (1, 8192),
    "generator.resolution": (32, 128),
    "generator.ch": (1, 128),
    "generator.dim_z": (6, 256),
    "generator.feature_dim": (1, 8192),
    "generator.shared_dim_feat": (1, 2048),
    "generator.attention": (0, 128),
    "generator.bottom_width": (1, 16),
}


class Sound2SceneNet(nn.Module):
    """Parameters: `audnet.*` (the official AVENet names) and `generator.*` (BigGAN names)."""

    def __init__(self, config: Sound2SceneConfig):
        super().__init__()
        self.config = config
        self.spectrogram = LogSpectrogram(config.spectrogram)
        self.audnet = AudioResNet(config.audio)
        self.generator = BigGANGenerator(config.generator)

    def embed(self, audio: torch.Tensor, repeats: int | None = None) -> torch.Tensor:
        """float [B, T] at 16 kHz -> L2-normalised embedding [B, feature_dim]."""
        return F.normalize(self.audnet(self.spectrogram(audio, repeats))[0], dim=1)


def audio_config_from_architecture(architecture: Mapping) -> AudioResNetConfig:
    """The audio ResNet-18 of an architecture JSON (`audio_encoder`: stem_width, stage_widths), bounded."""
    where = "architecture config 'audio_encoder'"
    section = architecture.get("audio_encoder")
    stem = bounded_int({"stem_width": architecture_value(section, "stem_width", where)}, "stem_width", 1, 512, where)
    stages = architecture_value(section, "stage_widths", where)
    if not isinstance(stages, list) or len(stages) != 4:
        raise CheckpointError(f"{where}: 'stage_widths' must list 4 widths, got {stages!r}")
    widths = tuple(bounded_int({"stage_widths": w}, "stage_widths", 1, 1024, where) for w in stages)
    if stem != widths[0]:
        raise CheckpointError(
            f"{where}: stem_width {stem} differs from the first stage width {widths[0]}; "
            "the official ResNet-18 has them equal"
        )
    unchanged = section.get("unchanged", {}) if isinstance(section, Mapping) else {}
    out_dim = bounded_int(unchanged if isinstance(unchanged, Mapping) else {}, "n_classes", 1, 8192, where, 2048)
    return AudioResNetConfig(widths=widths, blocks=PAPER_AUDIO_RESNET.blocks, out_dim=out_dim)


def check_generator_architecture(architecture: Mapping, config: GeneratorConfig) -> None:
    """The generator is built from the IC-GAN file's own config; an architecture JSON may only confirm it."""
    section = architecture.get("generator")
    if section is None:
        return
    where = "architecture config 'generator'"
    for name, actual in (("G_ch", config.ch), ("shared_dim_feat", config.shared_dim_feat)):
        try:
            wanted = architecture_value(section, name, where)
        except CheckpointError:
            continue
        if wanted != actual:
            raise CheckpointError(f"{where}: {name} {wanted!r} differs from the selected IC-GAN config's {actual!r}")


def official_audio_key(key: str) -> str:
    """`sound2scene.pth` is AVENet's state dict, whose names are ours: `audnet.conv1.weight`,
    `audnet.bn1.*`, `audnet.layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}.*`,
    `audnet.fc.weight` (2048 x 512), `audnet.fc.bias`. A DataParallel `module.` prefix is removed."""
    return key[len("module.") :] if key.startswith("module.") else key


def official_generator_key(key: str) -> str | None:
    """IC-GAN's `G_ema` names are ours under `generator.`; its unused class table is dropped."""
    return None if key in DROPPED_OFFICIAL_KEYS else f"generator.{key}"


def _split_keys(net: nn.Module, prefix: str) -> tuple[set[str], set[str]]:
    keys = set(net.state_dict())
    inside = {k for k in keys if k.startswith(prefix)}
    return inside, keys - inside


def load_official(directory: Path, architecture: Mapping | None = None) -> tuple[Sound2SceneNet, str, dict[str, str]]:
    """The net from the official files in `directory`, a combined sha256, and each file's sha256.

    `architecture` (conformance): reduced hyper-parameters of the audio encoder; the generator's come,
    as always, from the selected IC-GAN state file. None: the paper's audio encoder.
    """
    audio_path = one_file(directory, AUDIO_FILES, "Sound2Scene audio encoder (sound2scene.pth)")
    audio_config = PAPER_AUDIO_RESNET if architecture is None else audio_config_from_architecture(architecture)
    generator_path, generator_config = find_generator(directory)
    if architecture is not None:
        check_generator_architecture(architecture, generator_config)
    net = Sound2SceneNet(Sound2SceneConfig(PAPER_SPECTROGRAM, audio_config, generator_config))
    audio_keys, generator_keys = _split_keys(net, "audnet.")
    audio_state = map_keys(
        load_state_dict(audio_path), official_audio_key, audio_keys, f"{audio_path} (Sound2Scene audio encoder)"
    )
    generator_state = map_keys(
        load_state_dict(generator_path), official_generator_key, generator_keys, f"{generator_path} (IC-GAN generator)"
    )
    load_checked(net, {**audio_state, **generator_state}, str(directory))
    files = {audio_path.name: file_sha256(audio_path), generator_path.name: file_sha256(generator_path)}
    combined = hashlib.sha256(
        "".join(f"{name}:{digest}\n" for name, digest in sorted(files.items())).encode()
    ).hexdigest()
    return net, combined, files


def load_single_file(path: Path, expected_sha256: str | None = None) -> tuple[Sound2SceneNet, str]:
    """The net from one file holding `audnet.*` and `generator.*`: an avbench-format safetensors
    checkpoint (its metadata holds the config) or a plain state dict (paper config)."""
    state = load_state_dict(path, expected_sha256=expected_sha256)  # hash first: nothing of a bad file is read
    config = single_file_config(path, NAME, Sound2SceneConfig, NESTED, PAPER, SIZE_LIMITS)
    if not any(key.startswith("generator.") for key in state):
        raise CheckpointError(
            f"{path} holds no 'generator.*' weights; if it is the audio encoder alone, {OFFICIAL_HELP}"
        )
    net = Sound2SceneNet(config)
    net.load_state_dict(map_keys(state, official_audio_key, set(net.state_dict()), str(path)))
    return net, expected_sha256 or file_sha256(path)


class Sound2Scene(Model):
    name = NAME
    version = "1"
    tasks = frozenset({"generate"})
    sample_rate = 16000
    conformance_inputs: ClassVar[frozenset[str]] = frozenset({"waveform"})
    # The fixture README's suggested acceptance (tiny/README.md "Observed tolerance"), nothing looser.
    conformance_tolerances: ClassVar[Mapping[str, float]] = {
        "spectrogram": 1e-4,
        "embedding": 1e-5,
        "embedding_normalized": 1e-6,
        "z": 0.0,
        "image_raw": 1e-4,
        "image_uint8": 1,  # pixel levels; on at most 0.1 % of the pixels
    }

    def __init__(
        self,
        net: Sound2SceneNet,
        device: str | torch.device = "cpu",
        checkpoint_sha256: str | None = None,
        files: dict[str, str] | None = None,
        options: Sound2SceneOptions = PAPER_OPTIONS,
    ):
        super().__init__(device)
        self.net = net.to(self.device).eval()
        self.checkpoint_sha256 = checkpoint_sha256
        self.files = files or {}
        self.options = options

    @classmethod
    def from_checkpoint(
        cls, path=None, *, device: str = "cpu", suite=None, architecture: dict | None = None
    ) -> "Sound2Scene":
        if architecture is not None and (path is None or not Path(path).is_dir()):
            raise CheckpointError(
                f"{NAME}: an architecture config applies to the official checkpoint folder only; {OFFICIAL_HELP}"
            )
        if path is None:
            if suite is None or suite.data != "synth":
                where = f"suite {suite.name!r}" if suite is not None else "a real suite"
                raise CheckpointError(
                    f"{NAME} ships weights only for the synthetic suites; for {where} {OFFICIAL_HELP}"
                )
            net, digest = load_single_file(SYNTH_WEIGHTS, SYNTH_WEIGHTS_SHA256)
            return cls(net, device, digest, {SYNTH_WEIGHTS.name: digest}, SYNTH_OPTIONS)
        path = Path(path)
        if path.is_dir():
            net, digest, files = load_official(path, architecture)
            return cls(net, device, digest, files, PAPER_OPTIONS)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist; {OFFICIAL_HELP}")
        net, digest = load_single_file(path)
        return cls(net, device, digest, {path.name: digest}, SYNTH_OPTIONS if net.config == SYNTH else PAPER_OPTIONS)

    def images(self, raw: torch.Tensor) -> list:
        """Generator output [B, 3, H, W] in [-1, 1] -> uint8 images, by `options.image_scaling`."""
        if self.options.image_scaling == "minmax":
            return list(minmax_to_uint8(raw).cpu().numpy())
        return to_uint8(raw)

    @torch.inference_mode()
    def generate(self, batch: Batch) -> list:
        features = self.net.embed(batch.audio.to(self.device), self.options.repeats)
        z = item_noise(batch, self.net.generator.dim_z, [1] * len(batch), self.device)
        return self.images(self.net.generator(z, features))

    @torch.inference_mode()
    def conformance(self, cases: Mapping[str, torch.Tensor], meta: Mapping) -> dict[str, torch.Tensor]:
        """Every stage of test.py's `generate_images`, with the official options (tiling x10, min-max
        images, float64 spectrogram). Each stage is fed the recorded input of that stage, so a
        mismatch points at one stage; z is drawn here from the recorded seed."""
        net, device = self.net, self.device
        seeds = {case["name"]: case["torch_seed_for_z"] for case in meta.get("cases", []) if "torch_seed_for_z" in case}
        names = sorted(key[: -len(".waveform")] for key in cases if key.endswith(".waveform"))
        out: dict[str, torch.Tensor] = {}
        for name in names:

            def given(key: str, _name: str = name) -> torch.Tensor | None:
                value = cases.get(f"{_name}.{key}")
                return None if value is None else value.to(device)

            wave = given("waveform").double()[None]
            out[f"{name}.spectrogram"] = net.spectrogram(wave, OFFICIAL_TILE_REPEATS, torch.float64)[0, 0].float()
            spectrogram = given("spectrogram")
            if spectrogram is None:
                spectrogram = out[f"{name}.spectrogram"].to(device)
            embedding = net.audnet(spectrogram.float()[None, None])[0][0]
            out[f"{name}.embedding"] = embedding
            official_embedding = given("embedding")
            embedding = embedding if official_embedding is None else official_embedding
            normalized = embedding / torch.linalg.vector_norm(embedding, dim=-1, keepdim=True)
            out[f"{name}.embedding_normalized"] = normalized
            if name in seeds:
                generator = torch.Generator().manual_seed(int(seeds[name]))
                z = torch.randn(OFFICIAL_IMAGES_PER_CLIP, net.generator.dim_z, generator=generator) * OFFICIAL_Z_VAR
                out[f"{name}.z"] = z
            official_z, official_normalized = given("z"), given("embedding_normalized")
            z = official_z if official_z is not None else out.get(f"{name}.z")
            if z is None:
                continue
            feature = (normalized if official_normalized is None else official_normalized).expand(z.shape[0], -1)
            raw = net.generator(z.to(device), feature)
            out[f"{name}.image_raw"] = raw
            out[f"{name}.image_uint8"] = minmax_to_uint8(raw)
        return out

    def describe(self) -> dict:
        return {
            **super().describe(),
            "files": dict(self.files),
            "resolution": self.net.config.generator.resolution,
            "options": {"tiling": self.options.tiling, "image_scaling": self.options.image_scaling},
        }
