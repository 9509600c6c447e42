"""Dress rehearsal: every real suite, end to end, through the commands a user types.

For each non-synthetic suite in the registry (new ones are covered without editing this file):
  data     videos made with ffmpeg for the clips of the suite's first 3 items, turned into one shared data
           root by `avbench data prepare` (IS then runs one image per split, under --allow-small-n);
  weights  every backbone the suite's metrics name, at its real architecture and in its publisher's file
           layout with random weights, imported with `avbench weights import ... --unverified`;
  run      `avbench run` of oracle and random (and mixture on separation suites) with --allow-missing;
  check    every metric of the suite's spec is in the record, on every backbone the spec names, with a
           finite value or a stated reason (all its units degenerate, or items scoring infinity in the
           per-item table); the record states the effective N (the items whose files are all present)
           and "unverified weights: ...".
Weights, videos and the data root are made once per session; the feature cache is shared by all runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import fake_weights
import numpy as np
import pytest
from typer.testing import CliRunner

from avbench import registry
from avbench.cli import app
from avbench.defaults import FIDELITY_METRICS, IS_SPLITS
from avbench.errors import SuiteError
from avbench.items.files import FileSource
from avbench.readiness import needed_weights
from avbench.record import Record, load_items, load_record
from avbench.suites.spec import Suite, load_suite

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg; .ci/run installs it)",
)
ITEMS = 3  # items per suite given videos
VIDEO_SECONDS = 10.0  # as long as the longest clip any real suite reads
REAL_SUITES = [name for name in registry.suites.names() if registry.suites.get(name).data != "synth"]


def suite_models(suite: Suite) -> list[str]:
    return ["oracle", "random", *(["mixture"] if "separate_audio" in suite.tasks else [])]


def cli(*args: str, home: Path) -> str:
    with mock.patch.dict(os.environ, {"AVBENCH_HOME": str(home)}):
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"avbench {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result.output


def write_weights(name: str, folder: Path) -> Path:
    """`name`'s file at its backbone's real architecture, in its publisher's layout, with random weights."""
    from avbench.backbones.clip import open_clip_name

    specs = [registry.backbones.get(b) for b in registry.backbones.names()]
    spec = next(s for s in specs if s.weights == name)
    path = folder / f"random-{name}.pt"
    if spec.kind == "clip":
        return fake_weights.write_clip_openai(path, open_clip_name(spec.name))
    if spec.kind == "inception":
        return fake_weights.write_inception(path)
    if spec.name == "wav2clip":
        return fake_weights.write_wav2clip(path)
    raise AssertionError(f"the rehearsal cannot make weights for backbone {spec.name!r} ({spec.kind}); add a maker")


def make_video(path: Path, frequency: int, colour: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency={frequency}:sample_rate=44100:d={VIDEO_SECONDS}", "-f", "lavfi", "-i",
         f"color=c={colour}:s=64x48:d={VIDEO_SECONDS}:r=5", "-shortest", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


@pytest.fixture(scope="session")
def stage(tmp_path_factory):
    """Imported weights and a prepared data root for every real suite: (home, data root, names of the weights)."""
    base = tmp_path_factory.mktemp("rehearsal")
    home, root, videos, files = base / "home", base / "root", base / "videos", base / "files"
    videos.mkdir()
    files.mkdir()
    suites = {name: load_suite(name) for name in REAL_SUITES}
    needed = list(dict.fromkeys(w for suite in suites.values() for w in needed_weights(suite)))
    for name in needed:
        cli("weights", "import", str(write_weights(name, files)), "--name", name, "--unverified", home=home)
    firsts = [item for suite in suites.values() for item in suite.items[:ITEMS]]
    clips = list(dict.fromkeys(source.clip for item in firsts for source in item.sources))
    palette = ["red", "green", "blue", "yellow", "magenta", "orange", "purple", "cyan"]  # no blank white or black
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda k: make_video(videos / f"{clips[k]}.mp4", 220 + 37 * k, palette[k % len(palette)]),
                range(len(clips)),
            )
        )
    for name in REAL_SUITES:
        cli("data", "prepare", name, "--videos", str(videos), "--data-root", str(root), "--jobs", "2", home=home)
    return home, root, needed


