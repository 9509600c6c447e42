"""A warm re-score answers from its caches (no model call, feature pass or media load),
and notices every changed input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import avbench
from avbench.cache import array_hash
from avbench.errors import DataError
from avbench.items.media import MediaStore
from avbench.items.media_index import ItemHashes, MediaIndex
from avbench.items.sources import SynthSource, load_item
from avbench.models.base import Model
from avbench.models.handle import open_model
from avbench.outputs import OutputStore, png_bytes
from avbench.record import MetricEntry
from avbench.score_cache import ScoreCache
from avbench.suites.manifest import dump_items
from avbench.suites.spec import load_suite
from avbench.versions import source_fingerprint

pytestmark = pytest.mark.timeout(600)

SINGLE = {"limit": 24, "allow_small_n": True, "batch_size": 8}
HEAVY = ("open_clip", "torchvision", "torch_fidelity", "scipy.optimize", "scipy.signal", "pandas")
WARM = """
import json, sys
import avbench
record = avbench.evaluate("avgas", "synth-single", out=sys.argv[1], cache_dir=sys.argv[2], **json.loads(sys.argv[3]))
print(json.dumps({"calls": record.calls, "heavy": [m for m in json.loads(sys.argv[4]) if m in sys.modules],
                  "record": record.comparable()}))
