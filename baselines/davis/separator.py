"""One DAVIS separator: spectrogram front-end, frame network, U-Net and DDIM sampler.

`PAPER` is the official MUSIC model (WikiChao/DAVIS `scripts/run.sh` and the
literals of its code); `SYNTH` is the same code at a small size, trained by
`train.py` on avbench's synthetic world (16 kHz, 2 s clips, one still cue).
`from_architecture` reads the reduced hyper-parameters of a conformance
fixture's `config.json` (its "tiny" values), bounded before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avbench.errors import CheckpointError

from .sampling import Diffusion, DiffusionConfig
from .spectral import SpecConfig, Spectral
from .unet import AudioVisualNet, UNetConfig
from .visual import FrameConfig, FrameNet


@dataclass(frozen=True)
class DavisConfig:
    spec: SpecConfig
    unet: UNetConfig
    frame: FrameConfig
    diffusion: DiffusionConfig

    def with_steps(self, steps: int) -> "DavisConfig":
        return replace(self, diffusion=replace(self.diffusion, steps=int(steps)))


PAPER = DavisConfig(
    spec=SpecConfig(sample_rate=11025, n_fft=1022, hop=256, log_bins=256),
    unet=UNetConfig(),
    frame=FrameConfig(),
    diffusion=DiffusionConfig(),
)

SYNTH = DavisConfig(
    spec=SpecConfig(sample_rate=16000, n_fft=1022, hop=512, log_bins=64),
    unet=UNetConfig(
        dim=8, dim_mults=(1, 2, 4), visual_dim=32, freq_bins=64, attn_heads=2, attn_dim_head=16, time_qk_dim=128
    ),
    # A still cue through identical frames gives identical frame features, so one frame is exact and cheapest.
    frame=FrameConfig(image_size=32, patch_size=8, width=64, layers=2, embed_dim=32, temporal_ff=64, num_frames=1),
    # pred_x0, the official sampler's other objective; one DDIM step is its x0 prediction, silence-masked.
    diffusion=DiffusionConfig(steps=1, objective="pred_x0"),
)

# Upper bounds on a configuration read from a file: checked before any module is built.
_BOUNDS = {
    "dim": 256,
    "visual_dim": 4096,
    "dim_mult": 32,
    "levels": 6,
    "embed_dim": 4096,
    "image_resolution": 1024,
    "vision_layers": 64,
    "vision_width": 4096,
    "vision_patch_size": 256,
    "d_model": 4096,
    "dim_feedforward": 16384,
    "num_frames": 64,
    "sampling_timesteps": 1000,
    "imgSize": 1024,
}


def _tiny(section: Mapping[str, Any], name: str, where: str) -> Any:
    """The "tiny" value of the entry whose key starts with `name` (keys carry a source citation after a space)."""
    for key, entry in section.items():
        if key.split(" ")[0] == name:
            if isinstance(entry, Mapping):
                if "tiny" not in entry:
                    raise CheckpointError(f"davis config: {where}.{key} has no 'tiny' value")
                return entry["tiny"]
            return entry
    raise CheckpointError(f"davis config: {where} lacks {name!r}")


def _bounded_int(value: Any, name: str, low: int = 1) -> int:
    high = _BOUNDS.get(name, 4096)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CheckpointError(f"davis config: {name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _section(parent: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    for key, entry in parent.items():
        if key.split(" ")[0] == name and isinstance(entry, Mapping):
            return entry
    raise CheckpointError(f"davis config: {where} lacks the section {name!r}")


def from_architecture(architecture: Mapping[str, Any]) -> DavisConfig:
    """PAPER with the reduced ("tiny") hyper-parameters of a fixture config.json; absurd sizes are refused."""
    if not isinstance(architecture, Mapping):
        raise CheckpointError("davis config: expected a JSON object")
    unet = _section(architecture, "unet", "config")
    frame = _section(architecture, "frame_net", "config")
    clip = _section(frame, "clip", "frame_net")
    temporal = _section(frame, "temporal_transformer", "frame_net")
    data = _section(architecture, "data", "config")
    diffusion = _section(architecture, "diffusion", "config")
    mults = _tiny(unet, "dim_mults", "unet")
    if not isinstance(mults, list) or not 1 <= len(mults) <= _BOUNDS["levels"]:
        raise CheckpointError(f"davis config: dim_mults must be 1..{_BOUNDS['levels']} integers, got {mults!r}")
    dim_mults = tuple(_bounded_int(m, "dim_mult") for m in mults)
    width = _bounded_int(_tiny(clip, "vision_width", "clip"), "vision_width")
    resolution = _bounded_int(_tiny(clip, "image_resolution", "clip"), "image_resolution")
    patch = _bounded_int(_tiny(clip, "vision_patch_size", "clip"), "vision_patch_size")
    image_size = _bounded_int(_tiny(data, "imgSize", "data"), "imgSize")
    if resolution % patch or image_size != resolution:
        raise CheckpointError(f"davis config: imgSize {image_size}, resolution {resolution}, patch {patch} disagree")
    d_model = _bounded_int(_tiny(temporal, "d_model", "temporal_transformer"), "d_model")
    embed_dim = _bounded_int(_tiny(clip, "embed_dim", "clip"), "embed_dim")
    visual_dim = _bounded_int(_tiny(unet, "visual_dim", "unet"), "visual_dim")
    if not d_model == embed_dim == visual_dim or d_model % PAPER.frame.temporal_heads:
        raise CheckpointError(
            f"davis config: d_model {d_model}, CLIP embed_dim {embed_dim} and U-Net visual_dim "
            f"{visual_dim} must agree and split into {PAPER.frame.temporal_heads} heads"
        )
    return replace(
        PAPER,
        unet=replace(
            PAPER.unet, dim=_bounded_int(_tiny(unet, "dim", "unet"), "dim"), dim_mults=dim_mults, visual_dim=visual_dim
        ),
        frame=replace(
            PAPER.frame,
            image_size=image_size,
            patch_size=patch,
            width=width,
            embed_dim=embed_dim,
            layers=_bounded_int(_tiny(clip, "vision_layers", "clip"), "vision_layers"),
            temporal_ff=_bounded_int(_tiny(temporal, "dim_feedforward", "temporal_transformer"), "dim_feedforward"),
            num_frames=_bounded_int(data.get("num_frames", PAPER.frame.num_frames), "num_frames"),
        ),
        diffusion=replace(
            PAPER.diffusion,
            steps=_bounded_int(_tiny(diffusion, "sampling_timesteps", "diffusion"), "sampling_timesteps"),
        ),
    )


def row_noise(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device):
    """A noise source: each call gives [B, *shape], row b drawn from generators[b] (on the CPU, then moved)."""

    def draw() -> torch.Tensor:
        return torch.stack([torch.randn(tuple(shape), generator=gen) for gen in generators]).to(device)

    return draw


class DavisSeparator(nn.Module):
    """Mixture + one cue per source -> one waveform per source."""

    def __init__(self, config: DavisConfig):
        super().__init__()
        if config.unet.visual_dim != config.frame.embed_dim:
            raise ValueError("the frame network's embedding must match the U-Net's visual_dim")
        if config.unet.freq_bins != config.spec.log_bins:
            raise ValueError("the U-Net's frequency rows must match the spectrogram's log bins")
        self.config = config
        self.spectral = Spectral(config.spec)
        self.net = AudioVisualNet(config.unet)
        self.cue = FrameNet(config.frame)
        self.process = Diffusion(config.diffusion)

    def set_steps(self, steps: int) -> None:
        self.config = self.config.with_steps(steps)
        self.process.config = self.config.diffusion

    def condition(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear magnitude [B, F, N] -> (warped magnitude [B, K, N], compressed condition [B, 1, K, N])."""
        warped = self.spectral.to_log_frequency(magnitude)
        return warped, self.spectral.compress(warped).unsqueeze(1)

    def visual_features(self, cues: list[np.ndarray]) -> torch.Tensor:
        """One uint8 cue per row -> [R, visual_dim, frames]."""
        clips = torch.stack([self.cue.clip_of_still(image) for image in cues])
        return self.cue(clips.to(self.spectral.window.device))

    def denoiser(self, mixture: torch.Tensor, visual: torch.Tensor):
        return lambda state, t: self.net(state, t, mixture, visual)

    def _padded(self, compressed: torch.Tensor) -> torch.Tensor:
        """Zero (silent) frames on the right up to the U-Net's frame multiple."""
        return F.pad(compressed, (0, -compressed.shape[-1] % self.config.unet.time_multiple))

    def training_loss(
        self,
        mixture_wave: torch.Tensor,
        source_waves: torch.Tensor,
        cues: list[np.ndarray],
        generator: torch.Generator | None = None,
        first_timestep: int = 0,
    ) -> torch.Tensor:
        """One row per (mixture [R, T], its target source [R, T], its cue); timesteps from `first_timestep` on."""
        mixture = self._padded(self.condition(self.spectral.stft(mixture_wave).abs())[1])
        target = self._padded(self.condition(self.spectral.stft(source_waves).abs())[1])
        denoise = self.denoiser(mixture, self.visual_features(cues))
        return self.process.loss(denoise, target, generator, first_timestep)

    @torch.no_grad()
    def separate(
        self, mixtures: torch.Tensor, cues: list[list[np.ndarray]], generators: list[torch.Generator]
    ) -> list[np.ndarray]:
        """mixtures [B, T] at the config's rate -> B arrays [S_b, T], ordered as each item's cues."""
        device = mixtures.device
        rows = [b for b, item_cues in enumerate(cues) for _ in item_cues]
        if not rows:
            return [np.zeros((0, mixtures.shape[1]), np.float32) for _ in cues]
        mixture_spec = self.spectral.stft(mixtures)
        frames = mixture_spec.shape[-1]
        condition = self._padded(self.condition(mixture_spec.abs())[1])
        index = torch.tensor(rows, device=device)
        visual = self.visual_features([image for item_cues in cues for image in item_cues])
        mixture_rows = condition[index]
        noise = row_noise(mixture_rows.shape[1:], [generators[b] for b in rows], device)
        estimate = self.process.sample(self.denoiser(mixture_rows, visual), mixture_rows, noise)
        magnitude = self.spectral.expand(estimate[:, 0, :, :frames])
        waves = self.spectral.synthesise(magnitude, mixture_spec[index], mixtures.shape[1]).float().cpu().numpy()
        out, start = [], 0
        for item_cues in cues:
            out.append(waves[start : start + len(item_cues)])
            start += len(item_cues)
        return out
