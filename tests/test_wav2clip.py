"""The Wav2CLIP backbone against wav2clip 0.1.0's own forward, and its checkpoint layout checks.

The package cannot be a test dependency: it requires torchaudio, which no release imports beside torch
2.14.1 (installing it replaces torch). So its forward was run once, unchanged but for a numpy stand-in
for torchaudio's Spectrogram, on seeded random weights in its checkpoint layout, and recorded in
`fixtures/wav2clip/reference.safetensors` (`fixtures/wav2clip/record_reference.py` says how). Here
avbench's loader reads the same weights from a `Wav2CLIP.pt`-shaped file and must agree to 1e-5.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from fake_weights import wav2clip_state
from safetensors import safe_open
from safetensors.torch import load_file

from avbench import registry, weights
from avbench.backbones.catalog import WAV2CLIP
from avbench.backbones.wav2clip import load_wav2clip
from avbench.errors import WeightsError

REFERENCE = Path(__file__).parent / "fixtures" / "wav2clip" / "reference.safetensors"


@pytest.fixture(scope="module")
def reference():
    with safe_open(str(REFERENCE), "pt") as handle:
        metadata = handle.metadata()
    return load_file(str(REFERENCE)), int(metadata["seed"]), json.loads(metadata["reference"])


@pytest.fixture(scope="module")
def extractor(reference, tmp_path_factory):
    _, seed, _ = reference
    path = tmp_path_factory.mktemp("wav2clip") / "Wav2CLIP.pt"
    torch.save(wav2clip_state(seed), path)
    return load_wav2clip(WAV2CLIP, path, "cpu")


def test_embeddings_equal_the_packages_forward(reference, extractor):
    tensors, _, facts = reference
    assert facts["package"].startswith("wav2clip 0.1.0")
    ours = extractor.encode_audio(tensors["audio"])
    assert ours.shape == (3, 512)
    assert (ours - tensors["embedding"]).abs().max().item() <= 1e-5
    assert tensors["embedding"].abs().max().item() > 0.5  # the comparison is on numbers of order one


def test_each_clip_is_standardised_on_its_own(reference, extractor):
    audio = reference[0]["audio"]
    together = extractor.encode_audio(audio)
    alone = torch.cat([extractor.encode_audio(audio[i : i + 1]) for i in range(len(audio))])
    assert (together - alone).abs().max().item() <= 1e-5


def test_the_backbone_embeds_into_clip_b32_at_16_khz():
    spec = registry.backbones.get("wav2clip")
    facts = (spec.kind, spec.image_backbone, spec.sample_rate, spec.weights)
    assert facts == ("audio", "clip-vit-b32-openai", 16000, "wav2clip")
    entry = weights.entry("wav2clip")
    assert entry.url == "https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt"
    assert entry.file_name == "Wav2CLIP.pt" and not entry.pinned and "No hash is published" in entry.description


def test_files_of_another_layout_are_refused(tmp_path):
    state = wav2clip_state(1)
    cases = {
        "missing": {k: v for k, v in state.items() if not k.startswith("audio_transform.sequential.3")},
        "shape": {**state, "audio_encoder.conv1.weight": torch.zeros(64, 3, 7, 7)},
        "extra": {**state, "audio_encoder.fc.weight": torch.zeros(309, 512)},
    }
    messages = {"missing": "2 missing", "shape": "has shape", "extra": "1 unexpected"}
    for name, broken in cases.items():
        torch.save(broken, tmp_path / f"{name}.pt")
        with pytest.raises(WeightsError, match=messages[name]):
            load_wav2clip(WAV2CLIP, tmp_path / f"{name}.pt", "cpu")
    torch.save({**state, "image_transform.sequential.0.weight": torch.zeros(512, 512)}, tmp_path / "full.pt")
    load_wav2clip(WAV2CLIP, tmp_path / "full.pt", "cpu")  # the pre-training's other heads are ignored, as there


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_checkpoint_with_code_is_refused_unread(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"audio_encoder.conv1.weight": _Payload()}, handle)
    with pytest.raises(WeightsError, match="not a plain tensor state dict"):
        load_wav2clip(WAV2CLIP, path, "cpu")
