"""A small convolutional image encoder: the synthetic world's stand-in for SwAV.

Sound2Scene and IC-GAN condition on a frozen self-supervised ResNet-50's
pooled 2048-d feature. The synthetic-world models need a frozen image feature
space of their own (clip-synth stays an evaluator only), so this encoder is
trained once on world images and then frozen. Its pooled features pass a ReLU,
as SwAV's do, and are L2-normalised wherever they are used as instance features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class ImageEncoder(nn.Module):
    """Images [B, 3, H, W] in [-1, 1] -> pooled features [B, widths[-1]] (>= 0)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        stages, channels = [], 3
        for width in widths:
            stages.append(_down(channels, width))
            channels = width
        self.trunk = nn.Sequential(*stages)
        self.feature_dim = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images).mean(dim=(2, 3))


def instance_feature(encoder: ImageEncoder, images: torch.Tensor) -> torch.Tensor:
    """The L2-normalised feature the generator is conditioned on."""
    return F.normalize(encoder(images), dim=1)
