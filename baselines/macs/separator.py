"""MACS's stage-1 separator: a mask U-Net that splits a mixture into M slots.

The mixture's STFT (n_fft 400, hop 200, Hann, centred: torchaudio's
`Spectrogram(power=None)` defaults, computed here with torch.stft) feeds its
power spectrogram to a U-Net with M sigmoid mask outputs; each masked STFT is
inverted and a mixture-consistency projection spreads the residual equally
over the slots (alxzzhou/MACS, separator.py). Module and attribute names follow the layout
of MACS's `separator_FSD50K_full.pt` (under its `model.unet.` prefix), so
the official file loads by name; `width` (MACS: 64) only changes tensor sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SeparatorConfig:
    slots: int = 6  # M
    sample_rate: int = 16000
    seconds: float = 8.0  # the clip length the positional embedding is sized for
    width: int = 64  # NC
    se_ratio: int = 16  # SEBlock ratio (separator.py:59)
    n_fft: int = 400
    hop: int = 200

    @property
    def samples(self) -> int:
        return int(round(self.sample_rate * self.seconds))

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frames(self) -> int:
        return self.samples // self.hop + 1


class AxisPositionEmbedding(nn.Module):
    """A learned per-channel offset for every frequency row and every time column."""

    def __init__(self, channels: int, rows: int, cols: int):
        super().__init__()
        self.row_embed = nn.Parameter(torch.randn(channels, rows) * 0.05)
        self.col_embed = nn.Parameter(torch.randn(channels, cols) * 0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.row_embed[None, :, :, None] + self.col_embed[None, :, None, :]


class Excitation(nn.Module):
    """Squeeze-and-excitation gate from each channel's spatial maximum."""

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.amax(dim=(2, 3))).sigmoid()
        return x * gate[:, :, None, None]


class Residual(nn.Module):
    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
        )
        self.senet = Excitation(channels, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.senet(x + self.layers(x)))


class Level(nn.Module):
    """One U-Net level: strided down-conv, inner levels, transposed up-conv, skip by concatenation."""

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None, ratio: int = 16):
        super().__init__()
        grow = 1 if submodule is None else 2  # inner levels return their input concatenated
        self.downconv = nn.Conv2d(outer, inner, 4, stride=2, padding=1)
        self.downnorm = nn.BatchNorm2d(inner)
        self.downresblock = Residual(inner, ratio)
        self.dropout = nn.Dropout2d() if submodule is not None else nn.Identity()
        self.submodule = submodule if submodule is not None else Excitation(inner, ratio)
        self.upresblock = Residual(inner * grow, ratio)
        self.upconv = nn.ConvTranspose2d(inner * grow, outer, 4, stride=2, padding=1)
        self.upnorm = nn.BatchNorm2d(outer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.downresblock(F.gelu(self.downnorm(self.downconv(x))))
        h = self.submodule(self.dropout(h))
        h = F.gelu(self.upnorm(self.upconv(self.upresblock(h))))
        if h.shape[2:] != x.shape[2:]:
            h = F.interpolate(h, size=x.shape[2:], mode="bilinear", align_corners=True)
        return torch.cat([x, h], dim=1)


class MaskUNet(nn.Module):
    """Power spectrogram [B, 1, F, T] -> mask logits [B, M, F, T]."""

    def __init__(self, config: SeparatorConfig):
        super().__init__()
        m, nc = config.slots, config.width
        level = Level(8 * nc, 8 * nc, None, config.se_ratio)
        for outer, inner in ((4 * nc, 8 * nc), (2 * nc, 4 * nc), (nc, 2 * nc), (nc, nc)):
            level = Level(outer, inner, level, config.se_ratio)
        self.unet = level
        self.in_conv = nn.Sequential(
            nn.Conv2d(1, m, 3, padding=1),
            AxisPositionEmbedding(m, config.bins, config.frames),
            nn.BatchNorm2d(m),
            nn.GELU(),
            nn.Conv2d(m, nc, 3, padding=1),
            nn.BatchNorm2d(nc),
            nn.GELU(),
        )
        self.out_conv = nn.Sequential(
            nn.Conv2d(2 * nc, nc, 3, padding=1),
            nn.BatchNorm2d(nc),
            nn.GELU(),
            nn.Conv2d(nc, nc, 3, padding=1),
            nn.BatchNorm2d(nc),
            nn.GELU(),
            nn.Conv2d(nc, m, 1),
        )

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.unet(self.in_conv(power)))


class MaskSeparator(nn.Module):
    """Waveform [B, T] -> M slot waveforms [B, M, T] that sum to the input."""

    def __init__(self, config: SeparatorConfig):
        super().__init__()
        self.config = config
        self.unet = MaskUNet(config)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, T] -> complex [B, F, frames]: torchaudio `Spectrogram(power=None)` (centred, reflect-padded)."""
        cfg = self.config
        return torch.stft(
            audio,
            cfg.n_fft,
            cfg.hop,
            window=self.window,
            center=True,
            pad_mode="reflect",
            onesided=True,
            return_complex=True,
        )

    def masked_slots(self, audio: torch.Tensor, spec: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        """istft(sigmoid(logits) * spec) then the mixture-consistency projection: [B, M, T]."""
        cfg = self.config
        masked = (torch.sigmoid(mask_logits) * spec.unsqueeze(1)).flatten(0, 1)
        slots = torch.istft(masked, cfg.n_fft, cfg.hop, window=self.window, center=True, length=audio.shape[-1])
        slots = slots.view(audio.shape[0], cfg.slots, -1)
        return slots + (audio.unsqueeze(1) - slots.sum(dim=1, keepdim=True)) / cfg.slots

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if audio.shape[-1] != cfg.samples:
            raise ValueError(
                f"the separator is sized for {cfg.samples} samples ({cfg.seconds} s at "
                f"{cfg.sample_rate} Hz), got {audio.shape[-1]}"
            )
        spec = self.stft(audio)
        return self.masked_slots(audio, spec, self.unet((spec.abs() ** 2).unsqueeze(1)))
