"""The audited suites: their counts, their invariants against the annotation files, and a run on real files.

The annotation folder comes from AVBENCH_ANNOTATIONS only; without it the
tests that read annotation files skip and say why.
"""

import csv
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import avbench
from avbench.cli.data import app as data_app
from avbench.errors import AvbenchError
from avbench.registry import suites as registered
from avbench.suites import builders

REPO = Path(__file__).resolve().parents[1]
AUDITED = ("mixed2-clean", "mixed2-clean-mini", "vggsound-single-clean", "llp-multi-audio")
ANNOTATIONS = Path(os.environ["AVBENCH_ANNOTATIONS"]) if os.environ.get("AVBENCH_ANNOTATIONS") else None
needs_annotations = pytest.mark.skipif(
    ANNOTATIONS is None or not (ANNOTATIONS / "vggsounder" / "vggsounder+background-music.csv").is_file(),
    reason="set AVBENCH_ANNOTATIONS to the folder of the public annotation files (vggsound/, vggsounder/, llp/, ...)",
)
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg); data prepare shells out to them",
)


def _manifest(name: str) -> list[dict]:
    return [json.loads(line) for line in (REPO / "data_manifests" / f"{name}.jsonl").read_text("utf-8").splitlines()]


def _readme_rows(heading: str) -> list[list[str]]:
    """The cells of the first table after `heading` in data_manifests/README.md."""
    text = (REPO / "data_manifests" / "README.md").read_text("utf-8")
    lines = text[text.index(heading) :].splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def _number(cell: str) -> int:
    return int(cell.replace(",", ""))


# ---- counts stated in data_manifests/README.md ------------------------------------------


def test_readme_states_each_audited_suites_items_and_hash():
    rows = {row[0]: row for row in _readme_rows("## The audited suites")}
    assert set(rows) == {f"{name}.jsonl" for name in AUDITED} | {"synth-mixed2-noisy.jsonl"}
    lines = (REPO / "data_manifests" / "SHA256SUMS").read_text().splitlines()
    sums = dict(reversed(line.split("  ")) for line in lines)
    for file, row in rows.items():
        assert _number(row[1]) == len(_manifest(file[: -len(".jsonl")])), file
        head, tail = row[2].split("…")
        assert sums[file].startswith(head) and sums[file].endswith(tail), file


def test_readme_audit_table_matches_the_committed_audits():
    table = json.loads((REPO / "data_manifests" / "audit.json").read_text("utf-8"))
    rows = _readme_rows("### The audit of every suite")
    assert {row[0] for row in rows} == set(table)
    fields = ("items", "sources", "unannotated_sources", "multi_class_sources", "extra_class_sources",
              "inaudible_labels", "differing_items", "multi_class_items_below_two", "confirmed_items")  # fmt: skip
    for row in rows:
        entry = table[row[0]]
        assert [_number(cell) for cell in row[1:10]] == [entry[f] for f in fields], row[0]
        assert row[10] == f"{entry['confirmed_fraction']:.1%}", row[0]


def test_readme_states_the_class_spread_of_mixed2_clean():
    text = (REPO / "data_manifests" / "README.md").read_text("utf-8")
    stated = re.search(r"(\d+) classes are in (\d+) mixtures each and (\d+) in (\d+)", text)
    assert stated, "the README states the class counts of mixed2-clean"
    per_class = Counter(label for item in _manifest("mixed2-clean") for label in item["labels"])
    found = Counter(per_class.values())
    (many, n_many, few, n_few) = (int(g) for g in stated.groups())
    assert found == {n_many: many, n_few: few}
    distinct = re.search(r"The mixtures use ([\d,]+) distinct clips", text)
    assert _number(distinct.group(1)) == len({s["clip"] for item in _manifest("mixed2-clean") for s in item["sources"]})


# ---- structure (no annotation files needed) ------------------------------------------------


