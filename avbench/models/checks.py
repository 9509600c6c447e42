"""Checks that a model's outputs keep the task's contract.

A broken output becomes a failed item with a reason, never a number.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ModelOutputError


def as_image(value, where: str) -> np.ndarray:
    """A uint8 HxWx3 image, or ModelOutputError saying what is wrong."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise ModelOutputError(f"{where}: expected a uint8 HxWx3 array, got {type(value).__name__}")
    if value.dtype != np.uint8:
        raise ModelOutputError(f"{where}: expected dtype uint8, got {value.dtype}")
    if value.ndim != 3 or value.shape[2] != 3 or min(value.shape[:2]) < 8:
        raise ModelOutputError(f"{where}: expected shape (H, W, 3) with H, W >= 8, got {value.shape}")
    if value.min() == value.max():
        raise ModelOutputError(f"{where}: blank image (every pixel is {int(value.min())})")
    return np.ascontiguousarray(value)


def as_waveforms(value, sources: int, max_length: int, where: str) -> np.ndarray:
    """A finite float32 [sources, T] array with 0 < T <= max_length."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise ModelOutputError(
            f"{where}: expected a float array [S, T], got {getattr(value, 'dtype', type(value).__name__)}"
        )
    if value.ndim != 2 or value.shape[0] != sources or not 0 < value.shape[1] <= max_length:
        raise ModelOutputError(f"{where}: expected shape ({sources}, T<={max_length}), got {value.shape}")
    if not np.isfinite(value).all():
        raise ModelOutputError(f"{where}: waveform contains NaN or infinity")
    return value.astype(np.float32)


def batch_list(value, length: int, where: str) -> list:
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ModelOutputError(
            f"{where}: expected a list of {length} outputs, got {type(value).__name__} "
            f"of length {len(value) if hasattr(value, '__len__') else '?'}"
        )
    return list(value)
