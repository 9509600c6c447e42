"""The `davis` baseline: spectral front-end, samplers, checkpoint layouts, and its synth-sep result."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from avbench.errors import CheckpointError
from avbench.models.base import Batch
from baselines.davis.checkpoint import SYNTH_FILE, SYNTH_SHA256, WEIGHTS_DIR, load_paper, paper_config
from baselines.davis.model import DAVIS
from baselines.davis.sampling import Diffusion, Flow, sigmoid_alpha_bar
from baselines.davis.separator import PAPER_MUSIC, DavisConfig, DavisSeparator
from baselines.davis.spectral import SpecConfig, Spectral, log_unwarp_matrix, log_warp_matrix
from baselines.davis.unet import NetConfig
from baselines.davis.visual import ClipFrameConfig

# The paper layout at toy width: every key name stays, only tensor sizes shrink.
TINY_PAPER = DavisConfig(
    spec=PAPER_MUSIC.spec,
    net=NetConfig(dim=8, mults=(1, 2), visual_dim=16, heads=2),
    objective="diffusion",
    steps=2,
    eta=1.0,
    silence_mask=True,
    visual="clip",
    clip=ClipFrameConfig(width=32, layers=1, heads=2, embed_dim=16, temporal_layers=1, temporal_heads=2),
)


def test_log_warp_reads_log_spaced_bins():
    linear, log = 512, 256
    warp = log_warp_matrix(linear, log)
    ramp = torch.arange(linear, dtype=torch.float64)  # a spectrum equal to its bin index reads back the positions
    expected = np.exp(np.arange(log) / (log - 1) * math.log(linear)) - 1
    np.testing.assert_allclose((warp @ ramp).numpy(), expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(warp.sum(dim=1).numpy(), 1.0, atol=1e-12)
    unwarp = log_unwarp_matrix(linear, log)
    log_ramp = torch.arange(log, dtype=torch.float64)
    np.testing.assert_allclose((unwarp @ log_ramp).numpy(), (log - 1) * np.log1p(np.arange(linear)) / math.log(linear), atol=1e-9)


def test_synthesis_with_the_true_magnitude_and_phase_is_exact():
    spectral = Spectral(SpecConfig(sample_rate=11025, n_fft=1022, hop=256, log_bins=256))
    wave = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 11025)).astype(np.float32))
    spec = spectral.stft(wave)
    assert spec.shape == (2, 512, 11025 // 256 + 1)
    back = spectral.synthesise(spec.abs(), spec, wave.shape[1])
    np.testing.assert_allclose(back.numpy(), wave.numpy(), atol=1e-5)
    compressed = spectral.compress(spec)
    assert compressed.shape == (2, 1, 256, spec.shape[-1]) and compressed.min() >= 0 and compressed.max() <= 1
    expected = np.clip(0.15 * np.log1p(spectral.warp.numpy() @ spec.abs().numpy()), 0, 1)
    np.testing.assert_allclose(compressed[:, 0].numpy(), expected, atol=1e-5)


def test_sigmoid_schedule_matches_its_closed_form():
    steps = 1000
    t = np.linspace(0, 1, steps + 1)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    curve = (-sig(t * 6 - 3) + sig(3)) / (sig(3) - sig(-3))
    betas = np.clip(1 - curve[1:] / curve[:-1], 0, 0.999)
    np.testing.assert_allclose(sigmoid_alpha_bar(steps).numpy(), np.cumprod(1 - betas), rtol=1e-12)


def test_ddim_without_noise_recovers_the_target_from_an_exact_denoiser():
    target = torch.rand(3, 1, 8, 5)
    process = Diffusion(steps=6, eta=0.0)
    alpha_bar = process.alpha_bar(torch.device("cpu"))

    def exact_noise(x, t):
        ab = alpha_bar[t.long()].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    np.testing.assert_allclose(process.sample(exact_noise, (1, 8, 5), gens, torch.device("cpu")).numpy(), target.numpy(), atol=1e-4)


@pytest.mark.parametrize("predicts", ["target", "velocity"])
def test_euler_flow_recovers_the_target_from_an_exact_network(predicts):
    target = torch.rand(2, 1, 6, 4)
    process = Flow(steps=3, predicts=predicts)
    keep = 1 - process.sigma_min
    start = torch.stack([torch.randn((1, 6, 4), generator=torch.Generator().manual_seed(i)) for i in range(2)])

    def exact(x, t):  # the straight path from `start` to `target`
        return target if predicts == "target" else target - keep * start

    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    out = process.sample(exact, (1, 6, 4), gens, torch.device("cpu"))
    np.testing.assert_allclose(out.numpy(), (target + process.sigma_min * start).numpy(), atol=1e-5)


def _save_official(folder, separator: DavisSeparator, prefix: str = "") -> None:
    """Write DAVIS's two files (torch.save of state dicts), keys as the released checkpoints name them."""
    torch.save({prefix + k: v for k, v in separator.net.state_dict().items()}, folder / "unet_best.pth")
    torch.save({prefix + k: v for k, v in separator.cue.state_dict().items()}, folder / "frame_best.pth")


