"""`avbench data prepare` and `data check` on tiny generated videos (needs ffmpeg)."""

import json
import shutil
import subprocess
from dataclasses import astuple

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from avbench.cli.data import app
from avbench.errors import DataError, SuiteError
from avbench.items import prepare as prepare_module
from avbench.items.files import FileSource
from avbench.suites.manifest import dump_items, sha256_bytes
from avbench.suites.spec import load_suite, read_suite_file

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg); data prepare shells out to them",
)
RATE, SECONDS = 8000, 1.5
CLIPS = {  # clip id -> (video file name, audio source, colour, seconds)
    "redclip": ("redclip.mp4", "sine=frequency=440:sample_rate=44100", "red", 2.0),
    "abcdefghijk_000004": ("abcdefghijk_4_14.mkv", "sine=frequency=880:sample_rate=22050", "blue", 2.0),
    # an LLP-style id whose video is the full YouTube video: the clip is the segment [1, 3)
    "-bcdefghijk_1_3": (
        "-bcdefghijk.mp4",
        "aevalsrc='0.5*sin(2*PI*if(between(t,1,3),600,200)*t)':s=16000",
        "green",
        8.0,
    ),
    # an LLP-style id whose video is already trimmed to its segment (MACS names it by YouTube id)
    "_cdefghijkl_30_32": ("_cdefghijkl.mp4", "sine=frequency=300:sample_rate=16000", "yellow", 2.0),
}
COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 128, 0), "yellow": (255, 255, 0)}
FREQUENCIES = {"redclip": 440, "abcdefghijk_000004": 880, "-bcdefghijk_1_3": 600, "_cdefghijkl_30_32": 300}


def make_video(path, audio, colour, seconds):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"{audio}:d={seconds}",
         "-f", "lavfi", "-i", f"color=c={colour}:s=64x48:d={seconds}:r=10", "-shortest", "-pix_fmt", "yuv420p",
         str(path)],
        check=True,
    )  # fmt: skip


