"""From instance features to the uint8 images a Model returns, with per-item noise.

Each item's noise comes from its own seeded generator (`Batch.generator`), so
an image depends only on the item, never on the batch it was in.
"""

from __future__ import annotations

import numpy as np
import torch

from avbench.models.base import Batch


def item_noise(batch: Batch, dim_z: int, per_item: list[int], device: torch.device) -> torch.Tensor:
    """[sum(per_item), dim_z] standard normal noise (IC-GAN's z_var = 1), item by item."""
    draws = [torch.randn(count, dim_z, generator=batch.generator(i)) for i, count in enumerate(per_item)]
    return torch.cat(draws).to(device)


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """[B, 3, H, W] in [-1, 1] -> B uint8 H x W x 3 arrays."""
    scaled = ((images.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return list(scaled.permute(0, 2, 3, 1).cpu().numpy())