@pytest.mark.parametrize("prefix", ["", "module."])
def test_paper_checkpoint_loads_by_official_key_names(tmp_path, prefix):
    torch.manual_seed(0)
    reference = DavisSeparator(TINY_PAPER)
    unet_keys, frame_keys = set(reference.net.state_dict()), set(reference.cue.state_dict())
    assert all(k.startswith(("net_unet.", "time_mlp.")) for k in unet_keys)
    assert all(k.startswith(("model.", "temporal_transformer.")) for k in frame_keys)
    # The CLIP image tower keeps OpenAI's names (conv1, class_embedding, transformer.resblocks..., proj).
    assert {"model.conv1.weight", "model.class_embedding", "model.positional_embedding", "model.proj",
            "model.transformer.resblocks.0.attn.in_proj_weight", "model.ln_post.weight"} <= frame_keys
    _save_official(tmp_path, reference, prefix)
    loaded, hashes = load_paper(tmp_path, TINY_PAPER)
    for name, tensor in {**reference.net.state_dict(), **reference.cue.state_dict()}.items():
        mine = {**loaded.net.state_dict(), **loaded.cue.state_dict()}[name]
        assert torch.equal(mine, tensor), name
    assert hashes["unet_best.pth"] == hashlib.sha256((tmp_path / "unet_best.pth").read_bytes()).hexdigest()
    # The loaded paper pipeline separates at 11,025 Hz, one output per cue.
    loaded.eval()
    mixture = torch.from_numpy(np.random.default_rng(1).uniform(-0.3, 0.3, (1, 11025)).astype(np.float32))
    cues = [[np.full((40, 50, 3), 200, np.uint8), np.zeros((30, 30, 3), np.uint8)]]
    (out,) = loaded.separate(mixture, cues, [torch.Generator().manual_seed(0)])
    assert out.shape == (2, 11025) and np.isfinite(out).all()


def test_frame_file_with_the_whole_clip_keeps_its_image_tower(tmp_path):
    torch.manual_seed(0)
    reference = DavisSeparator(TINY_PAPER)
    torch.save(reference.net.state_dict(), tmp_path / "unet_best.pth")
    whole = {("model.visual." + k[len("model."):] if k.startswith("model.") else k): v for k, v in reference.cue.state_dict().items()}
    whole["model.token_embedding.weight"] = torch.zeros(10, 4)  # text-tower keys are dropped
    torch.save(whole, tmp_path / "frame_best.pth")
    loaded, _ = load_paper(tmp_path, TINY_PAPER)
    assert torch.equal(loaded.cue.state_dict()["model.conv1.weight"], reference.cue.state_dict()["model.conv1.weight"])


