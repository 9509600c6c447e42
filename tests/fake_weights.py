"""Random weights at real size, in each publisher's file layout, for tests that cannot download the real files.

- Wav2CLIP: `Wav2CLIP.pt`'s flat state dict (`audio_encoder.*`, `audio_transform.*`), seeded; the last layer
  is scaled so that embeddings are of order one.
- CLIP: the OpenAI state dict that open_clip reads (open_clip's own key names are OpenAI's), in fp16 as in
  OpenAI's files.
- Inception: torch-fidelity's InceptionV3 state dict, with BatchNorm statistics recomputed on random batches and
  the fc scaled by 0.02 (a randomly initialised Inception otherwise gives near-identical features for any input).
"""

from __future__ import annotations

import logging
from pathlib import Path
from unittest import mock

import torch


def wav2clip_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key wav2clip 0.1.0 reads, filled from `seed`."""
    from avbench.backbones.wav2clip import N_FFT, official_layout

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in sorted(official_layout().items()):
        if key.endswith("spectrogram.window"):
            state[key] = torch.hann_window(N_FFT)
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=dtype)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) >= 2:  # conv and linear weights: unit-variance outputs
            fan_in = int(torch.tensor(shape[1:]).prod())
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key.endswith("weight") and "bn" in key or ".downsample.1.weight" in key:
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:  # biases, running means
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    for key in ("audio_transform.sequential.3.weight", "audio_transform.sequential.3.bias"):
        state[key] *= 0.01  # random BatchNorm statistics let activations grow; embeddings of order one
    return state


def write_wav2clip(path: Path, seed: int = 0) -> Path:
    torch.save(wav2clip_state(seed), path)
    return path


def write_clip_openai(path: Path, open_clip_name: str = "ViT-B-32-quickgelu", seed: int = 0) -> Path:
    """An open_clip config at random, saved as the OpenAI state dict open_clip reads, in fp16 as OpenAI's."""
    import open_clip

    torch.manual_seed(seed)
    logging.disable(logging.WARNING)  # open_clip warns that it built the model without pretrained weights: wanted
    try:
        model = open_clip.create_model(open_clip_name)
    finally:
        logging.disable(logging.NOTSET)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
    return path


def calibrate_random_inception(net: torch.nn.Module) -> None:
    """A random Inception maps every input to nearly one feature: fresh BatchNorm statistics and a small fc
    (x 0.02, so softmax-based IS stays finite) make it discriminate. Draws from torch's global generator."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
        net.fc.weight.mul_(0.02)
        net.fc.bias.mul_(0.02)
    for bn in norms:
        bn.momentum = 0.1


def write_inception(path: Path, seed: int = 0) -> Path:
    """torch-fidelity's InceptionV3 at random, made discriminating (BN statistics, fc x 0.02)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    torch.manual_seed(seed)
    cls = tf_inception.FeatureExtractorInceptionV3
    with (
        mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: None),
        mock.patch.object(cls, "load_state_dict", lambda self, state: None),
    ):
        net = cls("inception-v3-compat", ["2048"])
    calibrate_random_inception(net)
    torch.save(net.state_dict(), path)
    return path
