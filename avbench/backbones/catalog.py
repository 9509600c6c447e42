"""The built-in backbones' and their weights files' registry entries, without loaders.

The entry points name these specs, so resolving a backbone (its cache key,
its weights name) imports only this module; torch, open_clip and
torch-fidelity load when `spec.loader` is called.
"""

from __future__ import annotations

from ..weights import WeightsEntry
from .base import BackboneSpec

CLIP_LOADER = "avbench.backbones.clip:load_clip"
INCEPTION_LOADER = "avbench.backbones.inception:load_inception"
WAV2CLIP_LOADER = "avbench.backbones.wav2clip:load_wav2clip"
CLIP_LAYOUT = "avbench.backbones.layouts:check_clip"
INCEPTION_LAYOUT = "avbench.backbones.layouts:check_inception"

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

INCEPTION_V3_COMPAT_WEIGHTS = WeightsEntry(
    name="inception-v3-compat",
    file_name="weights-inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    licence="Apache-2.0 (TensorFlow inception-2015-12-05, converted by torch-fidelity)",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    size=95_628_359,
    description=(
        "torch-fidelity's InceptionV3 state dict (the TF FID graph); same bytes as pytorch-fid's pt_inception file"
    ),
    layout=INCEPTION_LAYOUT,
)

CLIP_VIT_B32_OPENAI_WEIGHTS = WeightsEntry(
    name="clip-vit-b32-openai",
    file_name="ViT-B-32.pt",
    url="https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    licence="MIT (OpenAI CLIP)",
    sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    description="OpenAI CLIP ViT-B/32; the URL's path embeds the file's sha256 (open_clip checks it the same way)",
    layout=CLIP_LAYOUT,
)

CLIP_VIT_L14_OPENAI_WEIGHTS = WeightsEntry(
    name="clip-vit-l14-openai",
    file_name="ViT-L-14.pt",
    url="https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    licence="MIT (OpenAI CLIP)",
    sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
    description="OpenAI CLIP ViT-L/14; the URL's path embeds the file's sha256",
    layout=CLIP_LAYOUT,
)

INCEPTION_V3_VGGSOUND_WEIGHTS = WeightsEntry(
    name="inception-v3-vggsound",
    file_name="inception-v3-vggsound.pth",
    url="https://drive.google.com/file/d/1GbZ25SShTssQ-G5Ynhzsjwz6QkPWWQNm/view",
    licence="unknown (Sound2Scene authors)",
    description=(
        "Sound2Scene's Inception fine-tuned on VGGSound (kaist-ami/Sound2Scene README, 'Evaluating Sound2Scene', "
        "added for issue #2). Cannot be pinned: the README links a Google Drive file and states neither its file "
        "name, its layout nor a hash; the repository holds no code that loads it, and the file could not be "
        "inspected. avbench reads it only in torch-fidelity's InceptionV3 layout (1008-way fc) and refuses any other; "
        "import a copy with --unverified"
    ),
    layout=INCEPTION_LAYOUT,
)

DINOV2_LOADER = "avbench.backbones.dinov2:load_dinov2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CMMD_CLIP_SIZE = 336


def _fmt(values) -> str:
    return ",".join(f"{v:.8g}" for v in values)


# dgm-eval's DINOv2 transform (layer6ai-labs/dgm-eval:dgm_eval/models/dinov2.py): torchvision Resize((224, 224),
# BICUBIC) on the PIL image, so PIL's bicubic to a square whatever the aspect, then ToTensor and ImageNet mean/std;
# the feature is the model's output, the CLS token after the final LayerNorm.
DINOV2_PREPROCESSING = (
    f"pil-resize-224x224-bicubic,scale-1/255,mean=({_fmt(IMAGENET_MEAN)}),std=({_fmt(IMAGENET_STD)}),"
    "hub-pos-embed-bicubic-37to16.1,cls-token-after-norm"
)

