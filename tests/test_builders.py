"""The shipped real-suite manifests: their contents, and that the builder reproduces them."""

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avbench import registry
from avbench.cli.manifest import app
from avbench.errors import DataError, RegistryError, SuiteError
from avbench.suites import builders
from avbench.suites.spec import load_suite

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = Path(os.environ.get("AVBENCH_ANNOTATIONS", "/nonexistent"))
COUNTS = {
    "vggsound-single": 15446,
    "mixed2": 2000,
    "mixed2-mini": 200,
    "llp-multi": 797,
    "music-2mix": 250,
    "ave-2mix": 402,
}
needs_annotations = pytest.mark.skipif(
    not (ANNOTATIONS / "vggsound" / "test.csv").is_file(),
    reason=f"public annotation files not found at {ANNOTATIONS} "
    "(set AVBENCH_ANNOTATIONS to the folder of vggsound/, llp/, music/, ave/)",
)


@pytest.fixture(scope="module")
def suites():
    return {name: load_suite(name) for name in COUNTS}


@pytest.mark.parametrize("name", COUNTS)
def test_shipped_manifest_counts_and_pins(suites, name):
    suite = suites[name]
    assert len(suite.items) == COUNTS[name]
    data = (REPO / "data_manifests" / f"{name}.jsonl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == suite.manifest_sha256
    sums = dict(
        reversed(line.split("  ")) for line in (REPO / "data_manifests" / "SHA256SUMS").read_text().splitlines()
    )
    assert sums[f"{name}.jsonl"] == suite.manifest_sha256
    assert len({item.id for item in suite.items}) == COUNTS[name]


def test_mixed2_items_pair_distinct_labels_and_mini_is_its_head(suites):
    items = suites["mixed2"].items
    for item in items:
        assert len(item.sources) == 2 and item.mix == "equal-rms-mean"
        assert item.sources[0].label != item.sources[1].label
        assert list(item.labels) == [s.label for s in item.sources]
        assert [s.frame.path for s in item.sources] == [f"frames/{s.clip}.jpg" for s in item.sources]
    assert len({frozenset(s.clip for s in item.sources) for item in items}) == len(items)
    assert suites["mixed2-mini"].items == items[:200]
    mini = (REPO / "data_manifests" / "mixed2-mini.jsonl").read_bytes()
    full = (REPO / "data_manifests" / "mixed2.jsonl").read_bytes()
    assert full.startswith(mini)


def test_separation_and_llp_suites_have_their_protocol_shapes(suites):
    assert suites["music-2mix"].clip_samples == 65535 and suites["music-2mix"].sample_rate == 11025
    assert suites["ave-2mix"].clip_samples == 110000 and suites["ave-2mix"].sample_rate == 11000
    assert suites["llp-multi"].clip_samples == 128000
    for name, classes in (("music-2mix", 11), ("ave-2mix", 28), ("llp-multi", 25), ("mixed2", 309)):
        assert len(suites[name].classes) == classes
    for name in ("music-2mix", "ave-2mix"):
        for item in suites[name].items:
            assert item.mix == "mean" and len(item.sources) == 2 and len(set(item.labels)) == 2
            assert all(s.frame is not None and s.frame.rule == "middle" for s in item.sources)
    for item in suites["llp-multi"].items:
        (source,) = item.sources
        assert source.label is None and item.frame.path == f"frames/{source.clip}.jpg"
    assert sum(len(item.labels) == 1 for item in suites["llp-multi"].items) == 1  # "Clapping,Clapping"


@needs_annotations
@pytest.mark.parametrize("name", COUNTS)
def test_builder_reproduces_the_shipped_files_byte_for_byte(name, assert_builds_committed_files):
    assert_builds_committed_files(name, ANNOTATIONS)


@needs_annotations
def test_vggsound_items_are_test_split_clips_with_their_labels(suites):
    with open(ANNOTATIONS / "vggsound" / "test.csv", newline="") as handle:
        test = {Path(name).stem: label for name, label in csv.reader(handle)}
    for name in ("vggsound-single", "mixed2"):
        for item in suites[name].items:
            for source in item.sources:
                assert test[source.clip] == source.label
    assert {item.sources[0].clip for item in suites["vggsound-single"].items} == set(test)


@needs_annotations
def test_llp_and_pair_suites_follow_the_published_lists(suites):
    with open(ANNOTATIONS / "llp" / "AVVP_test_pd.csv") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][1:]
    multi = [name for name, labels in rows if labels.count(",") >= 1]
    assert [item.sources[0].clip for item in suites["llp-multi"].items] == multi
    for name, path in (("music-2mix", "music/testsepmusic.csv"), ("ave-2mix", "ave/testsepave.csv")):
        pairs = [
            [cell.strip().rsplit("/", 1)[1][:-4] for cell in line.split(",")]
            for line in (ANNOTATIONS / path).read_text().splitlines()
        ]
        assert [[s.clip for s in item.sources] for item in suites[name].items] == pairs


@needs_annotations
def test_manifest_check_command_agrees_with_the_shipped_files():
    result = CliRunner().invoke(app, ["build", "music-2mix", "ave-2mix", "--annotations", str(ANNOTATIONS), "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.count("matches the shipped files") == 2


def toy_builder(annotations):
    items = [
        {"id": "toy-00000", "seed": 1, "labels": ["a"], "sources": [{"clip": "c", "label": "a", "path": "audio/c.wav"}]}
    ]
    spec = {"version": "1.0.0", "protocol": 1, "tasks": ["generate"], "sample_rate": 8000, "clip_seconds": 1.0,
            "classes": ["a", "b"], "data": "files", "dataset": "toy", "metrics": []}  # fmt: skip
    return items, spec


@pytest.fixture
def toy():
    registry.manifest_builders.register("toy", toy_builder)
    yield
    registry.manifest_builders.unregister("toy")


def test_build_command_writes_manifest_spec_and_sums_and_check_flags_unshipped(tmp_path, toy):
    (tmp_path / "data_manifests").mkdir()
    (tmp_path / "data_manifests" / "SHA256SUMS").write_text(f"{'0' * 64}  other.jsonl\n")
    result = CliRunner().invoke(app, ["build", "toy", "--annotations", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = (tmp_path / "data_manifests" / "toy.jsonl").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    spec = json.loads((tmp_path / "avbench" / "suites" / "specs" / "toy.json").read_text())
    assert spec["manifest_sha256"] == digest and spec["manifest"] == "toy.jsonl" and spec["name"] == "toy"
    assert (tmp_path / "data_manifests" / "SHA256SUMS").read_text() == f"{'0' * 64}  other.jsonl\n{digest}  toy.jsonl\n"
    assert data == builders.build("toy", None)[0]
    checked = CliRunner().invoke(app, ["build", "toy", "--annotations", str(tmp_path), "--check"])
    assert checked.exit_code == 1 and "toy.jsonl: not shipped" in checked.output


def test_builder_errors_are_clear(tmp_path, toy):
    with pytest.raises(SuiteError, match="unknown manifest builder 'nope'"):
        builders.build("nope", None)
    with pytest.raises(RegistryError, match="already registered"):
        registry.manifest_builders.register("toy", lambda annotations: toy_builder(annotations))
    with pytest.raises(DataError, match="--annotations"):
        builders.build("music-2mix", None)
    with pytest.raises(DataError, match="MUSIC_solo_videos.json not found"):
        builders.build("music-2mix", tmp_path)
