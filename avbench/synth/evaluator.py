"""The synthetic world's evaluator backbones: `clip-synth` and `audio-synth`.

`clip-synth` is a small open_clip model (config `avbench-synth-clip`, shipped
beside this module) trained on the world by `train_evaluator.py`; it loads
through avbench's ordinary CLIP loader, so every CLIP metric runs on it exactly
as on OpenAI's weights. `audio-synth` is a small CNN on log-mel spectrograms,
distilled into clip-synth's image space (the Wav2CLIP recipe), so AIS works.
Their specs and pinned weights are in `catalog.py`, which does not import torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..backbones.base import BackboneSpec
from ..backbones.clip import load_clip, register_open_clip_name
from ..errors import WeightsError
from .catalog import CLIP_SYNTH, F_MAX, F_MIN, HOP, N_FFT, N_MELS, SAMPLE_RATE

OPEN_CLIP_NAME = "avbench-synth-clip"
CONFIG_PATH = Path(__file__).with_name(f"{OPEN_CLIP_NAME}.json")
EMBED_DIM = 128


def register_open_clip_config() -> None:
    """Make `avbench-synth-clip` known to open_clip and map `clip-synth` onto it (idempotent)."""
    import open_clip

    if open_clip.get_model_config(OPEN_CLIP_NAME) is None:
        open_clip.add_model_config(CONFIG_PATH)
    register_open_clip_name(CLIP_SYNTH.name, OPEN_CLIP_NAME)


def load_clip_synth(spec: BackboneSpec, weights_path, device):
    """The shared open_clip loader, after registering the world's config."""
    register_open_clip_config()
    return load_clip(spec, weights_path, device)


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular HTK-mel filters, [n_fft // 2 + 1, n_mels]."""
    to_mel = lambda f: 2595.0 * torch.log10(1.0 + f / 700.0)  # noqa: E731
    edges_mel = torch.linspace(
        to_mel(torch.tensor(f_min)), to_mel(torch.tensor(f_max)), n_mels + 2, dtype=torch.float64
    )
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def _block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)


class AudioTower(nn.Module):
    """Waveform -> log-mel -> small CNN -> an embedding in clip-synth's image space."""

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("mel", mel_filterbank(N_FFT, SAMPLE_RATE, N_MELS, F_MIN, F_MAX), persistent=False)
        self.norm = nn.BatchNorm2d(1)
        self.conv = nn.Sequential(
            _block(1, 16, True), _block(16, 32, True), _block(32, 64, True), _block(64, 128, False)
        )
        self.proj = nn.Linear(256, embed_dim)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """float [B, T] -> log-mel [B, 1, mels, frames] of the clip scaled to unit RMS, so gain does not matter."""
        audio = audio / torch.sqrt(audio.pow(2).mean(dim=1, keepdim=True) + 1e-10)
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, center=True, return_complex=True)
        power = spec.real**2 + spec.imag**2
        return self.norm(torch.log(torch.einsum("bft,fm->bmt", power, self.mel) + 1e-6).unsqueeze(1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.features(audio))
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.proj(pooled)


class AudioSynthExtractor:
    """A loaded `audio-synth` tower (an `AudioExtractor`)."""

    def __init__(self, name: str, tower: AudioTower, device: torch.device):
        self.name = name
        self.sample_rate = SAMPLE_RATE
        self.weights_sha256: str | None = None  # set by the caller, who verified the file
        self.device = device
        self.tower = tower.eval().to(device)

    @torch.inference_mode()
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """float32 [B, T] mono at 16 kHz -> float32 [B, 128] in clip-synth's image space, not normalised."""
        if audio.ndim != 2 or not audio.dtype.is_floating_point:
            raise ValueError(f"{self.name}: expected float [B, T] audio, got {audio.dtype} {tuple(audio.shape)}")
        return self.tower(audio.to(self.device, torch.float32)).float()


def load_audio_synth(spec: BackboneSpec, weights_path, device) -> AudioSynthExtractor:
    """Build the audio tower from a local safetensors file (never downloads)."""
    from safetensors.torch import load_file

    if weights_path is None or not Path(weights_path).is_file():
        raise WeightsError(f"backbone {spec.name!r}: weights file {weights_path!s} does not exist")
    tower = AudioTower()
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights_path)).items()}
    try:
        tower.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"backbone {spec.name!r}: {weights_path} does not fit the audio tower ({exc})") from None
    return AudioSynthExtractor(spec.name, tower, torch.device(device))
