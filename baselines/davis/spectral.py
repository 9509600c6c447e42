"""DAVIS's spectrogram domain: STFT, log-frequency warp, log compression, and back.

The model sees `clamp(0.15 * log(1 + |X|), 0, 1)` of a magnitude warped onto a
log-frequency axis (papers.md 4.2). Its output is un-warped, decompressed and
given the mixture's phase before the inverse STFT (papers.md 4.3). The warp
is a fixed linear-interpolation matrix along frequency, so warp and un-warp
are exact matrix products rather than image resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SpecConfig:
    sample_rate: int
    n_fft: int
    hop: int
    log_bins: int
    scale: float = 0.15  # the compression factor of papers.md 4.2

    @property
    def linear_bins(self) -> int:
        return self.n_fft // 2 + 1

    def frames(self, samples: int) -> int:
        """STFT frames of a centred transform of `samples` samples."""
        return samples // self.hop + 1


def _interpolation_matrix(positions: torch.Tensor, size: int) -> torch.Tensor:
    """Rows of linear-interpolation weights that read `size` bins at fractional `positions`."""
    lower = positions.floor().clamp(0, size - 1)
    frac = positions - lower
    upper = (lower + 1).clamp(max=size - 1)
    rows = torch.arange(positions.numel())
    matrix = torch.zeros(positions.numel(), size, dtype=torch.float64)
    matrix.index_put_((rows, lower.long()), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, upper.long()), frac, accumulate=True)
    return matrix


def log_warp_matrix(linear_bins: int, log_bins: int) -> torch.Tensor:
    """[log_bins, linear_bins]: log bin k reads linear bin exp(k / (K - 1) * ln L) - 1."""
    positions = torch.exp(torch.linspace(0.0, math.log(linear_bins), log_bins, dtype=torch.float64)) - 1.0
    return _interpolation_matrix(positions, linear_bins)


def log_unwarp_matrix(linear_bins: int, log_bins: int) -> torch.Tensor:
    """[linear_bins, log_bins]: the inverse reading, linear bin j from log bin (K - 1) ln(1 + j) / ln L."""
    positions = (log_bins - 1) * torch.log1p(torch.arange(linear_bins, dtype=torch.float64)) / math.log(linear_bins)
    return _interpolation_matrix(positions, log_bins)


class Spectral(nn.Module):
    """Waveform <-> compressed log-frequency magnitude, with the mixture's phase for synthesis."""

    def __init__(self, config: SpecConfig):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.register_buffer("warp", log_warp_matrix(config.linear_bins, config.log_bins).float(), persistent=False)
        self.register_buffer("unwarp", log_unwarp_matrix(config.linear_bins, config.log_bins).float(), persistent=False)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """float [B, T] -> complex [B, linear_bins, frames] (Hann, centred)."""
        cfg = self.config
        return torch.stft(wave, cfg.n_fft, cfg.hop, window=self.window, center=True, return_complex=True)

    def compress(self, spec: torch.Tensor) -> torch.Tensor:
        """complex [B, F, N] -> model input [B, 1, log_bins, N] in [0, 1]."""
        warped = torch.einsum("kf,bfn->bkn", self.warp, spec.abs())
        return torch.clamp(self.config.scale * torch.log1p(warped), 0.0, 1.0).unsqueeze(1)

    def expand(self, compressed: torch.Tensor) -> torch.Tensor:
        """Model output [B, 1, log_bins, N] -> linear-frequency magnitude [B, F, N]."""
        magnitude = torch.expm1(compressed.squeeze(1).abs() / self.config.scale)
        return torch.einsum("fk,bkn->bfn", self.unwarp, magnitude)

    def synthesise(self, magnitude: torch.Tensor, mixture_spec: torch.Tensor, length: int) -> torch.Tensor:
        """Magnitude [B, F, N] with the mixture's phase -> float [B, length]."""
        phase = mixture_spec / mixture_spec.abs().clamp_min(1e-8)
        cfg = self.config
        return torch.istft(magnitude * phase, cfg.n_fft, cfg.hop, window=self.window, center=True, length=length)