def present_items(suite: Suite, root: Path) -> int:
    source = FileSource(root)
    return sum(not source.missing(item) for item in suite.items)


def infinite_items(items, entry) -> int:
    """How many items score +-inf on `entry` (JSON holds no infinity, so the record's mean is null then)."""
    if items is None or entry.name not in items:
        return 0
    values = items.loc[items["task"] == entry.task, entry.name].to_numpy(dtype=float)
    return int(np.isinf(values).sum())


def check_record(suite: Suite, record: Record, effective: int, unverified: list[str], items=None) -> None:
    """Every metric the spec names is reported on each of its backbones with a finite value or a stated reason:
    all its units counted as degenerate, or (per-item table) items scoring infinity, e.g. an exact estimate's SDR.
    """
    problems = []
    for spec in suite.metrics:
        metric = registry.metrics.get(spec.metric)
        where = f"suite {suite.name!r}: metric {spec.metric!r} ({spec.task}, options {json.dumps(spec.options)})"
        backbones = {spec.options[o] for o in metric.backbone_options & set(spec.options)}
        entries = [
            e
            for e in record.metrics
            if e.metric == spec.metric and e.task == spec.task and (not backbones or e.backbone in backbones)
        ]
        if len(entries) < (len(spec.options.get("metrics", FIDELITY_METRICS)) if spec.metric == "fidelity" else 1):
            problems.append(f"{where}: {len(entries)} value(s) in the record of {record.model.name}")
        for backbone in sorted(backbones - {e.backbone for e in entries}):
            problems.append(f"{where}: nothing reported on backbone {backbone!r}")
        for e in entries:
            finite = e.value is not None and math.isfinite(e.value)
            if not finite and not (e.n == 0 and e.skipped > 0) and not infinite_items(items, e):
                problems.append(f"{where}: {e.name} = {e.value}, and no degenerate or infinite units explain it")
    if record.n.effective != effective:
        problems.append(f"suite {suite.name!r}: record states N {record.n.effective}, {effective} items are present")
    note = f"unverified weights: {', '.join(sorted(unverified))}"
    if unverified and note not in record.warnings:
        problems.append(f"suite {suite.name!r}: the record does not say {note!r} (warnings: {record.warnings})")
    assert not problems, "\n".join(problems)


def rehearse(suite_ref: str, home: Path, root: Path, out: Path) -> dict[str, Record]:
    """Load the suite (every reference resolved), run each sanity model on it, and check each record."""
    try:
        suite = load_suite(suite_ref)
    except SuiteError as exc:
        raise AssertionError(f"rehearsal of {suite_ref}: {exc}") from None
    effective = present_items(suite, root)
    assert effective >= ITEMS, f"suite {suite.name!r}: only {effective} items prepared"
    unverified = [w for w in needed_weights(suite) if w]
    records = {}
    for model in suite_models(suite):
        run_dir = out / f"{model}_{suite.name}"
        try:
            cli(
                "run",
                "--model",
                model,
                "--suite",
                suite_ref,
                "--data-root",
                str(root),
                "--out",
                str(run_dir),
                "--allow-missing",
                "--allow-small-n",
                "--batch-size",
                "8",
                home=home,
            )
        except Exception as exc:  # noqa: BLE001 - any failure of the run is the suite's, named with it
            raise AssertionError(f"suite {suite.name!r}: {model}: {type(exc).__name__}: {exc}") from exc
        records[model] = load_record(run_dir / "record.json")
        check_record(suite, records[model], effective, unverified, load_items(run_dir, records[model]))
    return records


