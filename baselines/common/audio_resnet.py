"""ResNet-18-style audio encoder on a 1-channel log-spectrogram.

Layout and parameter names follow Sound2Scene's audio network (kaist-ami/Sound2Scene),
which is torchvision's ResNet with a 1-channel 7x7 stem: conv1, bn1, maxpool,
layer1..layer4 of BasicBlocks, global average pool, then `fc` (512 -> 2048)
and a ReLU. Widths and block counts are configurable so the synthetic-world
models can use the same family at a few hundred kilobytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AudioResNetConfig:
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    out_dim: int | None = 2048  # None: no fc, the pooled feature is the output


PAPER_AUDIO_RESNET = AudioResNetConfig()


class AudioResNet(nn.Module):
    """[B, 1, F, T] -> (embedding [B, out_dim] after fc + ReLU, pooled [B, widths[-1]])."""

    def __init__(self, config: AudioResNetConfig = PAPER_AUDIO_RESNET):
        from torchvision.models.resnet import (
            BasicBlock,  # torchvision takes seconds to import: only when a net is built
        )

        super().__init__()
        self.config = config
        first = config.widths[0]
        self.conv1 = nn.Conv2d(1, first, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(first)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = first
        for index, (width, count) in enumerate(zip(config.widths, config.blocks, strict=True)):
            stride = 1 if index == 0 else 2
            layer = []
            for block in range(count):
                downsample = None
                if block == 0 and (stride != 1 or channels != width):
                    downsample = nn.Sequential(
                        nn.Conv2d(channels, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
                    )
                layer.append(BasicBlock(channels, width, stride if block == 0 else 1, downsample))
                channels = width
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, config.out_dim) if config.out_dim else None
        self.pooled_dim = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(spec))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        pooled = torch.flatten(self.avgpool(x), 1)
        if self.fc is None:
            return pooled, pooled
        return torch.relu(self.fc(pooled)), pooled
