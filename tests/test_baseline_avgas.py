"""AV-GAS adapter: checkpoint layout, safe loading, slot semantics, shipped synth weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avbench.baselines.avgas import model as avgas
from avbench.baselines.common.biggan import BigGANGenerator, GeneratorConfig
from avbench.baselines.common.checkpoint_io import save_weights
from avbench.baselines.common.generation import side_by_side
from avbench.baselines.common.spectrogram import LogSpectrogram
from avbench.checkpoints import file_sha256
from avbench.errors import CheckpointError
from avbench.models.base import Batch
from avbench.suites.spec import load_suite
from avbench.synth.world import CLASSES, World

TINY_GENERATOR = GeneratorConfig(resolution=64, ch=4, dim_z=40, feature_dim=96, shared_dim_feat=32, attention=(32,))
SMALL = avgas.AVGASConfig(
    avgas.SYNTH.spectrogram,
    avgas.SeparatorConfig(avgas.SYNTH.separator.trunk, slots=3, hidden=48, feature_dim=96),
    TINY_GENERATOR,
)


def _random_state(net: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A state dict with every tensor random (running statistics and power-iteration vectors included)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = tensor.clone()
        elif name.endswith(("running_var", "stored_var")):
            state[name] = torch.rand(tensor.shape, generator=gen) + 0.5
        else:
            state[name] = torch.randn(tensor.shape, generator=gen) * (0.05 if tensor.ndim > 1 else 0.5)
    return state


def _batch(audio: torch.Tensor, seeds: list[int], sources: list[int]) -> Batch:
    return Batch(
        item_ids=[f"i{k}" for k in range(len(seeds))], audio=audio, sample_rate=16000, seeds=seeds, num_sources=sources
    )


def _direct(
    config: avgas.AVGASConfig, state: dict, audio: torch.Tensor, batch: Batch, per_item: list[int]
) -> torch.Tensor:
    """Generator output from the state loaded straight into a Separator and a BigGANGenerator."""
    separator = avgas.Separator(config.separator).eval()
    separator.load_state_dict({k[len("separator.") :]: v for k, v in state.items() if k.startswith("separator.")})
    generator = BigGANGenerator(config.generator).eval()
    generator.load_state_dict({k[len("generator.") :]: v for k, v in state.items() if k.startswith("generator.")})
    with torch.no_grad():
        slots = separator(LogSpectrogram(config.spectrogram)(audio))
        features = torch.cat([F.normalize(slots[i, :n], dim=-1) for i, n in enumerate(per_item)])
        z = torch.cat(
            [torch.randn(n, config.generator.dim_z, generator=batch.generator(i)) for i, n in enumerate(per_item)]
        )
        return generator(z, features)


def _uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _audio(items: int, seconds: float, seed: int = 4) -> torch.Tensor:
    return torch.from_numpy(
        np.random.default_rng(seed).standard_normal((items, int(16000 * seconds))).astype(np.float32) * 0.3
    )


def test_paper_configuration_from_plain_state_dict(tmp_path):
    """A torch.save'd dict with avbench's names and no metadata is read as the paper configuration."""
    state = _random_state(avgas.AVGASNet(avgas.PAPER), 0)
    assert state["separator.slot_heads.1.2.weight"].shape == (2048, 512)
    assert state["generator.linear.weight"].shape == (16 * 96 * 16, 20)
    path = tmp_path / "avgas_paper.pth"
    torch.save(state, path)
    model = avgas.AVGAS.from_checkpoint(path)
    audio = _audio(1, 1.0)
    batch = _batch(audio, [7], [1])
    images = model.generate_per_source(batch)
    del model
    expected = _direct(avgas.PAPER, state, audio, batch, [1])
    assert images[0][0].shape == (128, 128, 3)
    np.testing.assert_array_equal(images[0][0], _uint8(expected)[0])


def test_safetensors_with_config_metadata(tmp_path):
    state = _random_state(avgas.AVGASNet(SMALL), 1)
    path = tmp_path / "avgas_small.safetensors"
    save_weights(state, path, avgas.NAME, SMALL)
    model = avgas.AVGAS.from_checkpoint(path)
    assert model.net.config == SMALL
    assert model.checkpoint_sha256 == file_sha256(path)
    audio = _audio(2, 2.0)
    batch = _batch(audio, [3, 9], [2, 3])
    per_source = model.generate_per_source(batch)
    assert [len(images) for images in per_source] == [2, 3]
    expected = _uint8(_direct(SMALL, state, audio, batch, [2, 3]))
    np.testing.assert_array_equal(np.stack([im for images in per_source for im in images]), expected)
    scenes = model.generate(_batch(audio, [3, 9], [2, 3]))
    every_slot = _direct(SMALL, state, audio, batch, [3, 3]).split(3)
    expected_scenes = _uint8(torch.stack([side_by_side(images) for images in every_slot]))
    np.testing.assert_array_equal(np.stack(scenes), expected_scenes)
    assert scenes[0].shape == (64, 64, 3)
    with pytest.raises(ValueError, match="3 slots"):
        model.generate_per_source(_batch(audio[:1], [1], [4]))


def test_missing_key_and_foreign_model_are_named(tmp_path):
    state = _random_state(avgas.AVGASNet(SMALL), 2)
    broken = {k: v for k, v in state.items() if k != "separator.slot_heads.1.2.bias"}
    path = tmp_path / "broken.safetensors"
    save_weights(broken, path, avgas.NAME, SMALL)
    with pytest.raises(CheckpointError, match=r"separator\.slot_heads\.1\.2\.bias"):
        avgas.AVGAS.from_checkpoint(path)
    foreign = tmp_path / "foreign.safetensors"
    save_weights(state, foreign, "sound2scene", SMALL)
    with pytest.raises(CheckpointError, match="'sound2scene' checkpoint"):
        avgas.AVGAS.from_checkpoint(foreign)
    mangled = tmp_path / "mangled.safetensors"
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(mangled),
        metadata={"avbench.model": "avgas", "avbench.config": json.dumps({"slots": 2})},
    )
    with pytest.raises(CheckpointError, match="config fields"):
        avgas.AVGAS.from_checkpoint(mangled)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_untrusted_pickle_is_refused_before_running(tmp_path):
    control = tmp_path / "control-marker"
    torch.save({"x": _Payload(control)}, tmp_path / "control.pth")
    torch.load(tmp_path / "control.pth", weights_only=False)
    assert control.exists()  # the payload is live when unpickled naively
    marker = tmp_path / "marker"
    path = tmp_path / "avgas.pth"
    torch.save({"separator.trunk.conv1.weight": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        avgas.AVGAS.from_checkpoint(path)
    assert not marker.exists()


def test_no_checkpoint_for_a_real_suite_explains():
    with pytest.raises(CheckpointError, match="no official checkpoint"):
        avgas.AVGAS.from_checkpoint(None, suite=load_suite("mixed2"))


def _world_mixtures(count: int) -> torch.Tensor:
    from avbench.items.audio import mix_sources

    world = World()
    mixtures = []
    for k in range(count):
        a, b = CLASSES[k % 10], CLASSES[(k + 3) % 10]
        mixture, _ = mix_sources(
            [world.source_audio(a, 6_000_000 + k), world.source_audio(b, 6_100_000 + k)], [0.0, 0.0], "equal-rms-mean"
        )
        mixtures.append(mixture)
    return torch.from_numpy(np.stack(mixtures))


def test_shipped_synth_weights_are_pinned_and_default():
    assert file_sha256(avgas.SYNTH_WEIGHTS) == avgas.SYNTH_WEIGHTS_SHA256
    assert avgas.SYNTH_WEIGHTS.stat().st_size <= 10 * 2**20
    model = avgas.AVGAS.from_checkpoint(None, suite=load_suite("synth-mixed2"))
    audio = _world_mixtures(3)
    together = model.generate_per_source(_batch(audio, [1, 2, 3], [2, 2, 2]))
    alone = model.generate_per_source(_batch(audio[2:], [3], [2]))
    assert all(len(images) == 2 and all(im.shape == (64, 64, 3) for im in images) for images in together)
    np.testing.assert_array_equal(together[2][1], alone[0][1])  # independent of the batch
    scenes = model.generate(_batch(audio, [1, 2, 3], [2, 2, 2]))
    assert all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in scenes)


def test_slot_loss_is_permutation_invariant():
    from avbench.baselines.avgas.train import TrainConfig, slot_loss

    gen = torch.Generator().manual_seed(0)
    targets = F.normalize(torch.randn(6, 2, 16, generator=gen), dim=-1)
    audio_targets = F.normalize(torch.randn(6, 2, 16, generator=gen), dim=-1)
    config = TrainConfig()
    aligned, order = slot_loss(targets.clone(), targets, targets, config)
    swapped, swapped_order = slot_loss(targets.flip(1), targets, targets, config)
    assert torch.allclose(aligned, swapped)
    assert order.tolist() == [0] * 6 and swapped_order.tolist() == [1] * 6
    # a wrong slot order is never rewarded: the min over orders is what an explicit loop finds
    slots = F.normalize(torch.randn(6, 2, 16, generator=gen), dim=-1)
    loss, _ = slot_loss(slots, targets, audio_targets, config)

    def infonce(query, keys, positive):
        logits = -config.tau * torch.cdist(query[None], keys)[0]
        return torch.logsumexp(logits, 0) - logits[positive]

    flat_v, flat_a = targets.reshape(-1, 16), audio_targets.reshape(-1, 16)
    expected = []
    for i in range(6):
        costs = []
        for order in ((0, 1), (1, 0)):
            costs.append(
                sum(
                    infonce(slots[i, k], flat_v, 2 * i + j) + infonce(slots[i, k], flat_a, 2 * i + j)
                    for k, j in enumerate(order)
                )
            )
        expected.append(min(costs))
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-5)
