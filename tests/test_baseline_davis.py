"""The `davis` baseline against DAVIS's official code: recorded outputs, checkpoint layout, and its synth-sep result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from avbench.baselines.davis.checkpoint import (
    SYNTH_FILE,
    SYNTH_SHA256,
    WEIGHTS_DIR,
    load_official_states,
    load_paper,
)
from avbench.baselines.davis.model import DAVIS
from avbench.baselines.davis.sampling import Diffusion, DiffusionConfig
from avbench.baselines.davis.separator import PAPER, DavisSeparator, from_architecture
from avbench.baselines.davis.spectral import SpecConfig, Spectral
from avbench.errors import CheckpointError
from avbench.models.base import Batch

FIXTURE = Path(__file__).parent / "fixtures" / "conformance" / "davis"


def _architecture() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


@pytest.fixture(scope="module")
def tiny_official() -> DAVIS:
    return DAVIS.from_checkpoint(FIXTURE, architecture=_architecture())


def test_reproduces_the_official_outputs_on_recorded_cases(tiny_official):
    with safe_open(str(FIXTURE / "cases.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["conformance"])
        cases = {key: f.get_tensor(key) for key in f.keys()}
    outputs = set(cases) - DAVIS.conformance_inputs
    assert outputs == set(DAVIS.conformance_tolerances)
    computed = tiny_official.conformance(cases, meta)
    assert outputs <= set(computed)
    for key in sorted(outputs):
        expected, actual = cases[key].double(), torch.as_tensor(computed[key]).double()
        assert actual.shape == expected.shape, key
        bound = DAVIS.conformance_tolerances[key] + DAVIS.conformance_rtol.get(key, 0.0) * expected.abs()
        worst = (actual - expected).abs()
        assert bool((worst <= bound).all()), f"{key}: max |Δ| {float(worst.max()):.3g}"


def _layout_state(file: str) -> dict[str, torch.Tensor]:
    layout = json.loads((FIXTURE / "layout.json").read_text())["files"][file]["tensors"]
    return {
        key: torch.empty(spec["shape"], dtype=getattr(torch, spec["dtype"]), device="meta")
        for key, spec in layout.items()
    }


@pytest.fixture(scope="module")
def paper_on_meta() -> DavisSeparator:
    """The full-size paper network without its gigabytes: every tensor on the meta device."""
    with torch.device("meta"):
        return DavisSeparator(PAPER)


def test_full_size_official_layout_loads_key_for_key(paper_on_meta):
    unet, frame = _layout_state("unet_best.pth"), _layout_state("frame_best.pth")
    assert (len(unet), len(frame)) == (922, 360)
    separator = paper_on_meta
    load_official_states(separator, unet, frame)  # raises on any missing, unexpected or mis-shaped key
    ignored_unet = {k for k in unet if k.startswith("time_mlp.")}
    ignored_frame = {k for k in frame if k.startswith("model.") and not k.startswith("model.visual.")}
    assert len(ignored_unet) == 4 and len(separator.net.state_dict()) == 918
    assert len(separator.cue.state_dict()) == len(frame) - len(ignored_frame)
    assert {"model.token_embedding.weight", "model.logit_scale"} <= ignored_frame


@pytest.mark.parametrize(
    "file, key",
    [
        ("unet_best.pth", "net_unet.mid_block1.block1.proj.weight"),
        ("frame_best.pth", "temporal_transformer.decoder.norm.bias"),
    ],
)
def test_a_missing_or_misshaped_key_is_named(paper_on_meta, file, key):
    unet, frame = _layout_state("unet_best.pth"), _layout_state("frame_best.pth")
    separator = paper_on_meta
    state = unet if file == "unet_best.pth" else frame
    original = state.pop(key)
    with pytest.raises(CheckpointError, match=r"missing keys: .*" + key.replace(".", r"\.")):
        load_official_states(separator, unet, frame)
    state[key] = torch.empty(original.shape[0] + 1, *original.shape[1:], device="meta")
    with pytest.raises(CheckpointError, match=r"shapes differ: " + key.replace(".", r"\.")):
        load_official_states(separator, unet, frame)
    state[key] = original
    state[key + "_extra"] = original
    with pytest.raises(CheckpointError, match=r"unexpected keys: .*" + key.replace(".", r"\.") + "_extra"):
        load_official_states(separator, unet, frame)


def test_tiny_files_are_read_as_plain_cuda_tagged_state_dicts():
    """The fixture's files are saved from cuda:0; the loader maps them to the CPU with weights_only."""
    model, hashes = load_paper(FIXTURE, from_architecture(_architecture()))
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    assert hashes == {name: manifest[name]["sha256"] for name in ("unet_best.pth", "frame_best.pth")}
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize(
    "path, value",
    [
        (("unet", "dim (build_unet(dim=...), models.py:26)"), 10**6),
        (("frame_net", "clip", "vision_width"), -1),
        (("unet", "dim_mults (unet.py:478)"), [1] * 40),
    ],
)
def test_absurd_architecture_sizes_are_refused_before_building(path, value):
    architecture = _architecture()
    section = architecture
    for part in path[:-1]:
        section = section[part]
    section[path[-1]]["tiny"] = value
    with pytest.raises(CheckpointError, match="davis config"):
        from_architecture(architecture)


