"""DAVIS's spectrogram domain, as its evaluation (`main.py` sample + calc_metrics) computes it.

Waveform -> STFT magnitude (Hann, centred, reflect padding, as librosa 0.9's
`stft`) -> log-frequency warp by `grid_sample` on the base-21 grid of DAVIS's
`warpgrid` -> `clamp(0.15 * log1p(.), 0, 1)`. Back: `exp(|x| / 0.15) - 1`,
un-warped by `grid_sample` on the inverse grid, given the mixture's phase, and
inverted by the ISTFT, clipped to [-1, 1]. The grids are built in float64 and
cast to float32, as DAVIS builds them in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

WARP_BASE = 21.0  # utils.py warpgrid: rows at (21 ** ((y + 1) / 2) - 11) / 10
MAGNITUDE_FLOOR = 1e-10  # added to the mixture magnitude before the warp


@dataclass(frozen=True)
class SpecConfig:
    sample_rate: int
    n_fft: int
    hop: int
    log_bins: int
    scale: float = 0.15

    @property
    def linear_bins(self) -> int:
        return self.n_fft // 2 + 1


def warp_grid(rows: int, frames: int, to_log: bool) -> torch.Tensor:
    """[1, rows, frames, 2] sampling grid: to the log axis (to_log) or back to the linear one."""
    x = torch.linspace(-1.0, 1.0, frames, dtype=torch.float64)
    y = torch.linspace(-1.0, 1.0, rows, dtype=torch.float64)
    if to_log:
        y = (WARP_BASE ** ((y + 1) / 2) - 11) / 10
    else:
        y = torch.log(y * 10 + 11) / torch.log(torch.tensor(WARP_BASE, dtype=torch.float64)) * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(x[None, :], y[:, None]), dim=-1)
    return grid[None].float()


class Spectral(nn.Module):
    """Waveform <-> the compressed log-frequency magnitude the U-Net sees."""

    def __init__(self, config: SpecConfig):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """float [B, T] -> complex [B, linear_bins, frames]."""
        cfg = self.config
        return torch.stft(
            wave, cfg.n_fft, cfg.hop, window=self.window, center=True, pad_mode="reflect", return_complex=True
        )

    def to_log_frequency(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Linear magnitude [B, linear_bins, N] -> warped magnitude [B, log_bins, N]."""
        grid = warp_grid(self.config.log_bins, magnitude.shape[-1], to_log=True).to(magnitude.device)
        grid = grid.expand(magnitude.shape[0], -1, -1, -1)
        warped = F.grid_sample((magnitude + MAGNITUDE_FLOOR).unsqueeze(1), grid, align_corners=True)
        return warped.squeeze(1)

    def compress(self, warped: torch.Tensor) -> torch.Tensor:
        """Warped magnitude -> the model's [0, 1] domain."""
        return (torch.log1p(warped) * self.config.scale).clamp(0.0, 1.0)

    def expand(self, compressed: torch.Tensor) -> torch.Tensor:
        """Model domain [B, log_bins, N] -> linear-frequency magnitude [B, linear_bins, N]."""
        magnitude = torch.exp(compressed.abs() / self.config.scale) - 1
        grid = warp_grid(self.config.linear_bins, magnitude.shape[-1], to_log=False).to(magnitude.device)
        grid = grid.expand(magnitude.shape[0], -1, -1, -1)
        return F.grid_sample(magnitude.unsqueeze(1), grid, align_corners=True).squeeze(1)

    def synthesise(self, magnitude: torch.Tensor, mixture_spec: torch.Tensor, length: int) -> torch.Tensor:
        """Magnitude [B, F, N] with the mixture's phase -> float [B, length] in [-1, 1]."""
        cfg = self.config
        spec = torch.polar(magnitude, torch.angle(mixture_spec))
        wave = torch.istft(spec, cfg.n_fft, cfg.hop, window=self.window, center=True, length=length)
        return wave.clamp(-1.0, 1.0)
