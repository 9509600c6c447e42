"""Wav2CLIP (Wu et al., ICASSP 2022): the audio tower MACS's AIS uses, in CLIP ViT-B/32's image space.

A faithful loader of PyPI `wav2clip==0.1.0` (descriptinc/lyrebird-wav2clip), written from its source
(`wav2clip/model/resnet.py`, `wav2clip/model/encoder.py`) rather than importing it: the package
imports torchaudio at module level (it cannot be imported beside torch 2.14.1 here, and pinning it
would force another torch) and librosa, and `get_model()` fetches its weights from the network.

What the package computes for one clip x (float [T] at 16 kHz), `get_model()` then `embed_audio`:
  1. power spectrogram: torchaudio `Spectrogram(n_fft=512, hop_length=353)`, i.e. win_length 512,
     the periodic Hann window stored in the checkpoint (`audio_encoder.spectrogram.window`),
     centred with reflect padding, onesided, |STFT|^2, no normalisation -> [1, 257, frames];
  2. log(S + 1e-7), then (S - mean) / (std + 1e-9) with the unbiased std, both over the whole
     input tensor: `embed_audio` is called one clip at a time (MACS evaluation/ais.py), so avbench
     standardises each clip on its own, which also keeps features independent of the batch;
  3. a ResNet-18 (BasicBlock [2, 2, 2, 2], 1 input channel, 7x7 stride-2 stem, max-pool, global
     average pool) -> 512;
  4. the "transform" MLP: Linear(512, 512), ReLU, Dropout(0.1) (inactive in eval), Linear(512, 512).
Checkpoint layout (`Wav2CLIP.pt`, a flat torch state dict): `audio_encoder.<resnet keys>` (including
`audio_encoder.spectrogram.window`) and `audio_transform.sequential.{0,3}.{weight,bias}`; other
prefixes (the pre-training's image transform and loss) are ignored, as the package ignores them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from .base import BackboneSpec
from .layouts import read_tensors

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 353
LOG_EPS = 1e-7
STD_EPS = 1e-9
EMBEDDING = 512
ENCODER_PREFIX = "audio_encoder."
TRANSFORM_PREFIX = "audio_transform."


class Wav2ClipTower(nn.Module):
    """The ResNet-18 audio encoder plus the transform MLP, named as the checkpoint names them."""

    def __init__(self):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, ResNet

        encoder = ResNet(BasicBlock, [2, 2, 2, 2])
        encoder.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        encoder.fc = nn.Identity()
        encoder.register_buffer("window", torch.hann_window(N_FFT))
        self.encoder = encoder
        self.transform = nn.Sequential(
            nn.Linear(EMBEDDING, EMBEDDING), nn.ReLU(), nn.Dropout(0.1), nn.Linear(EMBEDDING, EMBEDDING)
        )

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """float32 [B, T] -> standardised log power spectrogram [B, 1, 257, frames], each clip on its own."""
        spec = torch.stft(
            audio,
            N_FFT,
            hop_length=HOP,
            win_length=N_FFT,
            window=self.encoder.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        x = torch.log(spec.abs().pow(2) + LOG_EPS)
        mean = x.mean(dim=(1, 2), keepdim=True)
        std = x.std(dim=(1, 2), keepdim=True)
        return ((x - mean) / (std + STD_EPS)).unsqueeze(1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.transform(self.encoder(self.features(audio)))


def official_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every key the package reads from `Wav2CLIP.pt`, with its shape and dtype."""
    tower = Wav2ClipTower()
    state = {
        **{
            ENCODER_PREFIX + ("spectrogram.window" if k == "window" else k): v
            for k, v in tower.encoder.state_dict().items()
        },
        **{TRANSFORM_PREFIX + "sequential." + k: v for k, v in tower.transform.state_dict().items()},
    }
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items()}


def check_layout(state: dict, where: str) -> None:
    """Refuse a state dict that lacks a key the package reads, or holds one of another shape or kind."""
    layout = official_layout()
    ours = {k: v for k, v in state.items() if k.startswith((ENCODER_PREFIX, TRANSFORM_PREFIX))}
    missing = sorted(set(layout) - set(ours))
    unexpected = sorted(set(ours) - set(layout))
    if missing or unexpected:
        raise WeightsError(
            f"{where} is not in Wav2CLIP's layout: missing {missing[:4]}, unexpected {unexpected[:4]} "
            f"({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, (shape, dtype) in layout.items():
        value = ours[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise WeightsError(f"{where}: {key} has shape {got}, Wav2CLIP's is {shape}")
        if value.is_floating_point() != dtype.is_floating_point:
            raise WeightsError(f"{where}: {key} is {value.dtype}, Wav2CLIP's is {dtype}")


def read_state(path: Path, where: str) -> dict:
    """The checkpoint as a plain tensor dict (no code runs), refused unless in Wav2CLIP's layout."""
    state = read_tensors(path, where)
    check_layout(state, where)
    return state


def load_tower(state: dict) -> Wav2ClipTower:
    """A tower with the checkpoint's weights (layout already checked)."""
    tower = Wav2ClipTower()
    encoder = {
        ("window" if k == "spectrogram.window" else k): v
        for k, v in ((k[len(ENCODER_PREFIX) :], v) for k, v in state.items() if k.startswith(ENCODER_PREFIX))
    }
    transform = {
        k[len(TRANSFORM_PREFIX) + len("sequential.") :]: v for k, v in state.items() if k.startswith(TRANSFORM_PREFIX)
    }
    tower.encoder.load_state_dict(encoder, strict=True)
    tower.transform.load_state_dict(transform, strict=True)
    return tower.eval()


class Wav2ClipExtractor:
    """A loaded Wav2CLIP tower (an `AudioExtractor`)."""

    def __init__(self, name: str, tower: Wav2ClipTower, device: torch.device):
        self.name = name
        self.sample_rate = SAMPLE_RATE
        self.weights_sha256: str | None = None  # set by the caller, who verified the file
        self.device = device
        self.tower = tower.to(device)

    @torch.inference_mode()
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """float32 [B, T] mono at 16 kHz -> float32 [B, 512] in CLIP ViT-B/32's image space, not normalised."""
        if audio.ndim != 2 or not audio.dtype.is_floating_point:
            raise ValueError(f"{self.name}: expected float [B, T] audio, got {audio.dtype} {tuple(audio.shape)}")
        return self.tower(audio.to(self.device, torch.float32)).float()


def load_wav2clip(spec: BackboneSpec, weights_path, device) -> Wav2ClipExtractor:
    """Build the tower from a local `Wav2CLIP.pt` (never downloads)."""
    if weights_path is None or not Path(weights_path).is_file():
        raise WeightsError(f"backbone {spec.name!r}: weights file {weights_path!s} does not exist")
    state = read_state(Path(weights_path), f"backbone {spec.name!r}")
    return Wav2ClipExtractor(spec.name, load_tower(state), torch.device(device))