def test_warp_follows_davis_base_21_grid():
    """A ramp over linear bins reads back the row positions of warpgrid: (21 ** ((y + 1) / 2) - 11) / 10."""
    spectral = Spectral(SpecConfig(sample_rate=11025, n_fft=1022, hop=256, log_bins=256))
    ramp = torch.arange(512, dtype=torch.float32)[None, :, None].expand(1, 512, 4)
    rows = spectral.to_log_frequency(ramp)[0, :, 0].double().numpy()
    y = np.linspace(-1, 1, 256)
    expected = ((21 ** ((y + 1) / 2) - 11) / 10 + 1) / 2 * 511
    np.testing.assert_allclose(rows, expected + 1e-10, atol=2e-4)


def test_synthesis_with_the_mixture_magnitude_and_phase_is_exact():
    spectral = Spectral(SpecConfig(sample_rate=11025, n_fft=1022, hop=256, log_bins=256))
    wave = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 11025)).astype(np.float32))
    spec = spectral.stft(wave)
    assert spec.shape == (2, 512, 11025 // 256 + 1)
    np.testing.assert_allclose(spectral.synthesise(spec.abs(), spec, 11025).numpy(), wave.numpy(), atol=1e-5)


@pytest.mark.parametrize("objective", ["pred_noise", "pred_x0"])
def test_ddim_with_an_exact_model_returns_the_target_and_keeps_silence(objective):
    process = Diffusion(DiffusionConfig(steps=4, objective=objective))
    target = torch.rand(2, 1, 8, 6) * 0.8 + 0.1
    mixture = torch.rand(2, 1, 8, 6)
    mixture[:, :, :2] = 1e-3  # silent rows: the estimate must be the mixture there
    generator = torch.Generator().manual_seed(0)

    def exact(state, t):
        if objective == "pred_x0":
            return target
        ab = process.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (state - ab.sqrt() * target) / (1 - ab).sqrt()

    out = process.sample(exact, mixture, lambda: torch.randn(target.shape, generator=generator))
    expected = torch.where(mixture < 2e-3, mixture, target)
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=0)


def test_real_suites_need_a_checkpoint():
    from avbench.suites.spec import load_suite

    with pytest.raises(CheckpointError, match="--checkpoint"):
        DAVIS.from_checkpoint(None, suite=load_suite("music-2mix"))


def test_shipped_weights_are_pinned_and_small():
    path = WEIGHTS_DIR / SYNTH_FILE
    assert path.stat().st_size <= 10 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SYNTH_SHA256


def _batch(items, seeds, world):
    from avbench.items.audio import mix_sources

    audio, cues = [], []
    for (a, sa), (b, sb) in items:
        mixture, _ = mix_sources([world.source_audio(a, sa), world.source_audio(b, sb)], [0.0, 0.0], "equal-rms-mean")
        audio.append(mixture)
        cues.append([world.object_image(a, sa), world.object_image(b, sb)])
    return Batch(
        item_ids=[str(i) for i in range(len(items))],
        audio=torch.from_numpy(np.stack(audio)),
        sample_rate=16000,
        seeds=list(seeds),
        num_sources=[2] * len(items),
        cues=cues,
    )


def test_outputs_depend_on_the_item_seed_only():
    from avbench.synth.world import World

    world = World(16000, 2.0)
    model = DAVIS.from_checkpoint(None)
    items = [(("dog barking", 1), ("siren wailing", 2)), (("rain falling", 3), ("bird chirping", 4))]
    together = model.separate_audio(_batch(items, [11, 12], world))
    alone = model.separate_audio(_batch(items[1:2], [12], world))[0]
    np.testing.assert_allclose(together[1], alone, atol=1e-5)  # batched float arithmetic only, no shared noise
    assert together[0].shape == (2, 32000) and together[0].dtype == np.float32
    other_seed = model.separate_audio(_batch(items[1:2], [99], world))[0]
    assert np.abs(other_seed - alone).max() > 1e-4


@pytest.mark.timeout(900)
def test_davis_beats_the_mixture_on_synth_sep(leaderboard_runs):
    records = leaderboard_runs.records("synth-sep")  # the leaderboard's runs, made with the shipped weights
    davis, mixture = records["davis"], records["mixture"]
    assert davis.model.entry == "avbench.baselines.davis.model:DAVIS"
    ours, base = davis.metric("SDR[bss-v3]"), mixture.metric("SDR[bss-v3]")
    assert ours.ci_low > base.ci_high, (ours, base)
