"""DAVIS's Separation U-Net: the denoiser of the target source's spectrogram.

Input channels are the noisy target and the mixture (DAVIS conditions on the
mixture by concatenation); the time step and the cue's visual embedding enter
every residual block as a FiLM scale and shift. The two top-level modules are
named `time_mlp` and `net_unet`, the prefixes of DAVIS's released
`unet_best.pth`. The layout *below* those prefixes is avbench's reconstruction
([inference]: DAVIS's `modules/unet.py` is not published in readable form),
so loading a released file names every key that does not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    dim: int = 64  # DAVIS's `num_channels`
    mults: tuple[int, ...] = (1, 2, 4, 8)
    visual_dim: int = 512
    groups: int = 8
    heads: int = 4

    @property
    def cond_dim(self) -> int:
        return 4 * self.dim


class SinusoidalEmbedding(nn.Module):
    """Time step (0..1000) -> [B, dim] sines and cosines at geometric frequencies."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(cond)).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return self.conv2(F.silu(h)) + self.skip(x)


class Attention(nn.Module):
    """Full self-attention over the bottleneck's time-frequency cells."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class SeparationUNet(nn.Module):
    """[noisy target, mixture] -> velocity (flow) or noise (diffusion), one channel."""

    def __init__(self, config: NetConfig, in_channels: int = 2):
        super().__init__()
        cond, groups = config.cond_dim, config.groups
        widths = [config.dim * m for m in config.mults]
        self.levels = len(widths)
        self.visual_proj = nn.Sequential(nn.Linear(config.visual_dim, cond), nn.GELU(), nn.Linear(cond, cond))
        self.init_conv = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        previous = widths[0]
        for level, width in enumerate(widths):
            self.down_blocks.append(ResBlock(previous, width, cond, groups))
            last = level == self.levels - 1
            self.downsamples.append(nn.Identity() if last else nn.Conv2d(width, width, 4, stride=2, padding=1))
            previous = width
        self.mid_block1 = ResBlock(widths[-1], widths[-1], cond, groups)
        self.mid_attn = Attention(widths[-1], config.heads, groups)
        self.mid_block2 = ResBlock(widths[-1], widths[-1], cond, groups)
        self.upsamples = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level in reversed(range(self.levels)):
            width = widths[level]
            last = level == self.levels - 1
            self.upsamples.append(nn.Identity() if last else nn.Conv2d(widths[level + 1], width, 3, padding=1))
            self.up_blocks.append(ResBlock(2 * width, width, cond, groups))
        self.final_norm = nn.GroupNorm(groups, widths[0])
        self.final_conv = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** (self.levels - 1)
        x = F.pad(x, (0, -width % multiple, 0, -height % multiple))
        cond = time_embedding + self.visual_proj(visual)
        h = self.init_conv(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downsamples):
            h = block(h, cond)
            skips.append(h)
            h = down(h)
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, cond)), cond)
        for up, block in zip(self.upsamples, self.up_blocks):
            skip = skips.pop()
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = block(torch.cat([h, skip], dim=1), cond)
        out = self.final_conv(F.silu(self.final_norm(h)))
        return out[..., :height, :width]


class SeparationNet(nn.Module):
    """The whole denoiser: `time_mlp` + `net_unet`, as in DAVIS's checkpoint layout."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(config.dim), nn.Linear(config.dim, config.cond_dim), nn.GELU(), nn.Linear(config.cond_dim, config.cond_dim)
        )
        self.net_unet = SeparationUNet(config)

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, mixture: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """noisy, mixture [B, 1, K, N]; t [B] in 0..1000; visual [B, visual_dim]."""
        return self.net_unet(torch.cat([noisy, mixture], dim=1), self.time_mlp(t), visual)
