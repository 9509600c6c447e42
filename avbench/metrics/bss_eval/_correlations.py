"""The correlations every normal equation is built from, by overlap-save FFTs."""

from __future__ import annotations

import torch


def correlation_block(length: int, samples: int) -> int:
    """FFT size for the blocked correlations: a power of two near 8 L, never past one block for the signal."""
    whole = 1 << (samples + length - 2).bit_length()
    return min(whole, 1 << (8 * length - 1).bit_length())


def correlations(ref: torch.Tensor, est: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """rho[n, i, j, l] = sum_t s_i[t] s_j[t + l] and d[n, i, v, l] = sum_t s_i[t] e_v[t + l], l < L.

    Overlap-save: the references are cut into blocks of `hop` samples, each
    correlated with the window of `hop + L - 1` samples of every signal that
    starts with it, in an FFT of P = hop + L - 1 points, which wraps nothing.
    The block spectra are summed before one short inverse FFT, so only the
    forward transforms scale with the signal, in FFTs that fit the cache.
    """
    s, samples = ref.shape[1], ref.shape[-1]
    size = correlation_block(length, samples)
    hop = size - length + 1
    spectra = None  # [N, S, S + V, F]
    for start in range(0, samples, hop):  # block by block: small transforms that stay in cache
        # zero-padded, as is the last window
        head = torch.fft.rfft(ref[..., start : start + hop], size).conj().unsqueeze(2)
        window = torch.fft.rfft(torch.cat([ref[..., start : start + size], est[..., start : start + size]], 1), size)
        spectra = head * window.unsqueeze(1) if spectra is None else spectra.addcmul_(head, window.unsqueeze(1))
    corr = torch.fft.irfft(spectra, size)[..., :length]
    return corr[:, :, :s], corr[:, :, s:]