# CMMD's image path (google-research:cmmd/io_util.py _center_crop_and_resize, cmmd/embedding.py): the central
# square, PIL bicubic to 336x336, /255, CLIP mean/std; the jax bicubic resize that follows is then the identity.
CMMD_CLIP_PREPROCESSING = (
    f"center-crop-square,pil-resize-{CMMD_CLIP_SIZE}x{CMMD_CLIP_SIZE}-bicubic,scale-1/255,"
    f"mean=({_fmt(OPENAI_MEAN)}),std=({_fmt(OPENAI_STD)})"
)

DINOV2_VITL14 = BackboneSpec(
    name="dinov2-vitl14",
    kind="dinov2",
    weights="dinov2-vitl14",
    preprocessing=DINOV2_PREPROCESSING,
    loader=DINOV2_LOADER,
    description=(
        "DINOv2 ViT-L/14 (torch.hub facebookresearch/dinov2 dinov2_vitl14) run through timm's "
        "vit_large_patch14_dinov2 at 224x224: the CLS token after the final LayerNorm, 1024-d (FD-DINOv2, dgm-eval)"
    ),
)

CLIP_VIT_L14_336_OPENAI = BackboneSpec(
    name="clip-vit-l14-336-openai",
    kind="clip",
    weights="clip-vit-l14-336-openai",
    preprocessing=CMMD_CLIP_PREPROCESSING,
    loader=CLIP_LOADER,
    description="open_clip ViT-L-14-336-quickgelu with OpenAI weights, fed as CMMD's reference code feeds it",
)

DINOV2_VITL14_WEIGHTS = WeightsEntry(
    name="dinov2-vitl14",
    file_name="dinov2_vitl14_pretrain.pth",
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
    licence="Apache-2.0 (DINOv2 code and model weights, facebookresearch/dinov2 README)",
    description=(
        "DINOv2 ViT-L/14 backbone state dict (the file torch.hub's dinov2_vitl14 loads, dinov2/hub/backbones.py). "
        "No hash is published: the file name carries none and the hub loads it without check_hash"
    ),
)

CLIP_VIT_L14_336_OPENAI_WEIGHTS = WeightsEntry(
    name="clip-vit-l14-336-openai",
    file_name="ViT-L-14-336px.pt",
    url=(
        "https://openaipublic.azureedge.net/clip/models/"
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt"
    ),
    licence="MIT (OpenAI CLIP)",
    sha256="3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
    description="OpenAI CLIP ViT-L/14@336px (open_clip pretrained.py ViT-L-14-336 'openai'); the URL embeds the sha256",
)

WAV2CLIP = BackboneSpec(
    name="wav2clip",
    kind="audio",
    weights="wav2clip",
    preprocessing=(
        "mono-16000hz,stft-512-hop-353-hann-periodic-center-reflect,power,log(x+1e-7),"
        "standardise-per-clip(unbiased-std+1e-9),resnet18-avgpool,mlp-512-512-512"
    ),
    loader=WAV2CLIP_LOADER,
    description=(
        "Wav2CLIP (Wu et al., ICASSP 2022) as PyPI wav2clip 0.1.0 computes it (MACS's AIS): ResNet-18 on the log power "
        "spectrogram plus the transform MLP, into CLIP ViT-B/32's image space"
    ),
    image_backbone="clip-vit-b32-openai",
    sample_rate=16000,
)

WAV2CLIP_WEIGHTS = WeightsEntry(
    name="wav2clip",
    file_name="Wav2CLIP.pt",
    url="https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt",
    licence="MIT (descriptinc/lyrebird-wav2clip)",
    description=(
        "The file wav2clip 0.1.0's get_model() fetches (wav2clip/__init__.py MODEL_URL, via torch.hub "
        "load_state_dict_from_url without check_hash): a flat state dict, audio_encoder.* and audio_transform.*. "
        "No hash is published: the file name carries none, the package does not check one, and the 2021 release "
        "lists no digest; import a copy with --unverified"
    ),
    layout="avbench.backbones.layouts:check_wav2clip",
)
