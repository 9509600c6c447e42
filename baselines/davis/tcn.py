"""The synthetic-world denoiser: log-frequency bins as channels, convolution over time.

A 2-D U-Net with few channels runs far below a CPU's matrix throughput; the
same spectrogram read as [2K channels, N frames] turns every layer into a
dense matrix product, about ten times faster per training step here. It keeps
DAVIS's interface: noisy target and mixture in, time step and visual embedding
as FiLM conditioning, one compressed spectrogram out. Its output is added to
the mixture's spectrogram (the output layer starts at zero), so training starts
from the mixture-as-estimate and learns what to remove.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .unet import SinusoidalEmbedding


@dataclass(frozen=True)
class TcnConfig:
    bins: int = 128  # log-frequency bins K
    width: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    kernel: int = 3
    visual_dim: int = 64
    time_dim: int = 64


class FilmBlock(nn.Module):
    def __init__(self, width: int, cond_dim: int, kernel: int, dilation: int):
        super().__init__()
        self.norm = nn.GroupNorm(8, width)
        self.film = nn.Linear(cond_dim, 2 * width)
        self.conv = nn.Conv1d(width, width, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond).chunk(2, dim=1)
        h = self.norm(x) * (1 + scale[:, :, None]) + shift[:, :, None]
        return x + self.conv(F.silu(h))


class FrequencyChannelNet(nn.Module):
    """noisy, mixture [B, 1, K, N]; t [B] in 0..1000; visual [B, visual_dim] -> [B, 1, K, N]."""

    def __init__(self, config: TcnConfig):
        super().__init__()
        self.config = config
        cond = 4 * config.time_dim
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(config.time_dim), nn.Linear(config.time_dim, cond), nn.GELU(), nn.Linear(cond, cond)
        )
        self.visual_proj = nn.Sequential(nn.Linear(config.visual_dim, cond), nn.GELU(), nn.Linear(cond, cond))
        self.inp = nn.Conv1d(2 * config.bins, config.width, 1)
        self.blocks = nn.ModuleList(FilmBlock(config.width, cond, config.kernel, d) for d in config.dilations)
        self.out_norm = nn.GroupNorm(8, config.width)
        self.out = nn.Conv1d(config.width, config.bins, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, mixture: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        cond = F.silu(self.time_mlp(t) + self.visual_proj(visual))
        h = self.inp(torch.cat([noisy, mixture], dim=1).flatten(1, 2))
        for block in self.blocks:
            h = block(h, cond)
        return mixture + self.out(F.silu(self.out_norm(h))).unsqueeze(1)
