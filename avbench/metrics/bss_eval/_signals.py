"""Input checks, the silence rule and the dB conversion shared by every measure."""

from __future__ import annotations

import numpy as np
import torch

from ...errors import DataError

SILENCE_THRESHOLD = 1e-5  # DAVIS: a source with sum|x| <= this makes its mixture unscorable


def as_batch(x, name: str) -> torch.Tensor:
    """[S, T] or [B, S, T] numpy/torch -> float64 tensor [B, S, T] on the input's device."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[-1] == 0 or t.shape[-2] == 0:
        raise DataError(f"{name}: expected shape [S, T] or [B, S, T], got {tuple(t.shape)}")
    return t.to(torch.float64)


def pair(reference, estimate) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both signals as float64 [B, S, T] on the reference's device, and whether the input was one [S, T] mixture."""
    ref, est = as_batch(reference, "reference"), as_batch(estimate, "estimate")
    if ref.shape != est.shape:
        raise DataError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must have the same shape")
    return ref, est.to(ref.device), np.ndim(reference) == 2


def silent(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """bool [B]: the mixture has a reference or estimate source with sum|x| <= SILENCE_THRESHOLD."""

    def quiet(x):
        return torch.linalg.vector_norm(x, 1, dim=-1) <= SILENCE_THRESHOLD

    return (quiet(ref) | quiet(est)).any(-1)


def db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """10 log10((num + eps) / (den + eps)), eps the float64 machine epsilon.

    A perfect estimate (an energy of exactly 0, which the exact spectral path can
    return) scores a large finite value, as torchmetrics' SI-SDR does, where
    mir_eval's _safe_db gives +inf: a mean over items stays finite. Above ~1e-13
    of the signal's energy the epsilon moves no value by more than ~1e-12 dB.
    """
    eps = torch.finfo(torch.float64).eps
    return 10 * torch.log10((num + eps) / (den + eps))