def test_mixed2_clean_pairs_differ_never_repeat_and_spread_classes_evenly():
    items = _manifest("mixed2-clean")
    assert len(items) == 2000
    for item in items:
        (a, b) = item["sources"]
        assert a["label"] != b["label"] and item["labels"] == [a["label"], b["label"]]
        assert item["mix"] == "equal-rms-mean"
    assert len({frozenset(s["clip"] for s in item["sources"]) for item in items}) == len(items)
    per_class = Counter(label for item in items for label in item["labels"])
    assert max(per_class.values()) - min(per_class.values()) <= 1
    head = (REPO / "data_manifests" / "mixed2-clean-mini.jsonl").read_bytes()
    assert (REPO / "data_manifests" / "mixed2-clean.jsonl").read_bytes().startswith(head)
    assert head.count(b"\n") == 200


@pytest.mark.parametrize(("child", "parent"), [("mixed2-clean", "mixed2"), ("vggsound-single-clean", "vggsound-single"),
                                               ("llp-multi-audio", "llp-multi")])  # fmt: skip
def test_audited_suites_share_their_parents_data_root_layout(child, parent):
    """Same rate, window and per-clip paths: a root prepared for the parent serves every shared clip."""
    suite, base = registered.get(child), registered.get(parent)
    assert (suite.sample_rate, suite.clip_seconds, suite.classes) == (base.sample_rate, base.clip_seconds, base.classes)
    files = {}
    for item in base.items:
        for s in item.sources:
            files[s.clip] = (s.path, s.start, s.gain_db, s.frame, item.frame if item.frame else None)
    shared = 0
    for item in suite.items:
        for s in item.sources:
            if s.clip in files:
                shared += 1
                assert files[s.clip] == (s.path, s.start, s.gain_db, s.frame, item.frame if item.frame else None)
    assert shared > 0


def test_synthetic_noisy_suite_is_the_clean_suite_plus_carried_classes():
    clean, noisy = _manifest("synth-mixed2"), _manifest("synth-mixed2-noisy")
    carried = 0
    for a, b in zip(clean, noisy, strict=True):
        assert (a["labels"], a["seed"], a["mix"]) == (b["labels"], b["seed"], b["mix"])
        assert a["id"].rsplit("-", 1)[1] == b["id"].rsplit("-", 1)[1] and b["id"].startswith("synth-mixed2-noisy-")
        for sa, sb in zip(a["sources"], b["sources"], strict=True):
            assert sb["clip"].split("_")[0] == sa["clip"] and sb["frame"] == sa["frame"]
            if sb["clip"] != sa["clip"]:
                carried += 1
                (extra,) = sb["clip"].split("_")[1:]
                assert not any(extra.startswith(label.replace(" ", "-") + "-") for label in b["labels"])
                assert extra in b["frame"]["path"]
    assert carried == 100


def test_synthetic_noisy_suite_is_built_byte_for_byte():
    data, spec = builders.build("synth-mixed2-noisy", None)
    assert data == (REPO / "data_manifests" / "synth-mixed2-noisy.jsonl").read_bytes()
    assert builders.shipped_differences(data, spec) == []


# ---- against the annotation files ----------------------------------------------------------


