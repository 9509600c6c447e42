"""open_clip backbones: one loader for real CLIP weights and the synthetic evaluator.

Every CLIP-family backbone is built by `open_clip.create_model_and_transforms(name,
pretrained=<local file>)`, so the synthetic world's evaluator and OpenAI's weights
travel the same code path. Images are preprocessed batched in torch, on the
extractor's device, to match open_clip's PIL transform (bicubic resize of the
shortest edge, centre crop, CLIP mean/std). Against open_clip's own PIL
preprocessing the difference is at most 1 grey level per pixel before
normalisation, mean <= 0.15 (measured on noise and gradients, 37x53 to 513x255;
PIL resamples in fixed point with an 8-bit intermediate between its two passes,
torch in float with one final rounding); tests/test_clip_backbone.py pins it.
The specs themselves are in `catalog.py`, so reading them does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from ..errors import RegistryError, WeightsError
from .base import BackboneSpec
from .catalog import describe_preprocessing

# avbench backbone name -> open_clip model (config) name. OpenAI weights were
# trained with QuickGELU, and open_clip only checks that for download tags, so
# the table names the -quickgelu configs explicitly.
_OPEN_CLIP_NAMES: dict[str, str] = {
    "clip-vit-b32-openai": "ViT-B-32-quickgelu",
    "clip-vit-l14-openai": "ViT-L-14-quickgelu",
    "clip-vit-l14-336-openai": "ViT-L-14-336-quickgelu",
}


def register_open_clip_name(backbone_name: str, open_clip_name: str) -> None:
    """Tell `load_clip` which open_clip config builds `backbone_name`."""
    known = _OPEN_CLIP_NAMES.get(backbone_name)
    if known is not None and known != open_clip_name:
        raise RegistryError(
            f"backbone {backbone_name!r} already maps to open_clip model {known!r}, not {open_clip_name!r}"
        )
    _OPEN_CLIP_NAMES[backbone_name] = open_clip_name


def open_clip_name(backbone_name: str) -> str:
    """The open_clip model name registered for an avbench backbone."""
    try:
        return _OPEN_CLIP_NAMES[backbone_name]
    except KeyError:
        raise RegistryError(
            f"no open_clip model registered for backbone {backbone_name!r}; "
            f"known: {', '.join(sorted(_OPEN_CLIP_NAMES))}. Use register_open_clip_name()."
        ) from None


class ClipImageTextExtractor:
    """A loaded open_clip model with avbench's batched preprocessing (a `ClipExtractor`)."""

    def __init__(self, name: str, model: torch.nn.Module, tokenizer: Callable, device: torch.device):
        self.name = name
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.device = device
        self.weights_sha256: str | None = None  # set by the caller, who verified the file
        cfg = model.visual.preprocess_cfg
        height, width = (cfg["size"], cfg["size"]) if isinstance(cfg["size"], int) else cfg["size"]
        resize = (cfg.get("resize_mode") or "shortest", cfg.get("interpolation") or "bicubic")
        if height != width or resize != ("shortest", "bicubic"):
            raise RegistryError(
                f"backbone {name!r}: only square images with bicubic shortest-edge resize are supported, "
                f"got size {cfg['size']}, resize {resize}"
            )
        self.image_size = int(height)
        self._mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.preprocessing = describe_preprocessing(self.image_size, cfg["mean"], cfg["std"])
        self.logit_scale = float(model.logit_scale.detach().exp().item())

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> normalised float32 [B, 3, S, S] on the device."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: expected uint8 [B, 3, H, W] images, got {images.dtype} {tuple(images.shape)}"
            )
        x = images.to(self.device)
        x = TF.resize(x, [self.image_size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        x = TF.center_crop(x, [self.image_size, self.image_size])
        x = x.to(torch.float32) / 255.0
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 [B, 3, H, W] -> {"embedding": float32 [B, D]}, not normalised."""
        return {"embedding": self.model.encode_image(self.preprocess(images)).float()}

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """Prompts -> float32 [P, D], not normalised."""
        return self.model.encode_text(self.tokenizer(list(prompts)).to(self.device)).float().cpu().numpy()


class SquareCropClipExtractor(ClipImageTextExtractor):
    """CMMD's image path: the central square, PIL bicubic to the model's size, /255, CLIP mean/std.

    Reference: google-research/google-research `cmmd/io_util.py` (`_center_crop_and_resize`: a square of side
    min(w, h) at ((w - l) // 2, (h - l) // 2), then PIL `resize(..., BICUBIC)`, which antialiases) and
    `cmmd/embedding.py` (values / 255, then scenic's `normalize_image` with CLIP mean/std; its own jax bicubic
    resize to the same size is the identity). Images are resized by PIL one by one, so the tensors equal the
    reference's inputs bit for bit.
    """

    def __init__(
        self, name: str, model: torch.nn.Module, tokenizer: Callable, device: torch.device, preprocessing: str
    ):
        super().__init__(name, model, tokenizer, device)
        self.preprocessing = preprocessing

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> normalised float32 [B, 3, S, S] on the device."""
        from .dinov2 import pil_resize_batch

        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: expected uint8 [B, 3, H, W] images, got {images.dtype} {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = images[:, :, top : top + side, left : left + side]
        x = pil_resize_batch(square, self.image_size).to(self.device).to(torch.float32) / 255.0
        return (x - self._mean) / self._std


# Backbones fed by a reference implementation's own image path instead of open_clip's transform.
_SQUARE_CROP_BACKBONES = frozenset({"clip-vit-l14-336-openai"})


def load_clip(spec: BackboneSpec, weights_path, device) -> ClipImageTextExtractor:
    """Build `spec`'s open_clip model from a local weights file (never downloads)."""
    import open_clip

    model_name = open_clip_name(spec.name)
    if open_clip.get_model_config(model_name) is None:
        raise RegistryError(f"backbone {spec.name!r}: open_clip has no model config {model_name!r}")
    if weights_path is None or not Path(weights_path).is_file():
        raise WeightsError(f"backbone {spec.name!r}: weights file {weights_path!s} does not exist")
    scripted = _is_torchscript(Path(weights_path))
    if scripted and not _matches_published_hash(spec, Path(weights_path)):
        raise WeightsError(
            f"backbone {spec.name!r}: {weights_path} is a TorchScript archive that is not the published file; "
            "only OpenAI's own, verified by its sha256, is loaded as TorchScript: save a plain state dict instead"
        )
    # OpenAI distributes CLIP as TorchScript, which torch.load(weights_only=True) refuses; open_clip reads its
    # state dict through torch.jit.load, which runs no Python, and only for the file whose published hash matched.
    model, _, _ = open_clip.create_model_and_transforms(
        model_name, pretrained=str(weights_path), weights_only=not scripted
    )
    tokenizer = open_clip.get_tokenizer(model_name)
    if spec.name in _SQUARE_CROP_BACKBONES:
        return SquareCropClipExtractor(spec.name, model, tokenizer, torch.device(device), spec.preprocessing)
    return ClipImageTextExtractor(spec.name, model, tokenizer, torch.device(device))


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip holding compiled code (`<name>/code/...`), unlike a saved state dict."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def _matches_published_hash(spec: BackboneSpec, path: Path) -> bool:
    from ..weights import entry, file_sha256

    return spec.weights is not None and entry(spec.weights).matches(file_sha256(path))


class _TorchmetricsClipModel(torch.nn.Module):
    """What torchmetrics' CLIPScore reads from a transformers CLIPModel.

    `config.text_config.max_position_embeddings` must exist (torchmetrics reads
    it unguarded); it is the text context length, which the open_clip tokenizer
    already pads and truncates to.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        text_config = SimpleNamespace(max_position_embeddings=int(model.context_length))
        self.config = SimpleNamespace(text_config=text_config)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.encode_text(input_ids)


class _TorchmetricsClipProcessor:
    """Stands in for a transformers CLIPProcessor, using the extractor's preprocessing."""

    def __init__(self, extractor: ClipImageTextExtractor):
        self.extractor = extractor

    def __call__(self, images=None, text=None, return_tensors: str = "pt", padding: bool = True) -> dict:
        if images is not None:
            pixels = [self._one_image(img) for img in images]
            return {"pixel_values": torch.cat(pixels).cpu()}
        tokens = self.extractor.tokenizer(list(text))
        return {"input_ids": tokens, "attention_mask": (tokens != 0).long()}

    def _one_image(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype.is_floating_point or image.min() < 0 or image.max() > 255:
            raise ValueError("CLIPScore through avbench expects integer images in [0, 255]")
        return self.extractor.preprocess(image.to(torch.uint8).unsqueeze(0))


def torchmetrics_clip_callable(extractor: ClipImageTextExtractor) -> Callable[[], tuple]:
    """For `torchmetrics.multimodal.CLIPScore(model_name_or_path=<this>)`: the offline route.

    torchmetrics calls `model.to(device)`, `model.get_image_features(pixel_values)`,
    `model.get_text_features(input_ids, attention_mask)` and
    `processor(images=[CHW tensors] | text=[str], return_tensors="pt", padding=True)`.
    """
    return lambda: (_TorchmetricsClipModel(extractor.model), _TorchmetricsClipProcessor(extractor))
