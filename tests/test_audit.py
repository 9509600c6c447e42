"""`avbench manifest audit`: a suite's ground truth against human audio labels.

The hand-made annotation folders below have answers worked out by hand; the
real figures are those the issue measured on the published files.
"""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avbench.cli.manifest import app
from avbench.registry import suites as registered
from avbench.suites.audit import audit_suite, committed_audits, confirmed_fraction
from avbench.suites.manifest import dump_items
from avbench.suites.spec import read_suite_file

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = Path(os.environ["AVBENCH_ANNOTATIONS"]) if os.environ.get("AVBENCH_ANNOTATIONS") else None
needs_annotations = pytest.mark.skipif(
    ANNOTATIONS is None or not (ANNOTATIONS / "vggsounder" / "vggsounder+background-music.csv").is_file(),
    reason="set AVBENCH_ANNOTATIONS to the folder of the public annotation files (vggsound/, vggsounder/, llp/, ...)",
)

VGGSOUNDER = """video_id,label,modality,background_music,static_image,voice_over
c1_000001,dog barking,A,False,False,False
c1_000001,cat meowing,AV,False,False,False
c2_000002,cat meowing,V,False,False,False
c3_000003,bird chirping,AV,False,False,False
c4_000004,dog barking,A,True,False,False
"""
# c1: dog barking + an unlabelled cat (multi-class, extra); c2: its cat is only seen (inaudible label);
# c3: exactly its bird; c4: exactly its dog (music does not matter to the audit); c5: not annotated.
MIXTURES = [
    ("c3_000003", "c4_000004"), ("c1_000001", "c3_000003"), ("c2_000002", "c4_000004"), ("c5_000005", "c3_000003")
]  # fmt: skip
LABELS = {"c1_000001": "dog barking", "c2_000002": "cat meowing", "c3_000003": "bird chirping",
          "c4_000004": "dog barking", "c5_000005": "cat meowing"}  # fmt: skip

LLP_AUDIO = "filename\tonset\toffset\tevent_labels\n" + "".join(
    f"{clip}\t{on}\t{off}\t{label}\n"
    for clip, on, off, label in [
        ("v1_0_10", 0, 5, "Speech"), ("v1_0_10", 3, 10, "Baby_cry_infant_cry"), ("v1_0_10", 7, 9, "Speech"),
        ("v2_0_10", 0, 10, "Speech"),
        ("v3_0_10", 0, 4, "Speech"), ("v3_0_10", 2, 6, "Dog"), ("v3_0_10", 5, 10, "Cat"),
    ]
)  # fmt: skip
# v1: G holds exactly its two events; v2: its Cat is not heard; v3: an unlabelled Cat is heard.
LLP_ITEMS = [
    ("v1_0_10", ["Speech", "Baby cry, infant cry"]), ("v2_0_10", ["Speech", "Cat"]), ("v3_0_10", ["Speech", "Dog"])
]  # fmt: skip


def _suite(folder: Path, dataset: str, classes: list[str], items: list[dict]):
    (folder / "toy.jsonl").write_bytes(dump_items(items))
    from avbench.suites.manifest import sha256_bytes

    spec = {"name": "toy", "version": "1.0.0", "protocol": 1, "tasks": ["generate"], "sample_rate": 16000,
            "clip_seconds": 10.0, "classes": classes, "data": "files", "dataset": dataset, "metrics": [],
            "manifest": "toy.jsonl", "manifest_sha256": sha256_bytes((folder / "toy.jsonl").read_bytes())}  # fmt: skip
    (folder / "toy.json").write_text(json.dumps(spec))
    return folder / "toy.json"


def _source(clip, label):
    return {"clip": clip, "label": label, "path": f"audio/{clip}.wav"}


@pytest.fixture
def vggsound_toy(tmp_path):
    annotations = tmp_path / "annotations"
    (annotations / "vggsounder").mkdir(parents=True)
    (annotations / "vggsounder" / "vggsounder+background-music.csv").write_text(VGGSOUNDER)
    items = [
        {
            "id": f"toy-{k}",
            "seed": k,
            "labels": [LABELS[a], LABELS[b]],
            "mix": "equal-rms-mean",
            "sources": [_source(a, LABELS[a]), _source(b, LABELS[b])],
        }  # fmt: skip
        for k, (a, b) in enumerate(MIXTURES)
    ]
    spec = _suite(tmp_path, "VGGSound test split (toy)", sorted(set(LABELS.values())), items)
    return spec, annotations


@pytest.fixture
def llp_toy(tmp_path):
    annotations = tmp_path / "annotations"
    (annotations / "llp").mkdir(parents=True)
    (annotations / "llp" / "AVVP_eval_audio.csv").write_text(LLP_AUDIO)
    items = [
        {"id": f"toy-{k}", "seed": k, "labels": labels, "sources": [_source(clip, None)]}
        for k, (clip, labels) in enumerate(LLP_ITEMS)
    ]
    spec = _suite(tmp_path, "LLP / AVVP test split (toy)", ["Baby cry, infant cry", "Cat", "Dog", "Speech"], items)
    return spec, annotations


