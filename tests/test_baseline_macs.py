"""The `macs` baseline: official file layouts, the optional-dependency boundary, and the synthetic model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avbench.baselines.macs.model import MACS, SYNTH_FILE, SYNTH_SHA256, WEIGHTS_DIR
from avbench.baselines.macs.paper import PAPER_SEPARATOR, load_mlp, load_separator
from avbench.baselines.macs.separator import MaskSeparator, SeparatorConfig
from avbench.baselines.macs.synth import significance_order
from avbench.errors import CheckpointError
from avbench.models.base import Batch

SMALL = SeparatorConfig(slots=6, sample_rate=16000, seconds=0.5, width=16)

# Key names of MACS's separator_FSD50K_full.pt, written out from its module definitions
# (Separator.model = MixITBaseModel, .unet = CustomUNet, five nested UNetBlocks).
OFFICIAL_SEPARATOR_KEYS = {
    "model.unet.in_conv.0.weight",
    "model.unet.in_conv.1.row_embed",
    "model.unet.in_conv.1.col_embed",
    "model.unet.in_conv.2.running_var",
    "model.unet.in_conv.4.weight",
    "model.unet.unet.downconv.weight",
    "model.unet.unet.downnorm.num_batches_tracked",
    "model.unet.unet.downresblock.layers.0.weight",
    "model.unet.unet.downresblock.layers.4.running_mean",
    "model.unet.unet.downresblock.senet.fc.0.weight",
    "model.unet.unet.submodule.submodule.submodule.submodule.submodule.fc.2.bias",
    "model.unet.unet.submodule.submodule.submodule.submodule.upresblock.senet.fc.2.weight",
    "model.unet.unet.upconv.weight",
    "model.unet.unet.upnorm.bias",
    "model.unet.out_conv.0.weight",
    "model.unet.out_conv.4.running_var",
    "model.unet.out_conv.6.bias",
}
OFFICIAL_MLP_SHAPES = {
    "pe": (6, 512),
    "adapter.0.weight": (512,),
    "adapter.0.bias": (512,),
    "adapter.1.weight": (2048, 512),
    "adapter.1.bias": (2048,),
    "adapter.4.weight": (768, 2048),
    "adapter.4.bias": (768,),
    "adapter.5.weight": (768,),
    "adapter.5.bias": (768,),
}
HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None


def _official_separator_state(separator: MaskSeparator) -> dict[str, torch.Tensor]:
    state = {"model." + k: v.clone() for k, v in separator.state_dict().items()}
    # What else the official file holds: CLAP (twice), the training temperature, torchaudio buffers.
    state["clap.model.audio_branch.bn0.weight"] = torch.randn(64)
    state["model.clap.model.audio_branch.bn0.weight"] = state["clap.model.audio_branch.bn0.weight"].clone()
    state["model.tau2"] = torch.tensor(2.659)
    state["model.stft.window"] = torch.hann_window(400)
    state["model.istft.window"] = torch.hann_window(400)
    return state


def test_importing_the_adapter_needs_no_optional_dependency():
    code = (
        "import sys, avbench.baselines.macs.model, avbench.baselines.macs.paper; "
        "print(sorted(m for m in ('diffusers', 'transformers', 'laion_clap') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(HAS_DIFFUSERS, reason="diffusers is installed, so the paper path does not refuse")
def test_paper_configuration_without_the_extra_says_how_to_install(tmp_path):
    with pytest.raises(CheckpointError, match=r"pip install 'avbench\[macs\]'"):
        MACS.from_checkpoint(tmp_path)


def test_paper_separator_is_sized_like_torchaudio_defaults_on_8_seconds():
    assert (PAPER_SEPARATOR.slots, PAPER_SEPARATOR.width) == (6, 64)
    assert PAPER_SEPARATOR.bins == 400 // 2 + 1
    assert PAPER_SEPARATOR.frames == 1 + 8 * 16000 // 200  # centred STFT of 128,000 samples, hop 200


def test_separator_file_loads_by_official_key_names(tmp_path):
    torch.manual_seed(0)
    reference = MaskSeparator(SMALL)
    state = _official_separator_state(reference)
    assert OFFICIAL_SEPARATOR_KEYS <= set(state)
    torch.save(state, tmp_path / "separator_FSD50K_full.pt")
    loaded, clap_state = load_separator(tmp_path / "separator_FSD50K_full.pt", SMALL)
    for key, tensor in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    assert set(clap_state) == {"model.audio_branch.bn0.weight"}
    audio = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, SMALL.samples)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(loaded(audio).numpy(), reference.eval()(audio).numpy(), atol=1e-6)


def test_separator_missing_key_is_named(tmp_path):
    state = _official_separator_state(MaskSeparator(SMALL))
    del state["model.unet.out_conv.6.bias"]
    torch.save(state, tmp_path / "separator.pt")
    with pytest.raises(CheckpointError, match=r"missing keys: .*out_conv\.6\.bias"):
        load_separator(tmp_path / "separator.pt", SMALL)


def test_separator_file_without_clap_is_refused(tmp_path):
    state = {k: v for k, v in _official_separator_state(MaskSeparator(SMALL)).items() if not k.startswith("clap.")}
    torch.save(state, tmp_path / "separator.pt")
    with pytest.raises(CheckpointError, match=r"no CLAP sub-module keys"):
        load_separator(tmp_path / "separator.pt", SMALL)


def test_mlp_file_loads_by_official_key_names(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) for k, shape in OFFICIAL_MLP_SHAPES.items()}
    torch.save(state, tmp_path / "LLP_mlp.pt")
    mlp = load_mlp(tmp_path / "LLP_mlp.pt")
    for key, tensor in state.items():
        assert torch.equal(mlp.state_dict()[key], tensor), key
    slots = torch.randn(2, 6, 512, generator=gen)
    tokens = mlp(slots)
    hidden = torch.nn.functional.gelu(
        torch.nn.functional.layer_norm(slots + state["pe"], (512,), state["adapter.0.weight"], state["adapter.0.bias"])
        @ state["adapter.1.weight"].T
        + state["adapter.1.bias"]
    )
    expected = torch.nn.functional.layer_norm(
        hidden @ state["adapter.4.weight"].T + state["adapter.4.bias"],
        (768,),
        state["adapter.5.weight"],
        state["adapter.5.bias"],
    )
    np.testing.assert_allclose(tokens.detach().numpy(), expected.numpy(), atol=1e-4)


def test_mlp_missing_key_is_named(tmp_path):
    state = {k: torch.zeros(shape) for k, shape in OFFICIAL_MLP_SHAPES.items() if k != "adapter.4.bias"}
    torch.save(state, tmp_path / "LLP_mlp.pt")
    with pytest.raises(CheckpointError, match=r"missing keys: adapter\.4\.bias"):
        load_mlp(tmp_path / "LLP_mlp.pt")


@pytest.mark.skipif(
    not HAS_DIFFUSERS,
    reason="diffusers is not installed (optional extra avbench[macs]); "
    "MACS's {Dataset}_unet.pt needs diffusers' UNet2DConditionModel to load",
)
def test_unet_file_loads_with_decoupled_processors(tmp_path):  # pragma: no cover - needs the optional extra
    from diffusers import UNet2DConditionModel

    from avbench.baselines.macs.paper import adapted_unet, build_unet

    tiny = UNet2DConditionModel(
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        layers_per_block=1,
        attention_head_dim=8,
        sample_size=16,
    )
    tiny.save_config(tmp_path / "unet")
    torch.manual_seed(0)
    state = adapted_unet(tmp_path).state_dict()
    assert any(k.endswith("attn2.processor.to_k_ip.weight") for k in state)
    torch.save(state, tmp_path / "LLP_unet.pt")
    loaded = build_unet(tmp_path, tmp_path / "LLP_unet.pt").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    del state[next(k for k in state if k.endswith("to_v_ip.weight"))]
    torch.save(state, tmp_path / "LLP_unet.pt")
    with pytest.raises(CheckpointError, match=r"missing keys: .*to_v_ip\.weight"):
        build_unet(tmp_path, tmp_path / "LLP_unet.pt")


def test_slots_sum_to_the_mixture():
    torch.manual_seed(0)
    separator = MaskSeparator(SeparatorConfig(slots=4, sample_rate=16000, seconds=0.5, width=4)).eval()
    audio = torch.from_numpy(np.random.default_rng(1).uniform(-0.5, 0.5, (3, 8000)).astype(np.float32))
    with torch.no_grad():
        slots = separator(audio)
    assert slots.shape == (3, 4, 8000)
    np.testing.assert_allclose(slots.sum(dim=1).numpy(), audio.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="sized for 8000 samples"):
        separator(audio[:, :7999])


def test_significance_puts_loud_mixture_like_slots_first():
    mixture = torch.tensor([[1.0, 0.0, 0.0]])
    embeddings = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.1, 0.0], [1.0, 0.0, 0.0], [0.7, 0.7, 0.0]]])
    slots = torch.tensor([[[0.5] * 4, [1.0] * 4, [1e-4] * 4, [1.0] * 4]])
    # scores: 0 * share, cos 0.995 * loud, 1.0 * near-silent, 0.707 * loud
    assert significance_order(embeddings, mixture, slots).tolist() == [[1, 3, 2, 0]]


def test_real_suites_need_a_checkpoint():
    from avbench.suites.spec import load_suite

    with pytest.raises(CheckpointError, match=r"--checkpoint FOLDER.*avbench\[macs\]"):
        MACS.from_checkpoint(None, suite=load_suite("mixed2-mini"))


def test_shipped_weights_are_pinned_and_small():
    path = WEIGHTS_DIR / SYNTH_FILE
    assert path.stat().st_size <= 10 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SYNTH_SHA256


def _batch(clips, seeds):
    from avbench.items.audio import mix_sources
    from avbench.synth.world import World

    world = World(16000, 2.0)
    audio = [
        mix_sources([world.source_audio(*c) for c in item], [0.0] * len(item), "equal-rms-mean")[0] for item in clips
    ]
    return Batch(
        item_ids=[str(i) for i in range(len(clips))],
        audio=torch.from_numpy(np.stack(audio)),
        sample_rate=16000,
        seeds=list(seeds),
        num_sources=[len(c) for c in clips],
    )


def test_synthetic_images_are_deterministic_and_batch_independent():
    model = MACS.from_checkpoint(None)
    clips = [
        [("dog barking", 1), ("siren wailing", 2)],
        [("rain falling", 3)],
        [("bird chirping", 4), ("wind blowing", 6)],
    ]
    together = model.generate(_batch(clips, [11, 12, 13]))
    alone = model.generate(_batch(clips[1:2], [12]))[0]
    assert together[1].dtype == np.uint8 and together[1].shape == (64, 64, 3)
    # batched float arithmetic may move a pixel by one grey level
    assert np.abs(together[1].astype(int) - alone.astype(int)).max() <= 1
    np.testing.assert_array_equal(model.generate(_batch(clips[1:2], [99]))[0], alone)  # the decoder draws no noise
    assert np.abs(together[0].astype(int) - alone.astype(int)).max() > 10


@pytest.mark.timeout(900)
def test_macs_runs_on_the_synthetic_suites_above_chance(tmp_path):
    import avbench

    avbench.register_model("macs", "avbench.baselines.macs.model:MACS", replace=True)  # as the entry point will
    single = avbench.evaluate(
        "macs", "synth-single", out=tmp_path / "single", cache_dir=tmp_path / "cache", limit=40, allow_small_n=True
    )
    mixed = avbench.evaluate(
        "macs", "synth-mixed2", out=tmp_path / "mixed", cache_dir=tmp_path / "cache", limit=40, allow_small_n=True
    )
    # Chance: R@1 = 1/10 over ten classes; CRS = 2/10
    # (a random top-2 holds each of the 2 present classes with p = 2/10).
    assert single.metric("R@1[clip-synth]").ci_low > 0.1
    assert mixed.metric("CRS[clip-synth]").ci_low > 0.2


# --- the full-size official layout (tests/fixtures/conformance/macs/layout.json), on meta tensors -------------

LAYOUT = Path(__file__).parent / "fixtures" / "conformance" / "macs" / "layout.json"
DTYPES = {"float32": torch.float32, "int64": torch.int64}


def _meta_file(path: Path, tensors: dict) -> dict:
    state = {k: torch.empty(v["shape"], dtype=DTYPES[v["dtype"]], device="meta") for k, v in tensors.items()}
    torch.save(state, path)
    return state


def test_full_size_separator_and_mlp_layout_is_consumed(tmp_path):
    files = json.loads(LAYOUT.read_text())["files"]
    state = _meta_file(tmp_path / "separator_FSD50K_full.pt", files["separator_FSD50K_full.pt"]["tensors"])
    _meta_file(tmp_path / "Landscape_mlp.pt", files["{dataset}_mlp.pt"]["tensors"])
    with torch.device("meta"):
        separator, clap = load_separator(tmp_path / "separator_FSD50K_full.pt", PAPER_SEPARATOR)
        mlp = load_mlp(tmp_path / "Landscape_mlp.pt")
    own = separator.state_dict()
    used = {k for k in state if k.startswith("model.unet.")}
    assert {f"unet.{k[len('model.unet.') :]}" for k in used} == set(own)  # every separator-network key, no other
    assert all(own[f"unet.{k[len('model.unet.') :]}"].shape == state[k].shape for k in used)
    ignored = set(state) - used
    assert ignored == {
        k
        for k in state
        if k.startswith(("clap.", "model.clap.", "unperm", "model.tau2", "model.stft.", "model.istft."))
    }  # the documented ignored groups
    assert len(clap) == sum(k.startswith("clap.") for k in state)
    assert {k: list(v.shape) for k, v in mlp.state_dict().items()} == {
        k: v["shape"] for k, v in files["{dataset}_mlp.pt"]["tensors"].items()
    }


@pytest.mark.skipif(
    not HAS_DIFFUSERS,
    reason="diffusers is not installed (optional extra avbench[macs]); "
    "the full-size UNet layout needs UNet2DConditionModel",
)
def test_full_size_unet_layout_is_consumed(tmp_path):
    files = json.loads(LAYOUT.read_text())["files"]
    unet_layout = files["{dataset}_unet.pt"]
    (tmp_path / "sd" / "unet").mkdir(parents=True)
    (tmp_path / "sd" / "unet" / "config.json").write_text(
        json.dumps({"_class_name": "UNet2DConditionModel", **unet_layout["unet_config"]})
    )
    _meta_file(tmp_path / "Landscape_unet.pt", unet_layout["tensors"])
    from avbench.baselines.macs.paper import build_unet

    with torch.device("meta"):
        unet = build_unet(tmp_path / "sd", tmp_path / "Landscape_unet.pt")
    assert {k: list(v.shape) for k, v in unet.state_dict().items()} == {
        k: v["shape"] for k, v in unet_layout["tensors"].items()
    }


def test_official_front_end_options():
    from avbench.baselines.macs.model import OFFICIAL_OPTIONS, MACSOptions, fit_length
    from avbench.baselines.macs.paper import sinc_resample

    short = torch.arange(1.0, 4.0)[None]
    assert fit_length(short, 7).tolist() == [[1, 2, 3, 1, 2, 3, 1]]  # avbench: tile
    assert fit_length(short, 7, OFFICIAL_OPTIONS).tolist() == [[1, 2, 3, 0, 0, 0, 0]]  # official: zero-pad at the end
    long = torch.arange(100.0)[None]
    assert fit_length(long, 10).tolist() == [list(range(10))]
    crops = {int(fit_length(long, 10, OFFICIAL_OPTIONS, [torch.Generator().manual_seed(s)])[0, 0]) for s in range(40)}
    assert len(crops) > 10 and max(crops) <= 100 - 10 - 1  # random.randint(0, T - L - 1), seeded per item
    with pytest.raises(ValueError, match="short_audio"):
        MACSOptions(short_audio="loop")
    rate = torch.arange(16000) / 16000
    up = sinc_resample(torch.sin(2 * torch.pi * 440 * rate)[None], 16000, 48000)
    expected = torch.sin(2 * torch.pi * 440 * torch.arange(48000) / 48000)
    assert up.shape == (1, 48000) and float((up[0, 300:-300] - expected[300:-300]).abs().max()) < 2e-3
