"""DAVIS's frame network (`modules/networks.py` `Clip`): CLIP's image tower, then a temporal Transformer.

Each video frame is encoded by OpenAI CLIP's ViT (`encode_image`); the
sequence of frame embeddings goes through a torch `nn.Transformer` (3 encoder
layers, 1 decoder layer, 8 heads, batch-first) as both source and target, and
the U-Net averages the result over frames. Module names follow the official
file: `model.visual.*` (CLIP's image tower) and `temporal_transformer.*`.

Frames are prepared as DAVIS's evaluation transform does: bicubic resize of
the shorter side on the PIL image, centre crop, ImageNet mean/std. DAVIS
samples 11 frames at stride 2 from a video; avbench hands one still cue per
source, which becomes a clip of `num_frames` copies of that still.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FrameConfig:
    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    embed_dim: int = 512
    temporal_ff: int = 2048
    num_frames: int = 11
    temporal_heads: int = 8
    temporal_encoder_layers: int = 3
    temporal_decoder_layers: int = 1

    @property
    def heads(self) -> int:
        """OpenAI CLIP's rule: one head per 64 channels."""
        return max(1, self.width // 64)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [tokens, batch, width] (CLIP's sequence-first layout)."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class TransformerStack(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(*(ResidualAttentionBlock(width, heads) for _ in range(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    """CLIP's ViT: patch conv, class token, learned positions, pre/post LayerNorm, projection of the class token."""

    def __init__(self, config: FrameConfig):
        super().__init__()
        width, grid = config.width, config.image_size // config.patch_size
        self.conv1 = nn.Conv2d(3, width, config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(width**-0.5 * torch.randn(width))
        self.positional_embedding = nn.Parameter(width**-0.5 * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = TransformerStack(width, config.layers, config.heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(width**-0.5 * torch.randn(width, config.embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(images).flatten(2).transpose(1, 2)  # [B, patches, width]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding)
        x = self.transformer(x.transpose(0, 1)).transpose(0, 1)
        return self.ln_post(x[:, 0, :]) @ self.proj


class ClipImageTower(nn.Module):
    """Holds the tower as `visual`, the attribute name it has inside OpenAI's CLIP."""

    def __init__(self, config: FrameConfig):
        super().__init__()
        self.visual = VisionTransformer(config)


class FrameNet(nn.Module):
    def __init__(self, config: FrameConfig):
        super().__init__()
        self.config = config
        self.model = ClipImageTower(config)
        self.temporal_transformer = nn.Transformer(
            d_model=config.embed_dim,
            nhead=config.temporal_heads,
            num_encoder_layers=config.temporal_encoder_layers,
            num_decoder_layers=config.temporal_decoder_layers,
            dim_feedforward=config.temporal_ff,
            batch_first=True,
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 HxWx3 -> float [3, size, size]: PIL bicubic shorter-side resize, centre crop, ImageNet norm."""
        size = self.config.image_size
        pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
        w, h = pil.size
        if (w <= h and w != size) or (h < w and h != size):
            new_w, new_h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
            pil = pil.resize((new_w, new_h), Image.BICUBIC)
            w, h = new_w, new_h
        top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
        pil = pil.crop((left, top, left + size, top + size))
        x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x.to(self.mean.device) - self.mean) / self.std

    def clip_of_still(self, image: np.ndarray) -> torch.Tensor:
        """One cue image -> [3, num_frames, size, size], the video clip the network expects."""
        frame = self.preprocess(image)
        return frame[:, None].expand(-1, self.config.num_frames, -1, -1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips [B, 3, frames, H, W] -> [B, embed_dim, frames] (the official `forward_multiframe(pool=False)`)."""
        b, _, frames, h, w = clips.shape
        embeddings = self.model.visual(clips.transpose(1, 2).reshape(b * frames, 3, h, w)).view(b, frames, -1)
        return self.temporal_transformer(embeddings, embeddings).transpose(1, 2)
