"""What a backbone is: a named, pinned feature extractor.

A backbone's name encodes architecture and preprocessing
(`inception-v3-compat`, `clip-vit-b32-openai`); the name goes into every
metric it feeds and into every feature-cache key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: importing a spec must not import torch
    import numpy as np
    import torch


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry (entry-point group `avbench.backbones`)."""

    name: str
    kind: str  # "clip" | "inception" | "audio"
    weights: str | None  # name of the entry in avbench.weights, None if the backbone needs none
    preprocessing: str  # human-readable, part of the cache key
    loader: str  # "module:function"(spec, weights_path, device) -> Extractor
    description: str = ""
    image_backbone: str | None = None  # audio towers: the image space they embed into
    sample_rate: int | None = None  # audio towers: the rate they expect (None: the suite's)


class Extractor(Protocol):
    """A loaded backbone. Every feature pass goes through `encode_images`."""

    name: str
    preprocessing: str
    weights_sha256: str | None
    device: torch.device

    def encode_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 [B, 3, H, W] -> named feature tensors [B, D] (e.g. 'embedding', '2048', 'logits_unbiased')."""


class ClipExtractor(Extractor, Protocol):
    logit_scale: float

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """Prompts -> float [P, D] (not normalised)."""


class AudioExtractor(Protocol):
    name: str
    sample_rate: int
    weights_sha256: str | None

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """float32 [B, T] mono at `sample_rate` -> [B, D] in its image backbone's space."""
