"""From instance features to the uint8 images a Model returns, with per-item noise.

Each item's noise comes from its own seeded generator (`Batch.generator`), so
an image depends only on the item, never on the batch it was in.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from avbench.models.base import Batch


def item_noise(batch: Batch, dim_z: int, per_item: list[int], device: torch.device) -> torch.Tensor:
    """[sum(per_item), dim_z] standard normal noise (IC-GAN's z_var = 1), item by item."""
    draws = [torch.randn(count, dim_z, generator=batch.generator(i)) for i, count in enumerate(per_item)]
    return torch.cat(draws).to(device)


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """[B, 3, H, W] in [-1, 1] -> B uint8 H x W x 3 arrays."""
    scaled = ((images.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return list(scaled.permute(0, 2, 3, 1).cpu().numpy())


def side_by_side(images: torch.Tensor) -> torch.Tensor:
    """K images [K, 3, H, W] -> one [3, H, W] scene: each shrunk by K, in a row, edges extended above and below."""
    count, _, height, width = images.shape
    small = F.interpolate(images, size=(height // count, width // count), mode="area")
    row = torch.cat(list(small), dim=-1)  # [3, H / K, K * (W / K)]
    row = F.interpolate(row[None], size=(height // count, width), mode="nearest")[0] if row.shape[-1] != width else row
    top = (height - row.shape[1]) // 2
    return F.pad(row[None], (0, 0, top, height - row.shape[1] - top), mode="replicate")[0]


def minmax_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> uint8 [B, H, W, 3], Sound2Scene's official visualisation (test.py:102-152):
    clamp to [-1, 1], rescale each image by its own min and max (torchvision `make_grid(normalize=True,
    scale_each=True)`, range floored at 1e-5), then `save_image`'s x * 255 + 0.5, clamped and truncated."""
    images = images.float().clamp(-1.0, 1.0)
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    scaled = (images - low) / (high - low).clamp_min(1e-5)
    return (scaled * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
