"""`avbench check` on an empty machine and on a partial data root (a complete one: tests/test_rehearsal.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from avbench import registry
from avbench.cli import app

MANIFESTS = registry.suites.get("music-2mix").manifest_bytes().decode().splitlines()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AVBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def check(*args: str):
    return CliRunner().invoke(app, ["check", *args])


def rows(output: str) -> dict[str, str]:
    return {words[0]: line for line in output.splitlines() if (words := line.split()) and words[0] in registry.suites}


def test_an_empty_machine_lists_every_suite_and_each_fix(home):
    result = check("--suite", "llp-multi")
    assert result.exit_code == 1, result.output
    table = rows(result.output)
    assert set(table) == set(registry.suites.names())
    assert "0 of 797 items (no data root)" in table["llp-multi"]
    assert "missing: inception-v3-compat, clip-vit-b32-openai, wav2clip" in table["llp-multi"]
    assert "2 present" in table["synth-single"] and table["synth-single"].split()[-1] == "yes"
    assert table["llp-multi"].split()[-1] == "no"
    for fix in (
        "avbench weights import ViT-B-32.pt --name clip-vit-b32-openai\n",
        "avbench weights import Wav2CLIP.pt --name wav2clip --unverified\n",
        "avbench data prepare llp-multi --videos VIDEOS --data-root DATA_ROOT\n",
    ):
        assert result.output.count(fix) == 1, fix  # each gap's command once, however many suites share it
    assert len(result.output.splitlines()) <= 40  # one screen
    assert check("--suite", "synth-single").exit_code == 0


def test_a_partial_data_root_counts_present_items(home, tmp_path):
    root = tmp_path / "root"
    first = json.loads(MANIFESTS[0])
    for source in first["sources"]:  # every file of the first item, and the audio only of the second
        for relative in (source["path"], source["frame"]["path"]):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(b"")
    second = json.loads(MANIFESTS[1])
    (root / second["sources"][1]["path"]).write_bytes(b"")
    clips = {s["clip"] for s in first["sources"]}  # items built only from these clips are present too
    expected = sum({s["clip"] for s in json.loads(line)["sources"]} <= clips for line in MANIFESTS)
    result = check("--data-root", str(root), "--suite", "music-2mix")
    assert result.exit_code == 1
    line = rows(result.output)["music-2mix"]
    assert f"{expected} of 250 items" in line and "none needed" in line and line.split()[-1] == "no"
    assert f"avbench data prepare music-2mix --videos VIDEOS --data-root {root}" in result.output
    assert "0 of 402 items" in rows(result.output)["ave-2mix"]
