"""The synthetic-world stand-in for MACS's Stable Diffusion UNet: a small 64x64 decoder.

It keeps MACS's conditioning idea: M audio tokens (from `SlotMLP`) enter through
decoupled cross-attention beside a set of learned "text" tokens, the analogue
of SD's empty-prompt tokens. Unlike SD it decodes in one pass and is
deterministic given the audio: trained with an L1 loss, it draws the per-pixel
median of the frames that go with what it heard. (Best-of-K latent training
was tried and scored lower on the world's evaluator: a latent spent its
capacity on the random backgrounds rather than on the objects.) It draws at
32x32 and upsamples bilinearly to 64x64; the last doubling would cost as much
as all the rest, and the world's objects are flat-coloured shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .adapter import DecoupledCrossAttention


@dataclass(frozen=True)
class GeneratorConfig:
    token_dim: int = 128
    text_tokens: int = 4
    widths: tuple[int, ...] = (64, 48, 32)  # at 8, 16, 32 pixels
    heads: int = 4
    image_size: int = 64


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(min(8, c_out // 2), c_out), nn.SiLU())


class SlotImageGenerator(nn.Module):
    """Audio tokens [B, M, D] -> image [B, 3, 64, 64] in [-1, 1]."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        w = config.widths
        self.text_tokens = nn.Parameter(torch.randn(config.text_tokens, config.token_dim) * 0.02)
        self.stem = nn.Linear(config.token_dim, w[0] * 64)
        self.block0 = conv_block(w[0], w[0])
        self.attn0 = DecoupledCrossAttention(w[0], config.token_dim, config.heads)
        self.block1 = conv_block(w[0], w[1])
        self.attn1 = DecoupledCrossAttention(w[1], config.token_dim, config.heads)
        self.ups = nn.ModuleList(conv_block(a, b) for a, b in zip(w[1:-1], w[2:], strict=True))
        self.to_rgb = nn.Conv2d(w[-1], 3, 3, padding=1)

    def forward(self, audio_tokens: torch.Tensor) -> torch.Tensor:
        b = audio_tokens.shape[0]
        text = self.text_tokens.unsqueeze(0).expand(b, -1, -1)
        h = self.stem(audio_tokens.mean(dim=1)).view(b, -1, 8, 8)
        h = self.attn0(self.block0(h), text, audio_tokens)
        h = self.block1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.attn1(h, text, audio_tokens)
        for up in self.ups:
            h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        size = self.config.image_size
        return torch.tanh(F.interpolate(self.to_rgb(h), size=(size, size), mode="bilinear", align_corners=False))


def to_uint8(images: torch.Tensor) -> list:
    """[B, 3, H, W] in [-1, 1] -> uint8 HxWx3 arrays."""
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [p.permute(1, 2, 0).cpu().numpy() for p in pixels]
