"""Visual cue encoders: what tells the separator which source to extract.

`ClipFrameNet` is the paper's frame network: a CLIP ViT-B/32 image tower
(`model.*`, OpenAI/open_clip key layout) followed by a temporal Transformer
(`temporal_transformer.*`) over the frames, mean-pooled. avbench hands one cue
image per source, so the paper path sees a one-frame clip. `CueEncoder` is the
synthetic world's tiny CNN, trained jointly with the separator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def images_to_tensors(images: list[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """uint8 HxWx3 arrays of any sizes -> uint8 [3, H, W] tensors on `device`."""
    return [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).to(device) for im in images]


class CueEncoder(nn.Module):
    """uint8 cue images -> [B, out_dim]: four strided convs, mean and max pooled."""

    def __init__(self, out_dim: int = 64, size: int = 64, width: int = 32):
        super().__init__()
        self.size = size
        chans = [3, width // 2, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(4, c_out), nn.SiLU()]
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Linear(4 * width, out_dim)

    def preprocess(self, images: list[torch.Tensor]) -> torch.Tensor:
        resized = [
            F.interpolate(im[None].float(), size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
            for im in images
        ]
        return (torch.cat(resized) / 255.0 - 0.5) / 0.25

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        h = self.convs(self.preprocess(images))
        return self.proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))


@dataclass(frozen=True)
class ClipFrameConfig:
    """CLIP ViT-B/32 by default; tests shrink width and depth, which keeps every key name."""

    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    embed_dim: int = 512
    temporal_layers: int = 2
    temporal_heads: int = 8


class ClipFrameNet(nn.Module):
    def __init__(self, config: ClipFrameConfig):
        super().__init__()
        from open_clip.model import QuickGELU
        from open_clip.transformer import VisionTransformer

        self.config = config
        self.model = VisionTransformer(
            image_size=config.image_size,
            patch_size=config.patch_size,
            width=config.width,
            layers=config.layers,
            heads=config.heads,
            mlp_ratio=4.0,
            output_dim=config.embed_dim,
            act_layer=QuickGELU,
        )
        layer = nn.TransformerEncoderLayer(
            config.embed_dim, config.temporal_heads, 4 * config.embed_dim, dropout=0.0, batch_first=True
        )
        self.temporal_transformer = nn.TransformerEncoder(layer, config.temporal_layers, enable_nested_tensor=False)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: list[torch.Tensor]) -> torch.Tensor:
        """CLIP's transform: bicubic shortest-edge resize, centre crop, CLIP mean/std."""
        from torchvision.transforms.v2 import functional as TF

        size = self.config.image_size
        out = []
        for im in images:
            x = TF.resize(im[None], [size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
            out.append(TF.center_crop(x, [size, size]))
        return ((torch.cat(out).float() / 255.0) - self.mean) / self.std

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        """One cue per source -> [B, embed_dim] (a one-frame clip through the temporal Transformer)."""
        frames = self.model(self.preprocess(images)).unsqueeze(1)
        return self.temporal_transformer(frames).mean(dim=1)
