"""Sound2Scene adapter: front-end, official checkpoint layout, safe loading, shipped synth weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import signal

from avbench.baselines.common.audio_resnet import PAPER_AUDIO_RESNET, AudioResNet
from avbench.baselines.common.biggan import BigGANGenerator, GeneratorConfig
from avbench.baselines.common.spectrogram import PAPER_SPECTROGRAM, LogSpectrogram
from avbench.baselines.common.synth_scale import SYNTH_SPECTROGRAM
from avbench.baselines.sound2scene import model as s2s
from avbench.checkpoints import file_sha256
from avbench.errors import CheckpointError
from avbench.models.base import Batch
from avbench.suites.spec import load_suite
from avbench.synth.world import CLASSES, World

# The official layout at a width small enough for a test (IC-GAN res128 has G_ch 96).
TINY_ICGAN = GeneratorConfig(resolution=128, ch=8, dim_z=120, shared_dim_feat=512, attention=(64,))


def _biggan_training_config(config: GeneratorConfig) -> dict:
    """What BigGAN stores under state_dict_best*.pth['config'] (the fields the loader reads, plus noise)."""
    return {
        "experiment_name": "icgan_biggan_imagenet_res128",
        "resolution": config.resolution,
        "G_ch": config.ch,
        "dim_z": config.dim_z,
        "hier": True,
        "G_attn": "_".join(str(a) for a in config.attention) or "0",
        "shared_dim": 128,
        "shared_dim_feat": config.shared_dim_feat,
        "G_shared": True,
        "G_shared_feat": True,
        "instance_cond": True,
        "class_cond": False,
        "G_param": "SN",
        "z_var": 1.0,
        "batch_size": 64,
    }


def _randomise_buffers(module: torch.nn.Module, seed: int) -> None:
    """Give running statistics, power-iteration vectors and attention gains non-default values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith(("running_mean", "stored_mean", "u0")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith(("running_var", "stored_var")):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("gamma"):
                tensor.fill_(0.5)


def _save(state: dict, path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """README-style `checkpoints/` folders in both formats, built once:
    (folders by format, audio state, generator state)."""
    torch.manual_seed(0)
    audio = AudioResNet(PAPER_AUDIO_RESNET)
    _randomise_buffers(audio, 1)
    generator = BigGANGenerator(TINY_ICGAN)
    _randomise_buffers(generator, 2)
    audio_state = {f"audnet.{k}": v for k, v in audio.state_dict().items()}
    generator_state = {**generator.state_dict(), "shared.weight": torch.randn(1000, 128)}
    folders = {}
    for fmt in ("pth", "safetensors"):
        folder = tmp_path_factory.mktemp(fmt) / "checkpoints"
        icgan = folder / "icgan_biggan_imagenet_res128"
        _save(audio_state, folder / f"sound2scene.{fmt}", fmt)
        _save(generator_state, icgan / f"G_ema_best1.{fmt}", fmt)
        # IC-GAN keeps the lower best_FID: best1 here. best0 has no G_ema file, so choosing it would fail.
        torch.save(
            {"best_FID": 25.0, "itr": 1, "config": _biggan_training_config(GeneratorConfig())},
            icgan / "state_dict_best0.pth",
        )
        torch.save(
            {"best_FID": 11.5, "itr": 2, "config": _biggan_training_config(TINY_ICGAN)}, icgan / "state_dict_best1.pth"
        )
        folders[fmt] = folder
    return folders, audio_state, generator_state


def _copy(official, tmp_path):
    """A private copy of the .pth folder, for tests that break a file."""
    return shutil.copytree(official[0]["pth"], tmp_path / "checkpoints")


def _batch(audio: torch.Tensor, seeds: list[int]) -> Batch:
    return Batch(
        item_ids=[f"i{k}" for k in range(len(seeds))],
        audio=audio,
        sample_rate=16000,
        seeds=seeds,
        num_sources=[1] * len(seeds),
    )


def test_spectrogram_matches_scipy_recipe():
    rng = np.random.default_rng(3)
    wave = rng.standard_normal(37_000) * 0.4
    for config in (PAPER_SPECTROGRAM, SYNTH_SPECTROGRAM):
        tiled = np.clip(np.tile(wave, 10)[: config.clip_samples], -1.0, 1.0)
        _, _, power = signal.spectrogram(tiled, config.sample_rate, nperseg=config.nperseg, noverlap=config.noverlap)
        logpsd = np.log(power + 1e-7)
        expected = (logpsd - logpsd.mean()) / (logpsd.std() + 1e-9)
        actual = LogSpectrogram(config)(torch.from_numpy(wave).float()[None])[0, 0].numpy()
        assert actual.shape == (config.bins, config.frames)
        np.testing.assert_allclose(actual, expected, atol=2e-4)
    assert (PAPER_SPECTROGRAM.bins, PAPER_SPECTROGRAM.frames) == (257, 1004)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_official_files_load_and_match_direct_modules(official, fmt):
    folders, audio_state, generator_state = official
    folder = folders[fmt]
    model = s2s.Sound2Scene.from_checkpoint(folder)
    audio = torch.from_numpy(np.random.default_rng(5).standard_normal((1, 16000)).astype(np.float32) * 0.3)
    batch = _batch(audio, [11])
    images = model.generate(batch)

    direct_audio = AudioResNet(PAPER_AUDIO_RESNET).eval()
    direct_audio.load_state_dict({k[len("audnet.") :]: v for k, v in audio_state.items()})
    direct_generator = BigGANGenerator(TINY_ICGAN).eval()
    direct_generator.load_state_dict({k: v for k, v in generator_state.items() if k != "shared.weight"})
    with torch.no_grad():
        embedding = F.normalize(direct_audio(LogSpectrogram(PAPER_SPECTROGRAM)(audio))[0], dim=1)
        z = torch.randn(1, TINY_ICGAN.dim_z, generator=batch.generator(0))
        expected = direct_generator(z, embedding)
    low, high = (
        expected.clamp(-1, 1).amin(dim=(1, 2, 3), keepdim=True),
        expected.clamp(-1, 1).amax(dim=(1, 2, 3), keepdim=True),
    )
    scaled = (expected.clamp(-1, 1) - low) / (high - low)  # the paper default: official per-image min-max
    expected_uint8 = (scaled * 255 + 0.5).floor().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert all(image.shape == (128, 128, 3) and image.dtype == np.uint8 for image in images)
    np.testing.assert_array_equal(np.stack(images), expected_uint8)
    assert float(expected.std()) > 0.01  # a real image, not a constant
    assert model.describe()["files"] == {
        f"sound2scene.{fmt}": file_sha256(folder / f"sound2scene.{fmt}"),
        f"G_ema_best1.{fmt}": file_sha256(folder / "icgan_biggan_imagenet_res128" / f"G_ema_best1.{fmt}"),
    }


def test_missing_and_unexpected_keys_are_named(official, tmp_path):
    folder = _copy(official, tmp_path)
    broken = dict(official[1])
    del broken["audnet.layer3.1.bn2.running_var"]
    broken["audnet.extra.weight"] = torch.zeros(1)
    torch.save(broken, folder / "sound2scene.pth")
    with pytest.raises(CheckpointError) as info:
        s2s.Sound2Scene.from_checkpoint(folder)
    assert "audnet.layer3.1.bn2.running_var" in str(info.value)
    assert "audnet.extra.weight" in str(info.value)


def test_generator_key_mismatch_is_named(official, tmp_path):
    folder = _copy(official, tmp_path)
    broken = {k: v for k, v in official[2].items() if k != "blocks.3.1.gamma"}
    torch.save(broken, folder / "icgan_biggan_imagenet_res128" / "G_ema_best1.pth")
    with pytest.raises(CheckpointError, match=r"blocks\.3\.1\.gamma"):
        s2s.Sound2Scene.from_checkpoint(folder)


class _Payload:
    """Unpickling this runs code: it writes `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_untrusted_pickle_is_refused_before_running(official, tmp_path):
    folder = _copy(official, tmp_path)
    control = tmp_path / "control-marker"
    torch.save({"audnet.conv1.weight": _Payload(control)}, tmp_path / "control.pth")
    torch.load(tmp_path / "control.pth", weights_only=False)
    assert control.exists()  # the payload is live when unpickled naively

    marker = tmp_path / "marker"
    torch.save({**official[1], "audnet.conv1.weight": _Payload(marker)}, folder / "sound2scene.pth")
    with pytest.raises(CheckpointError, match="refused"):
        s2s.Sound2Scene.from_checkpoint(folder)
    assert not marker.exists()


def test_single_audio_file_and_real_suite_without_checkpoint_explain(official):
    with pytest.raises(CheckpointError, match="sound2scene.pth"):
        s2s.Sound2Scene.from_checkpoint(official[0]["pth"] / "sound2scene.pth")
    with pytest.raises(CheckpointError, match="icgan_biggan_imagenet_res128"):
        s2s.Sound2Scene.from_checkpoint(None, suite=load_suite("vggsound-single"))


def test_paper_configuration_layout():
    net = s2s.Sound2SceneNet(s2s.PAPER)
    state = net.state_dict()
    assert state["audnet.fc.weight"].shape == (2048, 512)
    assert state["audnet.conv1.weight"].shape == (64, 1, 7, 7)
    assert state["generator.shared_feat.weight"].shape == (512, 2048)
    assert state["generator.linear.weight"].shape == (16 * 96 * 16, 20)  # hierarchical z: 120 = 6 chunks of 20
    assert state["generator.blocks.3.1.theta.weight"].shape == (24, 192, 1, 1)  # attention at 64x64
    assert state["generator.output_layer.2.weight"].shape == (3, 96, 3, 3)
    assert {k.split(".")[1] for k in state if k.startswith("audnet.")} == {
        "conv1",
        "bn1",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "fc",
    }


def _world_audio(count: int) -> torch.Tensor:
    world = World()
    return torch.from_numpy(np.stack([world.source_audio(CLASSES[k], 5_000_000 + k) for k in range(count)]))


def test_shipped_synth_weights_are_pinned_and_default(tmp_path, monkeypatch):
    assert file_sha256(s2s.SYNTH_WEIGHTS) == s2s.SYNTH_WEIGHTS_SHA256
    assert s2s.SYNTH_WEIGHTS.stat().st_size <= 10 * 2**20
    model = s2s.Sound2Scene.from_checkpoint(None, suite=load_suite("synth-single"))
    audio = _world_audio(3)
    together = model.generate(_batch(audio, [1, 2, 3]))
    alone = model.generate(_batch(audio[2:], [3]))
    assert all(image.shape == (64, 64, 3) and image.dtype == np.uint8 for image in together)
    np.testing.assert_array_equal(together[2], alone[0])  # an item's image does not depend on its batch
    assert not np.array_equal(together[0], together[1])

    tampered = tmp_path / s2s.SYNTH_WEIGHTS.name
    shutil.copy(s2s.SYNTH_WEIGHTS, tampered)
    data = bytearray(tampered.read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the last weight
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(s2s, "SYNTH_WEIGHTS", tampered)
    with pytest.raises(CheckpointError, match="sha256"):
        s2s.Sound2Scene.from_checkpoint(None, suite=load_suite("synth-single"))


def test_info_nce_l2_matches_its_definition():
    from avbench.baselines.common.losses import info_nce_l2

    gen = torch.Generator().manual_seed(1)
    audio, image = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    a, v = F.normalize(audio, dim=1), F.normalize(image, dim=1)
    distances = torch.tensor([[float(torch.linalg.vector_norm(a[i] - v[j])) for j in range(5)] for i in range(5)])
    logits = -3.0 * distances
    rows = torch.stack([torch.logsumexp(logits[i], 0) - logits[i, i] for i in range(5)])
    columns = torch.stack([torch.logsumexp(logits[:, j], 0) - logits[j, j] for j in range(5)])
    assert torch.allclose(info_nce_l2(audio, image, tau=3.0), (rows + columns).mean() / 2, atol=1e-5)


def test_training_stages_are_deterministic():
    from avbench.baselines.common.image_stage import ImageStageConfig, train_generator, train_image_encoder
    from avbench.baselines.common.synth_scale import SYNTH_GENERATOR
    from avbench.baselines.common.world_data import render_world_data

    data = render_world_data(clips_per_class=2, n_pairs=6, seed=3)
    assert data.pairs.shape == (6, 2) and (data.labels[data.pairs[:, 0]] != data.labels[data.pairs[:, 1]]).all()
    config = ImageStageConfig(encoder_steps=2, generator_steps=2, batch=8, generator_batch=4)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        encoder = train_image_encoder(data, config, gen, log=lambda message: None)
        generator = train_generator(data, encoder, SYNTH_GENERATOR, config, gen, log=lambda message: None)
        runs.append({**encoder.state_dict(), **{f"g.{k}": v for k, v in generator.state_dict().items()}})
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][key], runs[1][key]) for key in runs[0])


# --- official fixtures: full-size layout, IC-GAN selection, allow-listed state files ---------------------------

FIXTURE = Path(__file__).parent / "fixtures" / "conformance" / "sound2scene"


def _meta_state(tensors: dict) -> dict:
    dtypes = {"float32": torch.float32, "int64": torch.int64}
    return {
        key: torch.empty(spec["shape"], dtype=dtypes[spec["dtype"]], device="meta") for key, spec in tensors.items()
    }


def _icgan_state(config: dict, best_fid: float) -> dict:
    """A `state_dict_best*.pth` as IC-GAN's trainer writes it (ReLU objects, a numpy scalar), from layout facts."""
    config = {
        k: (torch.nn.ReLU() if isinstance(v, dict) and v.get("python_object", "").endswith("ReLU") else v)
        for k, v in config.items()
    }
    return {
        "itr": 10,
        "epoch": 1,
        "save_num": 0,
        "save_best_num": 1,
        "best_IS": np.float64(50.0),
        "best_FID": best_fid,
        "es_epoch": 0,
        "config": config,
    }


def test_full_size_layout_is_consumed_key_for_key(tmp_path):
    layout = json.loads((FIXTURE / "layout.json").read_text())["files"]
    icgan = tmp_path / "icgan_biggan_imagenet_res128"
    icgan.mkdir()
    torch.save(_meta_state(layout["sound2scene.pth"]["tensors"]), tmp_path / "sound2scene.pth")
    generator_layout = layout["icgan_biggan_imagenet_res128/G_ema_best{0,1}.pth"]["tensors"]
    torch.save(_meta_state(generator_layout), icgan / "G_ema_best1.pth")
    config = layout["icgan_biggan_imagenet_res128/state_dict_best{0,1}.pth"]["config_values_full_size"]
    torch.save(_icgan_state(config, 30.0), icgan / "state_dict_best0.pth")
    torch.save(_icgan_state(config, 20.0), icgan / "state_dict_best1.pth")  # lower FID: best1 is selected
    with torch.device("meta"):
        net, _, files = s2s.load_official(tmp_path)
    assert set(files) == {"sound2scene.pth", "G_ema_best1.pth"}
    state = net.state_dict()
    expected = {
        **layout["sound2scene.pth"]["tensors"],
        **{f"generator.{k}": v for k, v in generator_layout.items() if k != "shared.weight"},
    }
    assert set(state) == set(expected)  # every key consumed; only IC-GAN's unused class table is dropped
    assert all(list(state[k].shape) == v["shape"] for k, v in expected.items())
    assert net.config.generator == GeneratorConfig(sn_eps=1e-6)  # the paper generator, from the stored config


def test_official_selection_takes_strictly_lower_fid_best0_on_ties(tmp_path):
    from avbench.baselines.common.icgan import select_best

    config = _biggan_training_config(TINY_ICGAN)
    torch.save(_icgan_state(config, 22.8), tmp_path / "state_dict_best0.pth")
    torch.save(_icgan_state(config, 22.8), tmp_path / "state_dict_best1.pth")
    torch.save(_icgan_state(config, 1.0), tmp_path / "state_dict_best2.pth")  # IC-GAN never looks at best2
    assert select_best(tmp_path)[0].name == "state_dict_best0.pth"
    torch.save(_icgan_state(config, 22.7), tmp_path / "state_dict_best1.pth")
    assert select_best(tmp_path)[0].name == "state_dict_best1.pth"


def test_fixture_icgan_state_needs_the_allow_list_and_selects_best1():
    from avbench.baselines.common.icgan import select_best

    state = FIXTURE / "icgan_biggan_imagenet_res128" / "state_dict_best1.pth"
    with pytest.raises(Exception, match="Unsupported global|weights_only"):
        torch.load(state, map_location="cpu", weights_only=True)
    path, config = select_best(FIXTURE)
    assert path.name == "state_dict_best1.pth"
    assert isinstance(config["G_activation"], torch.nn.ReLU) and config["G_ch"] == 4


def test_icgan_config_sizes_are_bounded_before_building(tmp_path, monkeypatch):
    from avbench.baselines.common import biggan

    built = []
    monkeypatch.setattr(biggan.BigGANGenerator, "__init__", lambda self, *a, **k: built.append(1))
    config = {**_biggan_training_config(TINY_ICGAN), "G_ch": 100_000_000}
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"audnet.fc.bias": torch.zeros(1)}, folder / "sound2scene.pth")
    torch.save(_icgan_state(config, 1.0), folder / "state_dict_best0.pth")
    torch.save({}, folder / "G_ema_best0.pth")
    with pytest.raises(CheckpointError, match=r"'G_ch' = 100000000 is outside"):
        s2s.Sound2Scene.from_checkpoint(folder)
    assert not built


def test_official_visualisation_is_per_image_min_max_and_truncation():
    from avbench.baselines.common.generation import minmax_to_uint8

    raw = torch.tensor([-0.5, 0.0, 0.25, 2.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    pixels = minmax_to_uint8(raw)[0, :, :, 0].flatten().tolist()
    # clamp to [-0.5, 1], then (x - min) / (max - min) * 255 + 0.5, truncated
    assert pixels == [int(v * 255 + 0.5) for v in (0.0, 0.5 / 1.5, 0.75 / 1.5, 1.0)]


def test_short_clips_tile_to_fill_by_default_and_ten_times_officially():
    from avbench.baselines.common.spectrogram import tile_or_cut

    clip = torch.arange(12_800.0)[None]
    assert tile_or_cut(clip, 160_000).shape[-1] == 160_000
    official = tile_or_cut(clip, 160_000, repeats=10)
    assert official.shape[-1] == 128_000 and torch.equal(official[0, 12_800:25_600], clip[0])
    assert s2s.PAPER_OPTIONS.repeats is None and s2s.OFFICIAL_OPTIONS.repeats == 10