"""


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm-rescore")
    record = avbench.evaluate("avgas", "synth-single", out=root / "run", cache_dir=root / "cache", **SINGLE)
    return root, record


def test_a_warm_process_builds_recomputes_and_imports_nothing(cold):
    root, record = cold
    done = subprocess.run(
        [sys.executable, "-c", WARM, str(root / "run"), str(root / "cache"), json.dumps(SINGLE), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    warm = json.loads(done.stdout.strip().splitlines()[-1])
    assert (
        record.calls["score_cache_hits"] == 0 and record.calls["items_loaded_for_scoring"] == 0
    )  # generation handed its media over
    assert (
        warm["calls"]["model_calls"]
        == warm["calls"]["feature_passes"]
        == warm["calls"]["items_loaded_for_scoring"]
        == 0
    )
    assert warm["calls"]["score_cache_hits"] == len(load_suite("synth-single").metrics)
    assert warm["heavy"] == []
    assert warm["record"] == json.loads(json.dumps(record.comparable()))


def test_a_changed_output_is_scored_again_as_from_scratch(cold, tmp_path):
    root, record = cold
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    store, item = OutputStore(run), load_suite("synth-single").items[0].id
    ((name, _),) = store.done("generate", item).files
    store.write("generate", item, {name: png_bytes(np.ascontiguousarray(store.image("generate", name)[::-1]))})

    changed = avbench.evaluate("avgas", "synth-single", out=run, cache_dir=root / "cache", **SINGLE)
    fresh = avbench.evaluate("avgas", "synth-single", out=run, cache_dir=tmp_path / "fresh-cache", **SINGLE)
    assert changed.calls["model_calls"] == 0 and changed.calls["score_cache_hits"] == 0
    assert changed.comparable() == fresh.comparable()
    fd = next(m.name for m in record.metrics if m.name.startswith("FD["))
    assert changed.metric(fd).value != record.metric(fd).value


def test_score_entries_answer_only_while_their_backbones_are_unchanged(tmp_path):
    cache = ScoreCache(tmp_path)
    entry = MetricEntry(
        name="R@1[b]",
        value=0.5,
        higher_is_better=True,
        backbone="b",
        metric="m",
        task="generate",
        protocol=1,
        n=3,
        ci_low=0.25,
        ci_high=0.75,
        details={"templates": ["a {}"]},
    )
    cache.put("k" * 64, {"b": {"weights": "1"}}, ([entry], {"item": {"R@1[b]": float("nan")}}))
    entries, per_item = cache.get("k" * 64, lambda name: {"weights": "1"})
    assert entries == [entry] and np.isnan(per_item["item"]["R@1[b]"])
    assert cache.get("k" * 64, lambda name: {"weights": "2"}) is None
    assert cache.get("j" * 64, lambda name: {"weights": "1"}) is None


def test_media_that_changed_behind_the_index_are_an_error_naming_the_item(tmp_path):
    suite = load_suite("synth-single")
    item = suite.items[0]
    source = SynthSource(suite)
    index = MediaIndex(tmp_path, suite, source.kind())
    index.put(item.id, source.fingerprint(item), ItemHashes("0" * 64, "1" * 64, ("2" * 64,), "3" * 64))
    with MediaStore(source, suite, index, batch_size=4, workers=0) as store:
        (media,) = store.media([item])
        assert media.hashes.mixture == "0" * 64  # answered from the index, nothing loaded
        with pytest.raises(DataError, match=f"item {item.id}: its media changed"):
            media.mixture()
    truth = load_item(source, suite, item)
    refreshed = MediaIndex(tmp_path, suite, source.kind()).get(item.id, source.fingerprint(item))
    assert refreshed.mixture == array_hash(truth.mixture) and refreshed.sources == array_hash(truth.truth.sources)


@pytest.fixture
def files_suite(tmp_path, write_separation_suite) -> tuple[Path, Path]:
    """A two-item separation suite read from a data root of four 1 s clips."""
    root = tmp_path / "root"
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for k in range(2):
        clips = [f"c{k}{s}" for s in range(2)]
        for clip in clips:
            sf.write(
                root / "audio" / f"{clip}.wav",
                (0.1 * rng.standard_normal(16000)).astype(np.float32),
                16000,
                subtype="FLOAT",
            )
        lines.append(
            {
                "id": f"m{k}",
                "seed": k,
                "labels": ["dog barking", "siren wailing"],
                "sources": [
                    {"clip": c, "label": label, "path": f"audio/{c}.wav"}
                    for c, label in zip(clips, ["dog barking", "siren wailing"], strict=True)
                ],
            }
        )
    return write_separation_suite(tmp_path, "files-sep", dump_items(lines)), root


def test_a_changed_data_file_is_loaded_and_scored_again(tmp_path, files_suite):
    suite, root = files_suite
    options = {"out": tmp_path / "run", "cache_dir": tmp_path / "cache", "data_root": root, "workers": 0}
    first = avbench.evaluate("mixture", str(suite), **options)
    warm = avbench.evaluate("mixture", str(suite), **options)
    assert warm.calls["score_cache_hits"] == 1 and warm.calls["items_loaded_for_scoring"] == 0
    assert warm.comparable() == first.comparable()

    clip = root / "audio" / "c00.wav"
    sf.write(clip, (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32), 16000, subtype="FLOAT")
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    changed = avbench.evaluate("mixture", str(suite), **options)
    fresh = avbench.evaluate("mixture", str(suite), **{**options, "cache_dir": tmp_path / "fresh-cache"})
    assert changed.calls["score_cache_hits"] == 0 and changed.calls["items_loaded_for_scoring"] > 0
    assert changed.comparable() == fresh.comparable()
    assert changed.metric("SDR[bss-v3]").value != first.metric("SDR[bss-v3]").value


class Counted(Model):
    """Counts how often it is built; its identity is the first byte of its checkpoint
    (file, or first file of a folder)."""

    name, tasks, builds = "counted", frozenset({"generate"}), 0

    @classmethod
    def from_checkpoint(cls, path=None, *, device="cpu", suite=None):
        cls.builds += 1
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
        model = cls(device)
        model.checkpoint_sha256 = files[0].read_bytes()[:1].hex()
        return model


def test_a_model_is_built_only_while_its_identity_is_unknown(tmp_path):
    suite = load_suite("synth-single")
    checkpoint = tmp_path / "model.bin"
    checkpoint.write_bytes(b"\x01")
    first = open_model(Counted, str(checkpoint), "cpu", suite, tmp_path / "models")
    again = open_model(Counted, str(checkpoint), "cpu", suite, tmp_path / "models")
    assert Counted.builds == 1 and again.identity == first.identity and again.identity["checkpoint_sha256"] == "01"
    assert again.get() is not first.get() and Counted.builds == 2  # built on demand

    checkpoint.write_bytes(b"\x02\x02")
    changed = open_model(Counted, str(checkpoint), "cpu", suite, tmp_path / "models")
    assert Counted.builds == 3 and changed.identity["checkpoint_sha256"] == "02"

    folder = tmp_path / "folder"  # a checkpoint folder: a file changed inside it counts too
    (folder / "part").mkdir(parents=True)
    (folder / "part" / "model.bin").write_bytes(b"\x03")
    open_model(Counted, str(folder), "cpu", suite, tmp_path / "models")
    (folder / "part" / "model.bin").write_bytes(b"\x04\x04")
    inside = open_model(Counted, str(folder), "cpu", suite, tmp_path / "models")
    assert Counted.builds == 5 and inside.identity["checkpoint_sha256"] == "04"


def test_a_source_fingerprint_follows_every_file_of_the_package(tmp_path, monkeypatch):
    package = tmp_path / "fingerprinted"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "metric.py").write_text("VALUE = 1\n")
    (package / "helper.py").write_text("HELP = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_fingerprint("fingerprinted.metric")
    assert source_fingerprint("fingerprinted.metric") == before
    (package / "helper.py").write_text("HELP = 2\n")  # a sibling the metric may import
    assert source_fingerprint("fingerprinted.metric") != before
