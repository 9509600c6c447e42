"""DINOv2 ViT-L/14 (FD-DINOv2), built by timm from the official hub checkpoint, fed as dgm-eval feeds it.

Reference: layer6ai-labs/dgm-eval, `dgm_eval/models/dinov2.py`. dgm-eval loads
`torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')` and transforms each
PIL image with `Resize((224, 224), BICUBIC)` (PIL's own bicubic, so antialiased,
to a square whatever the aspect ratio, no crop), `ToTensor()` and ImageNet
mean/std; `dgm_eval/representations.py` keeps the model's output unnormalised,
which for the hub model is `head(x_norm_clstoken)` with an identity head: the
CLS token after the final LayerNorm, 1024-d.

avbench resizes with PIL too (image by image, then batched), so its input
tensors equal dgm-eval's bit for bit. The module is timm's
`vit_large_patch14_dinov2` (same blocks, LayerScale, LayerNorm eps 1e-6 and
CLS-token pooling as facebookresearch/dinov2 `dinov2/models/vision_transformer.py`),
built at 224x224 and filled from the publisher's `dinov2_vitl14_pretrain.pth`
state dict through timm's own checkpoint filter. One step is not left to timm:
the hub model stores positional embeddings for a 37x37 grid and, at 224 px,
resamples them on every call by `interpolate_pos_encoding` (bicubic, no
antialias, scale factor (16 + 0.1) / 37); timm would resample them once with
antialias at load. The loader resamples them once the hub's way, so the
embeddings equal the hub's. Nothing here downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import CheckpointError, WeightsError
from .base import BackboneSpec
from .catalog import IMAGENET_MEAN, IMAGENET_STD

TIMM_ARCH = "vit_large_patch14_dinov2"
IMAGE_SIZE = 224
PATCH_SIZE = 14
HUB_INTERPOLATE_OFFSET = 0.1  # dinov2 vision_transformer.py: "a small number to avoid floating point error"


def hub_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """The hub model's `interpolate_pos_encoding` for a square input of `grid` x `grid` patches, done once."""
    dim = pos_embed.shape[-1]
    source = int(round((pos_embed.shape[1] - 1) ** 0.5))
    if source * source != pos_embed.shape[1] - 1:
        raise CheckpointError(f"DINOv2 pos_embed {tuple(pos_embed.shape)} is not a CLS token plus a square grid")
    if source == grid:
        return pos_embed
    patches = pos_embed[:, 1:].float().reshape(1, source, source, dim).permute(0, 3, 1, 2)
    scale = float((grid + HUB_INTERPOLATE_OFFSET) / source)
    patches = torch.nn.functional.interpolate(patches, scale_factor=(scale, scale), mode="bicubic")
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat([pos_embed[:, :1].float(), patches], dim=1).to(pos_embed.dtype)


def pil_resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> uint8 [B, 3, size, size], each image resized by PIL's bicubic (torchvision's PIL path)."""
    arrays = images.permute(0, 2, 3, 1).cpu().numpy()
    resized = [np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC)) for a in arrays]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2)


class Dinov2Extractor:
    """A loaded DINOv2 ViT-L/14 (an avbench `Extractor`)."""

    def __init__(self, name: str, module: torch.nn.Module, preprocessing: str, device: torch.device):
        self.name = name
        self.module = module.eval().to(device)
        self.preprocessing = preprocessing
        self.weights_sha256: str | None = None  # set by the caller, who verified the file
        self.device = device
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> float32 [B, 3, 224, 224]: PIL bicubic to 224x224, /255, ImageNet mean/std."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: expected uint8 [B, 3, H, W] images, got {images.dtype} {tuple(images.shape)}"
            )
        x = pil_resize_batch(images, IMAGE_SIZE).to(self.device).to(torch.float32).div(255)
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 [B, 3, H, W] -> {"embedding": the CLS token after the final norm, float32 [B, 1024]}."""
        return {"embedding": self.module(self.preprocess(images)).float()}


def build_module(state: dict) -> torch.nn.Module:
    """timm's ViT-L/14 DINOv2 at 224x224 with the hub state dict `state` (publisher's key layout)."""
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    if "pos_embed" not in state or "mask_token" not in state:
        raise CheckpointError(
            "not a DINOv2 hub checkpoint: pos_embed and mask_token missing "
            f"(first keys: {', '.join(list(state)[:5]) or 'none'})"
        )
    state = dict(state, pos_embed=hub_pos_embed(state["pos_embed"], IMAGE_SIZE // PATCH_SIZE))
    with torch.device("meta"):
        module = timm.create_model(TIMM_ARCH, pretrained=False, img_size=IMAGE_SIZE, num_classes=0)
    try:
        module.load_state_dict(checkpoint_filter_fn(state, module), strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"the state dict does not fit DINOv2 ViT-L/14 ({' '.join(str(exc).split())})") from None
    return module


def load_dinov2(spec: BackboneSpec, weights_path, device) -> Dinov2Extractor:
    """Build `spec`'s DINOv2 from a local `dinov2_vitl14_pretrain.pth` (never downloads)."""
    if weights_path is None or not Path(weights_path).is_file():
        raise WeightsError(f"backbone {spec.name!r}: weights file {weights_path!s} does not exist")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a plain state dict
        raise CheckpointError(
            f"backbone {spec.name!r}: {weights_path} is not a plain tensor state dict ({exc})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"backbone {spec.name!r}: {weights_path} holds a {type(state).__name__}, not a state dict"
        )
    try:
        module = build_module(state)
    except CheckpointError as exc:
        raise CheckpointError(f"backbone {spec.name!r}: {weights_path}: {exc}") from None
    return Dinov2Extractor(spec.name, module.float(), spec.preprocessing, torch.device(device))
