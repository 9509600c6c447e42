"""The built-in backbones' registry entries, without their loaders.

The entry points name these specs, so resolving a backbone (its cache key,
its weights name) imports only this module; torch, open_clip and
torch-fidelity load when `spec.loader` is called.
"""

from __future__ import annotations

from .base import BackboneSpec

CLIP_LOADER = "avbench.backbones.clip:load_clip"
INCEPTION_LOADER = "avbench.backbones.inception:load_inception"

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
INCEPTION_PREPROCESSING = "tf1-bilinear-299-noaa"


def describe_preprocessing(size: int, mean, std) -> str:
    """The cache-key string of avbench's CLIP image transform (see backbones/clip.py)."""
    fmt = lambda values: ",".join(f"{v:.8g}" for v in values)  # noqa: E731
    return (
        f"resize-shortest-{size}-bicubic-antialias-uint8round,center-crop-{size},"
        f"scale-1/255,mean=({fmt(mean)}),std=({fmt(std)})"
    )


CLIP_VIT_B32_OPENAI = BackboneSpec(
    name="clip-vit-b32-openai",
    kind="clip",
    weights="clip-vit-b32-openai",
    preprocessing=describe_preprocessing(224, OPENAI_MEAN, OPENAI_STD),
    loader=CLIP_LOADER,
    description="open_clip ViT-B-32-quickgelu with OpenAI weights (Sound2Scene's and MACS's CLIP ViT-B/32)",
)

CLIP_VIT_L14_OPENAI = BackboneSpec(
    name="clip-vit-l14-openai",
    kind="clip",
    weights="clip-vit-l14-openai",
    preprocessing=describe_preprocessing(224, OPENAI_MEAN, OPENAI_STD),
    loader=CLIP_LOADER,
    description="open_clip ViT-L-14-quickgelu with OpenAI weights",
)

INCEPTION_V3_COMPAT = BackboneSpec(
    name="inception-v3-compat",
    kind="inception",
    weights="inception-v3-compat",
    preprocessing=INCEPTION_PREPROCESSING,
    loader=INCEPTION_LOADER,
    description="torch-fidelity FeatureExtractorInceptionV3 with the TF 2015-12-05 FID weights (canonical FID/KID/IS)",
)

INCEPTION_V3_VGGSOUND = BackboneSpec(
    name="inception-v3-vggsound",
    kind="inception",
    weights="inception-v3-vggsound",
    preprocessing=INCEPTION_PREPROCESSING,
    loader=INCEPTION_LOADER,
    description=(
        "the same architecture with Sound2Scene's VGGSound-fine-tuned weights; "
        "never comparable with inception-v3-compat"
    ),
)