def test_audit_of_a_hand_made_vggsounder_folder(vggsound_toy):
    spec, annotations = vggsound_toy
    audit = audit_suite(read_suite_file(spec), annotations)
    assert (audit.items, audit.sources, audit.unannotated_sources) == (4, 8, 1)
    assert (audit.multi_class_sources, audit.extra_class_sources, audit.inaudible_labels) == (1, 1, 1)
    # mixture 1 hears {dog, cat, bird}, mixture 2 only {dog}; mixture 3 has an unannotated source
    assert (audit.differing_items, audit.multi_class_items_below_two, audit.confirmed_items) == (2, 1, 1)
    assert audit.confirmed_fraction == 0.25


def test_audit_of_a_hand_made_llp_folder(llp_toy):
    spec, annotations = llp_toy
    audit = audit_suite(read_suite_file(spec), annotations)
    assert (audit.items, audit.sources, audit.unannotated_sources) == (3, 3, 0)
    # v1 and v3 hear two or more classes; v3's Cat is extra; v2's Cat is not heard
    assert (audit.multi_class_sources, audit.extra_class_sources, audit.inaudible_labels) == (2, 1, 1)
    assert (audit.differing_items, audit.multi_class_items_below_two, audit.confirmed_items) == (2, 1, 1)


def test_audit_command_prints_the_figures_and_json(vggsound_toy):
    spec, annotations = vggsound_toy
    result = CliRunner().invoke(app, ["audit", str(spec), "--annotations", str(annotations)])
    assert result.exit_code == 0, result.output
    assert "1 multi-class sources" in result.output and "1 inaudible labels" in result.output
    assert "1 of 4 items confirmed (25.0%)" in result.output
    as_json = CliRunner().invoke(app, ["audit", str(spec), "--annotations", str(annotations), "--json"])
    (row,) = json.loads(as_json.output)
    assert (row["suite"], row["confirmed_items"], row["confirmed_fraction"]) == ("toy", 1, 0.25)


def test_audit_needs_the_annotation_folder_and_refuses_unaudited_suites(vggsound_toy, tmp_path):
    spec, _ = vggsound_toy
    missing = CliRunner().invoke(app, ["audit", str(spec), "--annotations", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "vggsounder+background-music.csv" in str(missing.output) + str(missing.exception)
    music = CliRunner().invoke(app, ["audit", "music-2mix", "--annotations", str(tmp_path)])
    assert music.exit_code != 0 and "no human audio labels" in str(music.output) + str(music.exception)


def test_committed_audit_table_pins_the_shipped_manifests():
    table = committed_audits()
    for name, entry in table.items():
        suite = registered.get(name)
        assert entry["manifest_sha256"] == suite.manifest_sha256, name
        assert entry["items"] == len(suite.items), name
        assert confirmed_fraction(suite) == round(entry["confirmed_items"] / entry["items"], 6)
    assert {"mixed2", "mixed2-clean", "llp-multi", "llp-multi-audio", "synth-mixed2-noisy"} <= set(table)


def test_synthetic_suites_audit_from_their_clip_names():
    """Needs no annotation files: the noisy variant's carried classes are in its clip ids."""
    noisy = audit_suite(registered.get("synth-mixed2-noisy"), None)
    carried = sum("_" in s.clip for item in registered.get("synth-mixed2-noisy").items for s in item.sources)
    assert carried == 100
    assert (noisy.extra_class_sources, noisy.multi_class_sources, noisy.inaudible_labels) == (carried, carried, 0)
    assert noisy.confirmed_items == noisy.items - carried
    assert audit_suite(registered.get("synth-mixed2"), None).confirmed_fraction == 1.0


@needs_annotations
def test_audit_of_mixed2_reproduces_the_published_figures():
    result = CliRunner().invoke(app, ["audit", "mixed2", "--annotations", str(ANNOTATIONS)])
    assert result.exit_code == 0, result.output
    for figure in ("2,786 multi-class sources", "888 inaudible labels", "64 of 2,000 items confirmed"):
        assert figure in result.output


@needs_annotations
def test_committed_audit_table_equals_a_fresh_audit():
    fresh = CliRunner().invoke(app, ["audit", "--all", "--annotations", str(ANNOTATIONS), "--json"])
    assert fresh.exit_code == 0, fresh.output
    assert {row["suite"]: row for row in json.loads(fresh.output)} == committed_audits()


def test_list_suites_shows_the_committed_confirmed_fraction():
    from avbench.cli import app as main_app

    result = CliRunner().invoke(main_app, ["list", "suites", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["mixed2"]["confirmed"] == 64 / 2000  # the measured 64 confirmed mixtures
    assert rows["mixed2-clean"]["confirmed"] == 1.0 and rows["synth-mixed2-noisy"]["confirmed"] == 0.5
    assert rows["music-2mix"]["confirmed"] is None  # nothing to audit it against


def test_audit_write_updates_the_table_under_out(tmp_path):
    table = tmp_path / "data_manifests" / "audit.json"
    table.parent.mkdir()
    table.write_text(json.dumps({"kept": {"confirmed_fraction": 0.5}}))
    result = CliRunner().invoke(app, ["audit", "synth-mixed2-noisy", "--write", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = json.loads(table.read_text())
    assert set(written) == {"kept", "synth-mixed2-noisy"} and written["synth-mixed2-noisy"]["confirmed_items"] == 100
    assert written["synth-mixed2-noisy"] == committed_audits()["synth-mixed2-noisy"]
