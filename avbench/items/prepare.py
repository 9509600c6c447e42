"""Turn a user's downloaded videos into a suite's data root (audio/*.wav, frames/*.jpg).

Per clip, the audio written is the window of the suite's clip length centred
on the middle of the clip, at the suite's rate (channels averaged, soxr HQ
resampling), and the frame is the one at that middle. Manifest start times
are offsets into these prepared files (0.0 in every built-in suite).

Videos are looked up by file stem anywhere under the videos folder:
  {clip}.ext                       the clip itself (MUSIC/AVE: the whole video);
  {ytid}_{s}_{s+10}, {ytid}_{ms}_{ms+10000}
                                   the clip itself, for VGGSound ids `{ytid}_{s:06d}`;
  {ytid}.ext                       for VGGSound ids and LLP ids `{ytid}_{s}_{e}`: the full
                                   YouTube video, cut to the segment, when it lasts past the
                                   segment's end; otherwise the already trimmed clip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, SuiteError
from ..suites.manifest import resolve_inside
from ..suites.spec import Suite
from .audio import load_audio, write_wav
from .files import item_files

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".flv")
VGGSOUND_ID = re.compile(r"^(?P<yt>[A-Za-z0-9_\-]{11})_(?P<start>\d{6})$")
LLP_ID = re.compile(r"^(?P<yt>[A-Za-z0-9_\-]{11})_(?P<start>\d+)_(?P<end>\d+)$")
VGGSOUND_CLIP_SECONDS = 10
DECODE_MARGIN = 0.1  # seconds
FFMPEG_HINT = (
    "install ffmpeg (which provides ffprobe): apt-get install ffmpeg, brew install ffmpeg "
    "or conda install -c conda-forge ffmpeg"
)


@dataclass
class ClipJob:
    """What to write for one clip: its audio path and the paths of its middle frame."""

    clip: str
    audio: set[str] = field(default_factory=set)
    frames: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class VideoMatch:
    """A video file and, when it may be a full YouTube video, the segment the clip is."""

    path: Path
    segment: tuple[float, float] | None = None  # (start, length) seconds


@dataclass
class PrepareReport:
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def require_ffmpeg() -> None:
    absent = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if absent:
        raise DataError(f"{' and '.join(absent)} not found on PATH: {FFMPEG_HINT}")


def clip_jobs(suite: Suite) -> list[ClipJob]:
    """One job per clip of the suite, in manifest order."""
    if suite.data != "files":
        raise SuiteError(f"suite {suite.name!r} makes its own data (data: {suite.data}); there is nothing to prepare")
    jobs: dict[str, ClipJob] = {}
    for item in suite.items:
        rules = [f.rule for f in (item.frame, *(s.frame for s in item.sources)) if f is not None]
        if any(rule != "middle" for rule in rules):
            raise DataError(f"item {item.id}: only the frame rule 'middle' can be prepared, got {sorted(set(rules))}")
        for file in item_files(item):
            job = jobs.setdefault(file.clip, ClipJob(file.clip))
            (job.audio if file.kind == "audio" else job.frames).add(file.path)
    for job in jobs.values():
        if len(job.audio) > 1:
            raise DataError(f"clip {job.clip}: the manifest gives it several audio paths {sorted(job.audio)}")
    return list(jobs.values())


def index_videos(folder: Path) -> dict[str, Path]:
    """File stem -> video path under `folder` (preferring .mp4, then the first path in sort order)."""
    if not folder.is_dir():
        raise DataError(f"videos folder {folder} does not exist")
    found: dict[str, Path] = {}
    paths = (p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    for path in sorted(paths, key=lambda p: (VIDEO_EXTENSIONS.index(p.suffix.lower()), str(p))):
        found.setdefault(path.stem, path)
    return found


def find_video(clip: str, videos: dict[str, Path]) -> VideoMatch | None:
    """The video for `clip` by the naming rules in this module's docstring."""
    if clip in videos:
        return VideoMatch(videos[clip])
    vgg, llp = VGGSOUND_ID.match(clip), LLP_ID.match(clip)
    if vgg:
        yt, start = vgg["yt"], int(vgg["start"])
        end = start + VGGSOUND_CLIP_SECONDS
        for name in (f"{yt}_{start}_{end}", f"{yt}_{start * 1000}_{end * 1000}"):
            if name in videos:
                return VideoMatch(videos[name])
        segment = (float(start), float(VGGSOUND_CLIP_SECONDS))
    elif llp:
        yt, start, end = llp["yt"], int(llp["start"]), int(llp["end"])
        segment = (float(start), float(end - start))
    else:
        return None
    return VideoMatch(videos[yt], segment) if yt in videos else None


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise DataError(f"{command[0]} failed: {tail[0]}")
    return done.stdout


