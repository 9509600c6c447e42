"""The synthetic-world scale of the baselines' building blocks.

Same families as the paper configs, sized so that training takes minutes and
inference on a 200-item suite takes seconds on two CPU cores: a 10 ms-hop
log-spectrogram of the suites' 2 s clips, a one-block-per-stage ResNet, and a
64x64 BigGAN-style generator at width 4 without attention (at this width the
attention block would cost more than it adds).
"""

from __future__ import annotations

from .audio_resnet import AudioResNetConfig
from .biggan import GeneratorConfig
from .spectrogram import SpectrogramConfig
from .world_data import SYNTH_RATE, SYNTH_SECONDS

FEATURE_DIM = 128  # the synth image encoder's pooled feature

SYNTH_SPECTROGRAM = SpectrogramConfig(
    sample_rate=SYNTH_RATE, clip_samples=int(SYNTH_RATE * SYNTH_SECONDS), nperseg=256, noverlap=96
)
SYNTH_AUDIO_RESNET = AudioResNetConfig(widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), out_dim=FEATURE_DIM)
SYNTH_GENERATOR = GeneratorConfig(
    resolution=64, ch=4, dim_z=40, feature_dim=FEATURE_DIM, shared_dim_feat=64, attention=(), spectral_norm=False
)
