"""`avbench conformance`: the adapters against cases recorded from the official code (tests/fixtures/conformance)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from avbench import conformance
from avbench.cli import app
from avbench.models.base import Model

FIXTURES = Path(__file__).parent / "fixtures" / "conformance"
S2S = FIXTURES / "sound2scene"
MACS = FIXTURES / "macs"
HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None
SLOW = os.environ.get("AVBENCH_SLOW_TESTS") == "1"
MACS_UNET_KEYS = {"unet_out", "sample_latent", "sample_noise", "sample_timesteps", "unet_latent", "unet_t"}


def _invoke(*args: str):
    return CliRunner().invoke(app, ["conformance", *map(str, args)], catch_exceptions=False)


def _write_cases(path: Path, tensors: dict, source: Path) -> None:
    with safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


@pytest.fixture(scope="module")
def s2s_run():
    """One CLI run on the sound2scene fixture (the acceptance command), as JSON."""
    result = _invoke("sound2scene", "--checkpoint", S2S, "--cases", S2S / "cases.safetensors", "--json")
    return result.exit_code, json.loads(result.stdout)


def test_sound2scene_cli_passes_every_recorded_key(s2s_run):
    code, report = s2s_run
    cases, _ = conformance.read_cases(S2S / "cases.safetensors")
    outputs = {k for k in cases if not k.endswith(".waveform")}
    assert {row["key"] for row in report["keys"]} == outputs
    failed = [row for row in report["keys"] if not row["passed"]]
    assert code == 0 and report["passed"], failed
    by_key = {row["key"]: row for row in report["keys"]}
    assert by_key["case0.z"]["max_abs"] == 0.0  # z is drawn from the recorded seed, exactly
    assert by_key["case1.image_uint8"]["tolerance"] == 1


def test_perturbed_case_file_fails_and_names_the_key(tmp_path):
    cases, _ = conformance.read_cases(S2S / "cases.safetensors")
    cases["case0.image_raw"] = cases["case0.image_raw"].clone()
    cases["case0.image_raw"][3, 1, 64, 64] += 1e-3  # 10x the tolerance, on one value of a terminal stage
    folder = shutil.copytree(S2S, tmp_path / "s2s", ignore=shutil.ignore_patterns("cases.safetensors"))
    _write_cases(folder / "cases.safetensors", cases, S2S / "cases.safetensors")
    result = _invoke("sound2scene", "--checkpoint", folder, "--cases", folder / "cases.safetensors")
    assert result.exit_code == 1
    failing = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert [line.split()[0] for line in failing] == ["case0.image_raw"]
    assert "failed: case0.image_raw" in result.stdout


def _main(monkeypatch, capsys, *args) -> tuple[int, str]:
    from avbench.cli import main

    monkeypatch.setattr("sys.argv", ["avbench", "conformance", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys):
    code, err = _main(
        monkeypatch, capsys, "sound2scene", "--checkpoint", tmp_path, "--cases", S2S / "cases.safetensors"
    )
    assert code == 2 and "config.json" in err  # no architecture config in the folder
    bare = tmp_path / "bare.safetensors"
    save_file({"x": torch.zeros(1)}, str(bare))
    code, err = _main(monkeypatch, capsys, "sound2scene", "--checkpoint", S2S, "--cases", bare)
    assert code == 2 and "'conformance' metadata" in err
    code, err = _main(monkeypatch, capsys, "sound2scene", "--checkpoint", S2S)
    assert code == 2  # --cases is required


@pytest.fixture(scope="module")
def macs_model():
    from avbench.baselines.macs.model import MACS as MACSModel

    architecture = conformance.read_architecture(MACS / "config.json")
    return MACSModel.from_checkpoint(MACS, architecture=architecture)


def _macs_check(model, drop: set[str]):
    cases, meta = conformance.read_cases(MACS / "cases.safetensors")
    kept = {k: v for k, v in cases.items() if k not in drop}
    with torch.inference_mode():
        return {r.key: r for r in conformance.check(model, kept, meta)}


def test_macs_separator_and_mlp_match_without_diffusers_parts(macs_model):
    results = _macs_check(macs_model, MACS_UNET_KEYS)
    expected = {
        "stft_real",
        "stft_imag",
        "power_spec",
        "mask_logits",
        "separated_audio",
        "mlp_out",
        "mlp_zero_out",
        "unet_encoder_hidden_states",
    }
    assert set(results) == expected
    assert all(r.passed for r in results.values()), [r for r in results.values() if not r.passed]


@pytest.mark.skipif(
    not HAS_DIFFUSERS,
    reason="diffusers is not installed (extra avbench[macs]): the adapted UNet "
    "and the DPM-Solver cannot be built, so their keys are not checked",
)
def test_macs_unet_and_scheduler_match(macs_model):
    results = _macs_check(macs_model, {"sample_latent"})  # the 20-step loop runs in the slow test below
    for key in MACS_UNET_KEYS - {"sample_latent"}:
        assert results[key].passed, results[key]


@pytest.mark.skipif(
    not (HAS_DIFFUSERS and SLOW),
    reason="the full MACS CLI run samples 20 UNet steps on a 64x64 "
    "latent (minutes on 2 cores); set AVBENCH_SLOW_TESTS=1 (needs diffusers)",
)
def test_macs_cli_passes_every_recorded_key():
    result = _invoke("macs", "--checkpoint", MACS, "--cases", MACS / "cases.safetensors")
    assert result.exit_code == 0, result.stdout


def test_macs_cli_runs_the_case_file_without_the_sampling_loop(tmp_path):
    """The CLI path for macs in CI: the recorded file minus the UNet and sampler keys (checked once, above)."""
    cases, _ = conformance.read_cases(MACS / "cases.safetensors")
    drop = MACS_UNET_KEYS
    _write_cases(
        tmp_path / "cases.safetensors", {k: v for k, v in cases.items() if k not in drop}, MACS / "cases.safetensors"
    )
    result = _invoke("macs", "--checkpoint", MACS, "--cases", tmp_path / "cases.safetensors", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["passed"], [r for r in report["keys"] if not r["passed"]]
    assert len(report["keys"]) == len(cases) - len(drop) - 3  # every key but the 3 inputs


def test_a_model_without_the_hook_fails_every_output_key():
    class Plain(Model):
        name = "plain"

    cases = {"case0.waveform": torch.zeros(4), "case0.image": torch.zeros(2)}
    results = conformance.check(Plain(), cases, {"keys": {}})
    assert [r.key for r in results] == ["case0.waveform", "case0.image"]  # no declared inputs: both are outputs
    assert all(not r.passed and r.note == "model cannot run this case" for r in results)
    with pytest.raises(Exception, match="no official architecture"):
        Plain.from_checkpoint(None, architecture={"x": 1})


def test_comparison_rules():
    ref = torch.zeros(2000, dtype=torch.uint8)
    one_off = ref.clone()
    one_off[0] = 1
    assert conformance.compare("image_uint8", ref, one_off, 1).passed  # 1 level on 0.05 % of the pixels
    two_off = ref.clone()
    two_off[:4] = 1
    assert not conformance.compare("image_uint8", ref, two_off, 1).passed  # 0.2 % of the pixels differ
    assert not conformance.compare("image_uint8", ref, one_off, 0).passed
    assert not conformance.compare("t", torch.tensor([999]), torch.tensor([998]), 0).passed
    assert conformance.compare("x", torch.ones(3), torch.ones(3) + 1e-5, 2e-5).passed
    assert not conformance.compare("x", torch.ones(3), torch.ones(3) + 3e-5, 2e-5).passed
    assert not conformance.compare("x", torch.ones(3), torch.ones(4), 1.0).passed  # shape
    assert not conformance.compare("x", torch.ones(3), torch.tensor([1.0, float("nan"), 1.0]), 1.0).passed
    big = torch.tensor([100.0, 0.0])
    assert conformance.compare("x", big, big + torch.tensor([0.02, 0.0]), 1e-2, rtol=1e-4).passed
    assert not conformance.compare("x", big, big + torch.tensor([0.0, 0.02]), 1e-2, rtol=1e-4).passed