def video_duration(path: Path) -> float:
    out = _run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", str(path)])
    try:
        return float(out.strip())
    except ValueError:
        raise DataError(f"{path}: ffprobe reports no duration ({out.strip()!r})") from None


@dataclass(frozen=True)
class Window:
    """Where to cut a clip's audio (start, length) and its frame (middle), and where the clip ends."""

    start: float
    length: float
    middle: float
    clip_end: float


def clip_window(match: VideoMatch, duration: float, clip_seconds: float) -> Window:
    """The clip-length window centred on the middle of the clip (a segment, or the whole file)."""
    start, length = 0.0, duration
    if match.segment is not None and duration >= match.segment[0] + match.segment[1] - 0.5:
        start, length = match.segment[0], min(match.segment[1], duration - match.segment[0])
    middle = start + length / 2
    audio_length = min(clip_seconds, length)
    return Window(middle - audio_length / 2, audio_length, middle, start + length)


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.stem}.{os.getpid()}-{threading.get_ident()}.tmp{target.suffix}")


def _extract_audio(video: Path, window: Window, target: Path, suite: Suite) -> None:
    """Decode a little past the window when the clip allows, so codec rounding never
    leaves the file a few samples short; then cut to the suite's exact length."""
    raw = _tmp_name(target.with_suffix(".raw.wav"))
    target.parent.mkdir(parents=True, exist_ok=True)
    length = min(window.length + DECODE_MARGIN, window.clip_end - window.start)
    try:
        _run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{window.start:.6f}", "-t", f"{length:.6f}",
              "-i", str(video), "-map", "0:a:0", "-vn", "-c:a", "pcm_f32le", "-f", "wav", str(raw)])  # fmt: skip
        wave = load_audio(raw, suite.sample_rate)
        write_wav(target, wave[: suite.clip_samples], suite.sample_rate)
    finally:
        raw.unlink(missing_ok=True)


def _extract_frame(video: Path, time: float, target: Path) -> None:
    tmp = _tmp_name(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{time:.6f}", "-i", str(video),
              "-map", "0:v:0", "-frames:v", "1", "-q:v", "2", "-f", "image2", "-update", "1", str(tmp)])  # fmt: skip
        if not tmp.is_file():
            raise DataError(f"{video}: no video frame at {time:.3f} s")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _prepare_clip(job: ClipJob, match: VideoMatch, todo: list[tuple[str, Path]], suite: Suite) -> None:
    video = match.path.resolve()
    window = clip_window(match, video_duration(video), suite.clip_seconds)
    for kind, target in todo:
        if kind == "audio":
            _extract_audio(video, window, target, suite)
        else:
            _extract_frame(video, window.middle, target)


def prepare(
    suite: Suite,
    videos_dir: Path,
    data_root: Path,
    jobs: int = 2,
    on_progress: Callable[[int, int], None] | None = None,
) -> PrepareReport:
    """Extract every clip's audio and frame that is not there yet, `jobs` clips at a time.

    `on_progress(done, total)` is called as clips are settled (prepared, skipped or not found).
    """
    require_ffmpeg()
    clips = clip_jobs(suite)
    data_root.mkdir(parents=True, exist_ok=True)
    videos = index_videos(videos_dir)
    report = PrepareReport()
    work = []
    for job in clips:
        where = f"clip {job.clip}"
        wanted = [
            (kind, path) for kind, paths in (("audio", job.audio), ("frame", job.frames)) for path in sorted(paths)
        ]
        # Symlinks are resolved (and refused outside the root) only for files that exist or will be written.
        todo = [
            (kind, path)
            for kind, path in wanted
            if not ((data_root / path).is_file() and resolve_inside(data_root, path, where).is_file())
        ]
        match = find_video(job.clip, videos) if todo else None
        if not todo:
            report.skipped.append(job.clip)
        elif match is None:
            report.missing.append(job.clip)
        else:
            work.append((job, match, [(kind, resolve_inside(data_root, path, where)) for kind, path in todo]))
    settled = len(clips) - len(work)
    if on_progress is not None:
        on_progress(settled, len(clips))

    def run(entry: tuple[ClipJob, VideoMatch, list[tuple[str, Path]]]) -> tuple[str, str | None]:
        job, match, todo = entry
        try:
            _prepare_clip(job, match, todo, suite)
            return job.clip, None
        except DataError as exc:
            return job.clip, f"{match.path}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in as_completed([pool.submit(run, entry) for entry in work]):
            clip, error = future.result()
            if error is None:
                report.prepared.append(clip)
            else:
                report.failed[clip] = error
            settled += 1
            if on_progress is not None:
                on_progress(settled, len(clips))
    report.prepared.sort()
    return report