@pytest.mark.parametrize(("file", "key"), [("unet_best.pth", "time_mlp.1.weight"), ("frame_best.pth", "temporal_transformer.layers.0.linear1.weight")])
def test_a_missing_key_is_named(tmp_path, file, key):
    reference = DavisSeparator(TINY_PAPER)
    _save_official(tmp_path, reference)
    state = torch.load(tmp_path / file, weights_only=True)
    del state[key]
    torch.save(state, tmp_path / file)
    with pytest.raises(CheckpointError, match=r"missing keys: .*" + key.replace(".", r"\.")):
        load_paper(tmp_path, TINY_PAPER)


def test_a_folder_without_the_files_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="unet_best.pth, frame_best.pth"):
        load_paper(tmp_path, TINY_PAPER)


def test_variant_file_selects_davis_flow_and_rejects_unknown_fields(tmp_path):
    assert paper_config(tmp_path) == PAPER_MUSIC
    (tmp_path / "avbench-davis.json").write_text(json.dumps({"objective": "flow", "steps": 2, "silence_mask": False}))
    config = paper_config(tmp_path)
    assert (config.objective, config.steps, config.silence_mask, config.spec.sample_rate) == ("flow", 2, False, 11025)
    (tmp_path / "avbench-davis.json").write_text(json.dumps({"objective": "flow", "guidance": 3}))
    with pytest.raises(CheckpointError, match="unknown field 'guidance'"):
        paper_config(tmp_path)


def test_real_suites_need_a_checkpoint():
    from avbench.data.suite import load_suite

    with pytest.raises(CheckpointError, match="--checkpoint"):
        DAVIS.from_checkpoint(None, suite=load_suite("music-2mix"))


def test_shipped_weights_are_pinned_and_small():
    path = WEIGHTS_DIR / SYNTH_FILE
    assert path.stat().st_size <= 10 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SYNTH_SHA256


def _batch(items, seeds, world):
    from avbench.data.audio import mix_sources

    audio, cues = [], []
    for (a, sa), (b, sb) in items:
        mixture, _ = mix_sources([world.source_audio(a, sa), world.source_audio(b, sb)], [0.0, 0.0], "equal-rms-mean")
        audio.append(mixture)
        cues.append([world.object_image(a, sa), world.object_image(b, sb)])
    return Batch(item_ids=[str(i) for i in range(len(items))], audio=torch.from_numpy(np.stack(audio)), sample_rate=16000,
                 seeds=list(seeds), num_sources=[2] * len(items), cues=cues)


def test_outputs_depend_on_the_item_seed_only():
    from avbench.synth.world import World

    world = World(16000, 2.0)
    model = DAVIS.from_checkpoint(None)
    items = [(("dog barking", 1), ("siren wailing", 2)), (("rain falling", 3), ("bird chirping", 4)), (("drum beating", 5), ("wind blowing", 6))]
    together = model.separate_audio(_batch(items, [11, 12, 13], world))
    alone = model.separate_audio(_batch(items[1:2], [12], world))[0]
    np.testing.assert_allclose(together[1], alone, atol=1e-5)  # batched float arithmetic only, no shared noise
    assert together[0].shape == (2, 32000) and together[0].dtype == np.float32
    other_seed = model.separate_audio(_batch(items[1:2], [99], world))[0]
    assert np.abs(other_seed - alone).max() > 1e-3


@pytest.mark.timeout(900)
def test_davis_beats_the_mixture_on_synth_sep(leaderboard_runs):
    records = leaderboard_runs.records("synth-sep")  # the committed leaderboard's runs, made with the shipped weights
    davis, mixture = records["davis"], records["mixture"]
    assert davis.model.entry == "baselines.davis.model:DAVIS"
    ours, base = davis.metric("SDR[bss-v3]"), mixture.metric("SDR[bss-v3]")
    assert ours.ci_low > base.ci_high, (ours, base)
