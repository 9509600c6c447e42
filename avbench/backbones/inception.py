"""Inception-V3 backbones, run through torch-fidelity's own module.

The canonical FID path is torch-fidelity's `inception-v3-compat`: TF1-exact
bilinear resize to 299 without antialiasing, then the TF FID graph. Images go
into that module as uint8 [B, 3, H, W], exactly as torch-fidelity's own
pipeline feeds it, so features are bit-identical to `calculate_metrics` at
the same batch size. Sound2Scene's VGGSound-fine-tuned Inception uses the same
architecture under another name: its numbers are never comparable with
`inception-v3-compat`. The specs are in `catalog.py`, so reading them does not
import torch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError, WeightsError
from .base import BackboneSpec
from .catalog import INCEPTION_PREPROCESSING

LAYERS = ("2048", "logits_unbiased")
# torch-fidelity registers its extractor under this name; it is also the name
# of its architecture, whichever weights are loaded into it.
_TORCH_FIDELITY_NAME = "inception-v3-compat"


class InceptionExtractor:
    """A loaded torch-fidelity InceptionV3 (an avbench `Extractor`)."""

    def __init__(self, name: str, module: torch.nn.Module, weights_sha256: str, device: torch.device):
        self.name = name
        self.preprocessing = INCEPTION_PREPROCESSING
        self.weights_sha256 = weights_sha256
        self.device = device
        self.module = module

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 [B, 3, H, W] -> {"2048": pool3 features, "logits_unbiased": fc without bias}, float32."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: expected uint8 [B, 3, H, W] images, got {images.dtype} {tuple(images.shape)}"
            )
        features = self.module(images.to(self.device))
        return dict(zip(LAYERS, features, strict=True))


def _check_plain_state_dict(path: Path, name: str) -> None:
    """torch-fidelity unpickles with weights_only=False; refuse anything but tensors first."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a plain state dict
        raise CheckpointError(f"backbone {name!r}: {path} is not a plain tensor state dict ({exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"backbone {name!r}: {path} holds a {type(state).__name__}, not a state dict")


def build_torch_fidelity_inception(path: Path, name: str) -> torch.nn.Module:
    """torch-fidelity's InceptionV3 with `path`'s weights; a file of another layout (keys, shapes) is refused."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    _check_plain_state_dict(path, name)
    try:
        return FeatureExtractorInceptionV3(_TORCH_FIDELITY_NAME, list(LAYERS), feature_extractor_weights_path=str(path))
    except RuntimeError as exc:
        raise WeightsError(f"backbone {name!r}: {path} does not fit torch-fidelity's InceptionV3 ({exc})") from None


def load_inception(spec: BackboneSpec, weights_path, device) -> InceptionExtractor:
    """Build torch-fidelity's InceptionV3 from a local weights file (never downloads)."""
    from ..weights import file_sha256

    if weights_path is None or not Path(weights_path).is_file():
        raise WeightsError(f"backbone {spec.name!r}: weights file {weights_path!s} does not exist")
    path = Path(weights_path)
    module = build_torch_fidelity_inception(path, spec.name)
    device = torch.device(device)
    return InceptionExtractor(spec.name, module.to(device), file_sha256(path), device)
