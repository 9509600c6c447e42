"""One DAVIS separator: spectrogram front-end, cue encoder, denoiser and sampler.

`DavisConfig` fixes every choice that changes numbers; `PAPER_MUSIC` follows
papers.md 4.2 (11,025 Hz, n_fft 1022, hop 256, 256 log bins, U-Net, DDIM 15
steps, eta 1, silence mask on), `SYNTH` is the small model avbench trains on
its synthetic world (16 kHz, 128 log bins, the frequency-as-channels denoiser
of tcn.py, flow matching with a few Euler steps, a tiny cue CNN).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .sampling import Diffusion, Flow, silence_masked
from .spectral import SpecConfig, Spectral
from .tcn import FrequencyChannelNet, TcnConfig
from .unet import NetConfig, SeparationNet
from .visual import ClipFrameConfig, ClipFrameNet, CueEncoder, images_to_tensors


@dataclass(frozen=True)
class DavisConfig:
    spec: SpecConfig
    net: NetConfig | TcnConfig  # the paper's U-Net, or the synthetic world's denoiser
    objective: str  # "diffusion" (DDIM) or "flow" (Euler)
    steps: int
    predicts: str = "velocity"  # flow only: "velocity" (DAVIS-Flow) or "target"
    clamp_output: bool = False  # DAVIS reads |estimate|; the synthetic model clamps to the data's [0, 1]
    eta: float = 1.0  # DDIM only
    silence_mask: bool = False
    visual: str = "clip"  # "clip" (ClipFrameNet) or "cue-cnn" (CueEncoder)
    clip: ClipFrameConfig = ClipFrameConfig()
    cue_size: int = 64

    def with_steps(self, steps: int) -> "DavisConfig":
        return replace(self, steps=int(steps))


PAPER_MUSIC = DavisConfig(
    spec=SpecConfig(sample_rate=11025, n_fft=1022, hop=256, log_bins=256),
    net=NetConfig(dim=64, mults=(1, 2, 4, 8), visual_dim=512),
    objective="diffusion",
    steps=15,
    eta=1.0,
    silence_mask=True,
    visual="clip",
)

SYNTH = DavisConfig(
    spec=SpecConfig(sample_rate=16000, n_fft=510, hop=256, log_bins=128),
    net=TcnConfig(bins=128, width=128, visual_dim=64),
    objective="flow",
    steps=4,
    predicts="target",
    clamp_output=True,
    visual="cue-cnn",
)


class DavisSeparator(nn.Module):
    """Mixture + one cue per source -> one waveform per source."""

    def __init__(self, config: DavisConfig):
        super().__init__()
        self.config = config
        self.spectral = Spectral(config.spec)
        if isinstance(config.net, TcnConfig):
            if config.net.bins != config.spec.log_bins:
                raise ValueError("the denoiser's bins must match the spectrogram's log bins")
            self.net = FrequencyChannelNet(config.net)
        else:
            self.net = SeparationNet(config.net)
        if config.visual == "clip":
            if config.clip.embed_dim != config.net.visual_dim:
                raise ValueError("the frame network's embedding must match the U-Net's visual_dim")
            self.cue = ClipFrameNet(config.clip)
        else:
            self.cue = CueEncoder(out_dim=config.net.visual_dim, size=config.cue_size)
        self.set_steps(config.steps)

    def set_steps(self, steps: int) -> None:
        self.config = self.config.with_steps(steps)
        cfg = self.config
        if cfg.objective == "diffusion":
            self.process = Diffusion(steps=cfg.steps, eta=cfg.eta)
        else:
            self.process = Flow(steps=cfg.steps, predicts=cfg.predicts)

    def denoiser(self, mixture: torch.Tensor, visual: torch.Tensor):
        return lambda x, t: self.net(x, t, mixture, visual)

    def training_loss(self, mixture_wave: torch.Tensor, source_waves: torch.Tensor, cues: list[torch.Tensor], generator=None) -> torch.Tensor:
        """One row per (mixture, source): mixture [R, T], its target source [R, T], its cue."""
        mixture = self.spectral.compress(self.spectral.stft(mixture_wave))
        target = self.spectral.compress(self.spectral.stft(source_waves))
        return self.process.loss(self.denoiser(mixture, self.cue(cues)), target, generator)

    @torch.no_grad()
    def separate(self, mixtures: torch.Tensor, cues: list[list[np.ndarray]], generators: list[torch.Generator]) -> list[np.ndarray]:
        """mixtures [B, T] at the config's rate -> B arrays [S_b, T], ordered as each item's cues."""
        device = mixtures.device
        rows = [b for b, item_cues in enumerate(cues) for _ in item_cues]
        if not rows:
            return [np.zeros((0, mixtures.shape[1]), np.float32) for _ in cues]
        mixture_spec = self.spectral.stft(mixtures)
        compressed = self.spectral.compress(mixture_spec)
        index = torch.tensor(rows, device=device)
        visual = self.cue(images_to_tensors([im for item_cues in cues for im in item_cues], device))
        mixture_rows = compressed[index]
        row_generators = [generators[b] for b in rows]
        estimate = self.process.sample(self.denoiser(mixture_rows, visual), mixture_rows.shape[1:], row_generators, device)
        if self.config.clamp_output:
            estimate = estimate.clamp(0.0, 1.0)
        if self.config.silence_mask:
            estimate = silence_masked(estimate, mixture_rows)
        waves = self.spectral.synthesise(self.spectral.expand(estimate), mixture_spec[index], mixtures.shape[1])
        waves = waves.float().cpu().numpy()
        out, start = [], 0
        for item_cues in cues:
            out.append(waves[start : start + len(item_cues)])
            start += len(item_cues)
        return out
