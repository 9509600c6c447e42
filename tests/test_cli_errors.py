"""The command line under hostile use: every mistake is one line and an exit code, never a traceback.

Each case runs `avbench.cli.invoke`, the function `python -m avbench` calls, in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from avbench import __version__
from avbench.baselines.avgas.model import SYNTH_WEIGHTS
from avbench.cli import invoke

RUN = ["run", "--model", "oracle", "--suite", "synth-sep"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = invoke([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args, problem",
    [
        ([], "Usage: avbench"),
        (["list"], "Usage: avbench list"),
        (["run"], "Missing option '--model'"),
        (["run", "--model", "oracle", "--suite", "synth-sep", "--bogus"], "No such option: --bogus"),
        ([*RUN, "--limit", "0"], "Invalid value for '--limit'"),
        ([*RUN, "--batch-size", "0"], "Invalid value for '--batch-size'"),
        ([*RUN, "--seed", "abc"], "Invalid value for '--seed'"),
        ([*RUN, "--seed", "-1"], "Invalid value for '--seed'"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_and_one_line(args, problem, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert problem in out + err
    assert "Usage: avbench" in out + err


def test_help_and_version_answer_and_exit_0(capsys):
    code, out, _ = run_cli(["-h"], capsys)
    assert code == 0 and "Usage: avbench" in out
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"avbench {__version__}"


@pytest.fixture(scope="module")
def hostile_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """AV-GAS checkpoints that are not what they claim: text, a wrong shape, a string in the config."""
    folder = tmp_path_factory.mktemp("checkpoints")
    state = load_file(str(SYNTH_WEIGHTS))
    with safe_open(str(SYNTH_WEIGHTS), "pt") as handle:
        metadata = handle.metadata()
    (folder / "text.pt").write_text("this is not a checkpoint\n")
    (folder / "empty.pt").write_bytes(b"")
    first = sorted(state)[0]
    save_file({**state, first: torch.zeros(3, 3)}, str(folder / "shape.safetensors"), metadata=metadata)
    config = json.loads(metadata["avbench.config"])
    config["separator"]["hidden"] = "wide"
    save_file(state, str(folder / "string.safetensors"), metadata={**metadata, "avbench.config": json.dumps(config)})
    return {path.name: path for path in folder.iterdir()}


@pytest.mark.parametrize(
    "name, problem",
    [
        ("text.pt", "text.pt"),
        ("empty.pt", "empty.pt"),
        ("shape.safetensors", "do not fit the config"),
        ("string.safetensors", "'separator.hidden' = 'wide'"),
    ],
)
def test_bad_checkpoints_are_one_line(name, problem, hostile_checkpoints, tmp_path, capsys):
    code, _, err = run_cli(
        [
            "run",
            "--model",
            "avgas",
            "--suite",
            "synth-mixed2",
            "--checkpoint",
            hostile_checkpoints[name],
            "--out",
            tmp_path / "run",
            "--cache-dir",
            tmp_path / "c",
        ],
        capsys,
    )
    assert code == 2
    assert problem in err and len(err.strip().splitlines()) == 1


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    code, _, err = run_cli([*RUN, "--limit", "2", "--out", tmp_path / "taken", "--cache-dir", tmp_path / "c"], capsys)
    assert code == 2 and "is a file, not a run directory" in err


def test_out_under_a_folder_that_cannot_be_written_names_the_cause(tmp_path, capsys):
    code, _, err = run_cli(
        [*RUN, "--limit", "2", "--out", "/sys/avbench-test/run", "--cache-dir", tmp_path / "c"], capsys
    )
    assert code == 2 and "cannot write the run directory" in err
    assert "free the space" not in err and "writable" in err


def test_report_and_leaderboard_outputs_of_the_wrong_kind_are_one_line(tmp_path, capsys):
    code, _, _ = run_cli([*RUN, "--limit", "2", "--out", tmp_path / "run", "--cache-dir", tmp_path / "c"], capsys)
    assert code == 0
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["report", tmp_path / "run", "--out", tmp_path / "file"], capsys)
    assert code == 1 and str(tmp_path / "file") in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["leaderboard", tmp_path / "run", "--out", tmp_path], capsys)
    assert code == 1 and "directory" in err.lower() and len(err.strip().splitlines()) == 1


def test_only_a_real_ctrl_c_exits_130_and_it_says_how_to_resume(monkeypatch, tmp_path, capsys):
    import avbench.record

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(avbench.record, "load_record", interrupted)
    code, _, err = run_cli(["show", tmp_path], capsys)
    assert code == 130 and err.strip() == "error: interrupted; run the same command again to resume"


def test_an_empty_weights_file_is_an_error_not_an_interrupt(tmp_path, capsys):
    from PIL import Image

    for folder in ("generated", "reference"):
        (tmp_path / folder).mkdir()
        for k in range(2):
            Image.new("RGB", (8, 8), (k * 90, 0, 0)).save(tmp_path / folder / f"{k}.png")
    (tmp_path / "zero.pt").write_bytes(b"")
    code, _, err = run_cli(
        [
            "fidelity",
            tmp_path / "generated",
            tmp_path / "reference",
            "--metrics",
            "clip-fid",
            "--clip-weights",
            tmp_path / "zero.pt",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 2 and "zero.pt cannot be loaded as clip-vit-b32-openai weights" in err
    assert len(err.strip().splitlines()) == 1


def test_a_piped_run_card_keeps_its_first_line_whole():
    import io

    from rich.console import Console
    from test_gate import record

    from avbench.cli.show import print_record

    out = io.StringIO()
    print_record(record(), Console(file=out, width=80))
    first = out.getvalue().splitlines()[0]
    assert first.startswith("avgas v1") and first.endswith("· cpu") and len(first) > 80