def source(clip, label):
    return {
        "clip": clip,
        "label": label,
        "path": f"audio/{clip}.wav",
        "frame": {"path": f"frames/{clip}.jpg", "rule": "middle"},
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("prepare")
    videos = base / "videos" / "nested"
    videos.mkdir(parents=True)
    for name, audio, colour, seconds in CLIPS.values():
        make_video(videos / name, audio, colour, seconds)
    items = [
        {"id": "two-sources", "seed": 1, "labels": ["a", "b"], "mix": "mean",
         "sources": [source("redclip", "a"), source("abcdefghijk_000004", "b")]},
        {"id": "segment", "seed": 2, "labels": ["c"], "sources": [source("-bcdefghijk_1_3", "c")]},
        {"id": "item-frame", "seed": 3, "labels": ["a", "c"],
         "frame": {"path": "frames/_cdefghijkl_30_32.jpg", "rule": "middle"},
         "sources": [{"clip": "_cdefghijkl_30_32", "label": None, "path": "audio/_cdefghijkl_30_32.wav"}]},
        {"id": "no-video", "seed": 4, "labels": ["b"], "sources": [source("nothere0000_000010", "b")]},
    ]  # fmt: skip
    manifest = dump_items(items)
    (base / "prep-test.jsonl").write_bytes(manifest)
    spec = {"name": "prep-test", "version": "1.0.0", "protocol": 1, "tasks": ["generate"], "sample_rate": RATE,
            "clip_seconds": SECONDS, "classes": ["a", "b", "c"], "manifest": "prep-test.jsonl",
            "manifest_sha256": sha256_bytes(manifest), "data": "files", "dataset": "test videos",
            "metrics": []}  # fmt: skip
    (base / "prep-test.json").write_text(json.dumps(spec))
    return base


def dominant_frequency(wave):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.argmax(spectrum) * RATE / len(wave)


def test_prepare_extracts_audio_and_middle_frames_then_check_reports_the_missing_clip(workspace):
    spec, root = str(workspace / "prep-test.json"), workspace / "root"
    result = CliRunner().invoke(
        app, ["prepare", spec, "--videos", str(workspace / "videos"), "--data-root", str(root), "--jobs", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "4 prepared, 0 already there, 1 without a video, 0 failed" in result.output
    assert "nothere0000_000010" in result.output
    assert (root / "missing-videos-prep-test.txt").read_text() == "nothere0000_000010\n"
    for clip, (_, _, colour, _) in CLIPS.items():
        info = sf.info(root / "audio" / f"{clip}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "FLOAT")
        assert info.frames == int(SECONDS * RATE)  # every clip is longer than the window
        wave, _ = sf.read(root / "audio" / f"{clip}.wav", dtype="float32")
        assert abs(dominant_frequency(wave) - FREQUENCIES[clip]) < 10, clip
        frame = np.asarray(Image.open(root / "frames" / f"{clip}.jpg").convert("RGB"), dtype=float)
        assert np.abs(frame.mean(axis=(0, 1)) - COLOURS[colour]).max() < 20, clip

    mtime = (root / "audio" / "redclip.wav").stat().st_mtime_ns
    again = CliRunner().invoke(app, ["prepare", spec, "--videos", str(workspace / "videos"), "--data-root", str(root)])
    assert again.exit_code == 0 and "0 prepared, 4 already there, 1 without a video" in again.output
    assert (root / "audio" / "redclip.wav").stat().st_mtime_ns == mtime

    checked = CliRunner().invoke(app, ["check", spec, "--data-root", str(root), "--json"])
    assert checked.exit_code == 1
    report = json.loads(checked.output)
    assert (report["items"], report["present"], report["missing"], report["corrupt"]) == (4, 3, 1, 0)
    assert report["problems"] == {
        "no-video": [
            "audio/nothere0000_000010.wav: missing (audio of clip nothere0000_000010)",
            "frames/nothere0000_000010.jpg: missing (frame of clip nothere0000_000010)",
        ]
    }
    suite = read_suite_file(workspace / "prep-test.json")
    files = FileSource(root)
    assert files.source_audio(suite.items[0].sources[0], RATE, SECONDS).shape == (int(SECONDS * RATE),)


def test_check_names_corrupt_audio_wrong_rate_and_missing_frames(workspace):
    spec, root = str(workspace / "prep-test.json"), workspace / "root-damaged"
    result = CliRunner().invoke(app, ["prepare", spec, "--videos", str(workspace / "videos"), "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    (root / "audio" / "redclip.wav").write_bytes(b"RIFF....WAVEjunk")
    (root / "frames" / "-bcdefghijk_1_3.jpg").unlink()
    sf.write(root / "audio" / "_cdefghijkl_30_32.wav", np.zeros(100, dtype=np.float32), 16000)
    checked = CliRunner().invoke(app, ["check", spec, "--data-root", str(root)])
    assert checked.exit_code == 1
    assert "4 items: 0 present, 2 missing, 2 corrupt" in checked.output
    assert "two-sources: audio/redclip.wav: cannot read audio" in checked.output
    assert "segment: frames/-bcdefghijk_1_3.jpg: missing (frame of clip -bcdefghijk_1_3)" in checked.output
    assert "item-frame: audio/_cdefghijkl_30_32.wav: sample rate is 16000 Hz, expected 8000 Hz" in checked.output

    redo = CliRunner().invoke(app, ["prepare", spec, "--videos", str(workspace / "videos"), "--data-root", str(root)])
    assert redo.exit_code == 0 and "1 prepared, 3 already there" in redo.output  # only the deleted frame is redone
    assert (root / "frames" / "-bcdefghijk_1_3.jpg").is_file()


def test_a_broken_video_fails_its_clip_with_a_message(workspace, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "redclip.mp4").write_bytes(b"this is not a video")
    result = CliRunner().invoke(
        app,
        ["prepare", str(workspace / "prep-test.json"), "--videos", str(videos), "--data-root", str(tmp_path / "root")],
    )
    assert result.exit_code == 1
    assert "failed redclip:" in result.output and "redclip.mp4" in result.output and "ffprobe failed" in result.output
    assert not list((tmp_path / "root").rglob("*.wav")) and not list((tmp_path / "root").rglob(".*"))


def test_missing_ffmpeg_and_synthetic_suites_are_refused(workspace, tmp_path, monkeypatch):
    with pytest.raises(SuiteError, match="nothing to prepare"):
        prepare_module.prepare(load_suite("synth-single"), tmp_path, tmp_path / "root")
    monkeypatch.setattr(prepare_module.shutil, "which", lambda tool: None)
    with pytest.raises(DataError, match="ffmpeg and ffprobe not found.*install ffmpeg"):
        prepare_module.prepare(read_suite_file(workspace / "prep-test.json"), tmp_path, tmp_path / "root")


def test_window_rules():
    def window(match, duration, seconds):
        return astuple(prepare_module.clip_window(match, duration, seconds))  # (start, length, middle, clip end)

    whole = prepare_module.VideoMatch(path=None)
    assert window(whole, 10.0, 8.0) == pytest.approx((1.0, 8.0, 5.0, 10.0))  # centred 8 s of a 10-s clip
    assert window(whole, 2.0, 5.0) == pytest.approx((0.0, 2.0, 1.0, 2.0))  # short: all of it (tiled when loaded)
    segment = prepare_module.VideoMatch(path=None, segment=(300.0, 10.0))
    assert window(segment, 600.0, 10.0) == pytest.approx((300.0, 10.0, 305.0, 310.0))  # full video: cut the segment
    assert window(segment, 10.2, 10.0) == pytest.approx((0.1, 10.0, 5.1, 10.2))  # already trimmed
