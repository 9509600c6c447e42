"""Sound2Scene's audio front-end, in torch so it batches on any device.

The recipe (kaist-ami/Sound2Scene test.py `audio2spectrogram`, shared with the VGGSound classifier): tile the clip
to a fixed length, clip to [-1, 1], take scipy's default spectrogram (Tukey(0.25)
window, constant detrend per segment, one-sided PSD density scaling), then
log(S + 1e-7) and standardise each clip by its own mean and std. With
nperseg=512, noverlap=353 a 160,000-sample clip gives 257 x 1004.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SpectrogramConfig:
    sample_rate: int = 16000
    clip_samples: int = 160_000  # audio is tiled or cut to this length first
    nperseg: int = 512
    noverlap: int = 353

    @property
    def bins(self) -> int:
        return self.nperseg // 2 + 1

    @property
    def frames(self) -> int:
        return (self.clip_samples - self.noverlap) // (self.nperseg - self.noverlap)


PAPER_SPECTROGRAM = SpectrogramConfig()


def tile_or_cut(audio: torch.Tensor, length: int, repeats: int | None = None) -> torch.Tensor:
    """[B, T] -> [B, <= length]: repeat end to end, then cut at `length`.

    `repeats=None` (avbench) repeats until `length` is filled, so every clip
    gives the same spectrogram size. `repeats=10` is Sound2Scene's test.py:122,
    `np.tile(samples, 10)[:160000]`: a clip shorter than length / 10 stays shorter.
    """
    count = math.ceil(length / audio.shape[-1]) if repeats is None else repeats
    if count > 1:
        audio = audio.repeat(1, count)
    return audio[:, :length]


class LogSpectrogram(nn.Module):
    """float [B, T] waveform -> standardised log-PSD [B, 1, bins, frames]."""

    def __init__(self, config: SpectrogramConfig = PAPER_SPECTROGRAM):
        from scipy.signal import get_window  # scipy.signal takes seconds to import: only when a net is built

        super().__init__()
        self.config = config
        window = torch.from_numpy(get_window(("tukey", 0.25), config.nperseg)).float()
        self.register_buffer("window", window, persistent=False)
        scale = torch.full((config.bins,), 2.0 / (config.sample_rate * float((window**2).sum())))
        scale[0] /= 2.0  # DC and (even nperseg) Nyquist are not doubled in a one-sided PSD
        if config.nperseg % 2 == 0:
            scale[-1] /= 2.0
        self.register_buffer("scale", scale, persistent=False)

    def forward(
        self, audio: torch.Tensor, repeats: int | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """`repeats`: see `tile_or_cut`. `dtype`: torch.float64 computes as the official numpy code does."""
        cfg = self.config
        audio = tile_or_cut(audio.to(dtype), cfg.clip_samples, repeats).clamp(-1.0, 1.0)
        segments = audio.unfold(-1, cfg.nperseg, cfg.nperseg - cfg.noverlap)  # [B, frames, nperseg]
        segments = (segments - segments.mean(dim=-1, keepdim=True)) * self.window.to(dtype)
        spectrum = torch.fft.rfft(segments, dim=-1)
        power = (spectrum.real**2 + spectrum.imag**2) * self.scale.to(dtype)  # [B, frames, bins]
        logpsd = torch.log(power.transpose(1, 2) + 1e-7)
        mean = logpsd.mean(dim=(1, 2), keepdim=True)
        std = logpsd.std(dim=(1, 2), keepdim=True, unbiased=False)
        return ((logpsd - mean) / (std + 1e-9)).unsqueeze(1)