@pytest.fixture(scope="module")
def vggsounder():
    """clip -> (audible classes, background music, voice-over), read here independently of avbench."""
    found: dict[str, list] = {}
    with open(ANNOTATIONS / "vggsounder" / "vggsounder+background-music.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            entry = found.setdefault(row["video_id"], [set(), set(), set()])
            if "A" in row["modality"]:
                entry[0].add(row["label"])
            entry[1].add(row["background_music"])
            entry[2].add(row["voice_over"])
    return found


@pytest.fixture(scope="module")
def vggsound_test():
    with open(ANNOTATIONS / "vggsound" / "test.csv", newline="") as handle:
        return [(name[: -len(".mp4")], label) for name, label in csv.reader(handle)]


@needs_annotations
@pytest.mark.parametrize("name", AUDITED)
def test_builder_reproduces_the_committed_files_byte_for_byte(name, assert_builds_committed_files):
    assert_builds_committed_files(name, ANNOTATIONS)


@needs_annotations
def test_clean_sources_hold_exactly_their_label_with_no_music_or_voice_over(vggsounder, vggsound_test):
    labels = dict(vggsound_test)
    pool = [(clip, label) for clip, label in vggsound_test
            if clip in vggsounder and vggsounder[clip] == [{label}, {"False"}, {"False"}]]  # fmt: skip
    assert len(pool) == 2330 and len({label for _, label in pool}) == 254
    single = [item["sources"][0] for item in _manifest("vggsound-single-clean")]
    assert [(s["clip"], s["label"]) for s in single] == pool
    for item in _manifest("mixed2-clean"):
        for s in item["sources"]:
            assert labels[s["clip"]] == s["label"]
            assert vggsounder[s["clip"]] == [{s["label"]}, {"False"}, {"False"}], s["clip"]


@needs_annotations
def test_llp_multi_audio_g_is_the_audible_events():
    events: dict[str, list] = {}
    with open(ANNOTATIONS / "llp" / "AVVP_eval_audio.csv") as handle:
        for line in list(handle)[1:]:
            name, onset, offset, label = line.rstrip("\n").split("\t")
            events.setdefault(name, []).append((label, float(onset), float(offset)))
    with open(ANNOTATIONS / "llp" / "AVVP_test_pd.csv") as handle:
        test = [line.split("\t")[0] for line in list(handle)[1:]]
    chosen = [clip for clip in test if len({label for label, _, _ in events.get(clip, [])}) >= 2]
    items = _manifest("llp-multi-audio")
    assert [item["sources"][0]["clip"] for item in items] == chosen and len(chosen) == 747

    def display(token):  # AudioSet display names, as data_manifests/README.md states for llp-multi
        return {"Baby_cry_infant_cry": "Baby cry, infant cry", "Chicken_rooster": "Chicken, rooster",
                "Violin_fiddle": "Violin, fiddle"}.get(token, token.replace("_", " "))  # fmt: skip

    for item in items:
        rows = events[item["sources"][0]["clip"]]
        assert len(item["labels"]) >= 2
        assert set(item["labels"]) == {display(label) for label, _, _ in rows}
        expected = [(display(label), onset, offset) for label, onset, offset in rows]
        assert [(e["label"], e["onset"], e["offset"]) for e in item["events"]] == expected


# ---- end to end: a partial data root, prepared with ffmpeg ---------------------------------


def _make_video(path: Path, frequency: int, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=16000:d={seconds}",
         "-f", "lavfi", "-i", f"testsrc=s=64x48:d={seconds}:r=5", "-shortest", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


def _scored_copy(name: str, folder: Path, metric: dict) -> Path:
    """The shipped spec and manifest, scored by the embedded world's CLIP: the real suites' backbone
    (clip-vit-b32-openai) needs weights a test machine does not have."""
    suite = registered.get(name)
    folder.mkdir()
    (folder / suite.manifest).write_bytes(suite.manifest_bytes())
    spec = json.loads((REPO / "avbench" / "suites" / "specs" / f"{name}.json").read_text("utf-8"))
    (folder / f"{name}.json").write_text(json.dumps({**spec, "metrics": [metric]}))
    return folder / f"{name}.json"


@needs_ffmpeg
@pytest.mark.timeout(900)
def test_oracle_runs_on_a_partial_root_prepared_for_the_parent_suites(tmp_path):
    mixed2 = {s.clip for item in registered.get("mixed2").items for s in item.sources}
    mini = registered.get("mixed2-clean-mini").items
    shared = [item for item in mini if all(s.clip in mixed2 for s in item.sources)][:2]
    llp = registered.get("llp-multi-audio").items[:2]
    videos, root, llp_root = tmp_path / "videos", tmp_path / "vggsound", tmp_path / "llp"
    videos.mkdir()
    clips = [s.clip for item in shared for s in item.sources] + [item.sources[0].clip for item in llp]
    for k, clip in enumerate(clips):
        _make_video(videos / f"{clip}.mp4", 300 + 100 * k, 10.0)
    runner = CliRunner()
    for suite, target in (("mixed2", root), ("llp-multi-audio", llp_root)):  # mixed2's root serves mixed2-clean
        arguments = ["prepare", suite, "--videos", str(videos), "--data-root", str(target), "--jobs", "2"]
        prepared = runner.invoke(data_app, arguments)
        assert prepared.exit_code == 0, prepared.output
    checked = runner.invoke(data_app, ["check", "mixed2-clean-mini", "--data-root", str(root), "--json"])
    report = json.loads(checked.output)
    assert (report["items"], report["present"], report["corrupt"]) == (200, len(shared), 0)

    with pytest.raises(AvbenchError, match="clip-vit-b32-openai"):  # the shipped specs score with real weights
        avbench.evaluate("oracle", "mixed2-clean-mini", data_root=root, allow_missing=True, out=tmp_path / "real")
    retrieval = {"metric": "clip-retrieval", "task": "generate", "options": {"backbone": "clip-synth"}}
    for name, data_root, items in (("mixed2-clean-mini", root, shared), ("llp-multi-audio", llp_root, llp)):
        spec = _scored_copy(name, tmp_path / f"spec-{name}", retrieval)
        record = avbench.evaluate("oracle", str(spec), data_root=data_root, allow_missing=True,
                                  out=tmp_path / f"run-{name}", cache_dir=tmp_path / "cache")  # fmt: skip
        counts = (record.n.original, record.n.effective, record.n.failed)
        assert counts == (len(registered.get(name).items), len(items), 0), name
        crs = record.metric("CRS[clip-synth]")
        assert 0.0 <= crs.ci_low <= crs.value <= crs.ci_high <= 1.0


def test_readme_states_the_event_counts_of_llp_multi_audio():
    text = (REPO / "data_manifests" / "README.md").read_text("utf-8")
    items = _manifest("llp-multi-audio")
    events = [event for item in items for event in item["events"]]
    empty = re.search(r"(\w+) rows of these items have `offset == onset`", text).group(1)
    assert {"Three": 3}[empty] == sum(e["onset"] == e["offset"] for e in events)
    outside = re.search(r"(\d+) items have an event that lies wholly outside the centred 8 s", text).group(1)
    window = registered.get("llp-multi-audio").clip_seconds  # the centred window of the 10-s clip
    start, end = (10.0 - window) / 2, (10.0 + window) / 2
    assert int(outside) == sum(any(e["offset"] <= start or e["onset"] >= end for e in item["events"]) for item in items)


def test_manifest_events_are_optional_and_checked():
    from avbench.errors import ManifestError
    from avbench.suites.manifest import Event, parse_item

    source = {"clip": "c", "label": None, "path": "a.wav"}
    item = {"id": "x", "seed": 0, "labels": ["Dog", "Speech"], "sources": [source]}
    assert parse_item(item, "here").events == ()
    events = [{"label": "Dog", "onset": 2, "offset": 5}, {"label": "Speech", "onset": 9, "offset": 9}]
    timed = {**item, "events": events}
    assert parse_item(timed, "here").events == (Event("Dog", 2.0, 5.0), Event("Speech", 9.0, 9.0))
    for events, message in (
        ([{"label": "Cat", "onset": 0, "offset": 1}], "not among the item's labels"),
        ([{"label": "Dog", "onset": 3, "offset": 1}], "before onset"),
        ([], "non-empty list"),
    ):
        with pytest.raises(ManifestError, match=message):
            parse_item({**item, "events": events}, "here")