@pytest.mark.parametrize("suite", REAL_SUITES)
def test_every_real_suite_runs_end_to_end(stage, suite, tmp_path):
    home, root, _ = stage
    records = rehearse(suite, home, root, tmp_path)
    oracle = records["oracle"]
    if "separate_audio" in oracle.tasks:  # the true sources score far above the mixture and noise
        assert oracle.metric("SI-SDR[waveform]").value > records["mixture"].metric("SI-SDR[waveform]").value + 100
        assert records["mixture"].metric("SDR[bss-v3]").value > records["random"].metric("SDR[bss-v3]").value
    for entry in (e for e in oracle.metrics if e.name.startswith("IS[")):  # fewer images than splits: one per split
        small = entry.n < IS_SPLITS  # (other suites' clips can give a suite more than ITEMS present items)
        assert entry.details["splits"] == min(entry.n, IS_SPLITS) and entry.details["small_n"] == small, entry.details
    if suite.startswith("llp-multi"):  # AIS and IIS with Wav2CLIP, as MACS computes them
        for name in ("AIS[wav2clip]", "AIS-z[wav2clip]", "IIS[clip-vit-b32-openai]", "IIS-z[clip-vit-b32-openai]"):
            assert math.isfinite(oracle.metric(name).value), name
        assert oracle.metric("IIS[clip-vit-b32-openai]").value == pytest.approx(1.0, abs=1e-6)  # image = reference
    if suite == "llp-multi":  # the run card, a table and a report made from these records all say it
        runs = [str(tmp_path / f"{model}_{suite}") for model in records]
        note = "unverified weights: clip-vit-b32-openai, inception-v3-compat, wav2clip"
        assert note in cli("show", runs[0], home=home)
        assert cli("leaderboard", *runs, "--format", "markdown", home=home).count(note) == 2
        cli("report", *runs, "--out", str(tmp_path / "report"), "--data-root", str(root), home=home)
        pages = [p.read_text() for p in (tmp_path / "report").rglob("*.html")]
        assert sum(note in page for page in pages) >= 3  # the index's table and each run's page


def test_check_reports_a_complete_rehearsal_root_ready(stage, tmp_path):
    """`avbench check` on the rehearsal's data root and imported weights: a suite of its present items is ready."""
    home, root, _ = stage
    base = registry.suites.get("llp-multi")
    source = FileSource(root)
    lines = [line for line in base.manifest_bytes().decode().splitlines() if line.strip()]
    present = [line for line, item in zip(lines, base.items, strict=True) if not source.missing(item)]
    manifest = ("\n".join(present) + "\n").encode()
    (tmp_path / "llp-tiny.jsonl").write_bytes(manifest)
    spec = json.loads(Path(base.spec_dir, "llp-multi.json").read_text())
    spec.update(name="llp-tiny", manifest="llp-tiny.jsonl", manifest_sha256=hashlib.sha256(manifest).hexdigest())
    (tmp_path / "llp-tiny.json").write_text(json.dumps(spec))
    output = cli("check", "--data-root", str(root), "--suite", str(tmp_path / "llp-tiny.json"), home=home)
    row = next(line for line in output.splitlines() if line.startswith(str(tmp_path / "llp-tiny.json")))
    assert f"{len(present)} of {len(present)} items" in row and row.split()[-1] == "yes"
    assert "unverified: inception-v3-compat, clip-vit-b32-openai, wav2clip" in row
    full = next(line for line in output.splitlines() if line.startswith("llp-multi "))
    assert f"{len(present)} of 797 items" in full and full.split()[-1] == "no"


def test_the_rehearsal_covers_every_real_suite():
    assert {"vggsound-single", "mixed2", "mixed2-mini", "llp-multi", "music-2mix", "ave-2mix"} <= set(REAL_SUITES)
    assert all(registry.suites.get(name).data == "files" for name in REAL_SUITES)


def test_a_broken_spec_fails_naming_the_suite_and_the_metric(stage, tmp_path):
    home, root, _ = stage
    spec = json.loads(Path(registry.suites.get("llp-multi").spec_dir, "llp-multi.json").read_text())
    spec["metrics"][2]["options"]["audio_backbone"] = "wav2clip-large"
    (tmp_path / "llp-multi.json").write_text(json.dumps(spec))
    with pytest.raises(AssertionError, match=r"suite 'llp-multi': metric 'ais-iis': .*wav2clip-large"):
        rehearse(str(tmp_path / "llp-multi.json"), home, root, tmp_path)
    # a spec that loads but asks for a value the run cannot give (AIS in a space its audio tower does not embed into)
    spec["metrics"][2]["options"] = {"audio_backbone": "audio-synth", "backbone": "clip-vit-b32-openai"}
    (tmp_path / "llp-multi.json").write_text(json.dumps(spec))
    with pytest.raises(AssertionError, match=r"suite 'llp-multi': oracle: .*ais-iis"):
        rehearse(str(tmp_path / "llp-multi.json"), home, root, tmp_path)
