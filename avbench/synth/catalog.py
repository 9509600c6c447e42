"""The synthetic evaluator's registry entries: `clip-synth` and `audio-synth`.

Its backbone specs and pinned weights, kept apart from `evaluator.py` (the
models and loaders) so that reading them, e.g. for a cache key, does not
import torch.
"""

from __future__ import annotations

from pathlib import Path

from ..backbones.base import BackboneSpec
from ..backbones.catalog import OPENAI_MEAN, OPENAI_STD, describe_preprocessing
from ..weights import WeightsEntry

WEIGHTS_DIR = Path(__file__).with_name("weights")
CLIP_WEIGHTS_FILE = "clip_synth.safetensors"
AUDIO_WEIGHTS_FILE = "audio_synth.safetensors"

# The audio tower's front end; AUDIO_SYNTH's preprocessing string (its cache key) spells it out.
SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS, F_MIN, F_MAX = 512, 320, 64, 30.0, 8000.0

# Shipped inside the package and pinned like downloaded weights; `python -m avbench.synth.train_evaluator`
# rebuilds them bit for bit (the hashes are also in weights/SHA256SUMS).
CLIP_SYNTH_WEIGHTS = WeightsEntry(
    name="clip-synth",
    file_name=CLIP_WEIGHTS_FILE,
    sha256="be4183aa30516c429dbb6748a3fb71dc621ae5fb0563ff2034b08f8ba60cabb0",
    size=8442626,
    package_file=f"synth/weights/{CLIP_WEIGHTS_FILE}",
    licence="Apache-2.0",
    description="clip-synth evaluator trained on the embedded synthetic world",
)
AUDIO_SYNTH_WEIGHTS = WeightsEntry(
    name="audio-synth",
    file_name=AUDIO_WEIGHTS_FILE,
    sha256="9b2d4544456278120a53ffae81e3cc504a8ccebbba8c65b88f63857814d3784b",
    size=525712,
    package_file=f"synth/weights/{AUDIO_WEIGHTS_FILE}",
    licence="Apache-2.0",
    description="audio-synth tower distilled into clip-synth's image space",
)

CLIP_SYNTH = BackboneSpec(
    name="clip-synth",
    kind="clip",
    weights="clip-synth",
    preprocessing=describe_preprocessing(64, OPENAI_MEAN, OPENAI_STD),
    loader="avbench.synth.evaluator:load_clip_synth",
    description="open_clip avbench-synth-clip (ViT 64px, patch 8) trained on the embedded synthetic world",
)

AUDIO_SYNTH = BackboneSpec(
    name="audio-synth",
    kind="audio",
    weights="audio-synth",
    preprocessing=f"mono-{SAMPLE_RATE}hz,unit-rms,stft-{N_FFT}-hop-{HOP}-hann,mel-{N_MELS}-{F_MIN:g}-{F_MAX:g}hz-htk,log",
    loader="avbench.synth.evaluator:load_audio_synth",
    description="log-mel CNN distilled into clip-synth's image space (Wav2CLIP manner) on the synthetic world",
    image_backbone="clip-synth",
)
