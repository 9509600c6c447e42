"""Deterministic builders of the standard suites from public annotation files.

A builder turns the published lists (VGGSound, LLP/AVVP, DAVIS/iQuery pair
lists) into a manifest and a suite spec. Same inputs, same bytes: the files
shipped in data_manifests/ are exactly what `build` returns, which the tests
check. The annotation folder (`--annotations` or $AVBENCH_ANNOTATIONS) is laid out as:
vggsound/{test,stat}.csv, llp/AVVP_{test_pd,dataset_full}.csv, music/{testsepmusic.csv,
MUSIC_solo_videos.json}, ave/{testsepave.csv,test.csv,Annotations.txt}.

Item seeds come from numpy's PCG64 stream seeded 0, in item order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from .. import registry
from ..cache import atomic_write
from ..errors import DataError, RegistryError, SuiteError
from .manifest import dump_items, parse_manifest, sha256_bytes
from .spec import parse_suite

MIXED2_SIZE = 2000
MIXED2_MINI_SIZE = 200
SEED = 0

CLIP = {"backbone": "clip-vit-b32-openai"}
VGGSOUND = "VGGSound test split (Chen, Xie, Vedaldi, Zisserman, ICASSP 2020)"
VGGSOUND_LICENCE = "CC BY 4.0 (annotations, hche11/VGGSound); the videos remain their owners'"
NO_LICENCE = "no licence stated by the list's source; the videos remain their owners'"

# LLP/AVVP writes AudioSet class names with '_' for both ' ' and ', '. Items use
# the AudioSet display names; the three names with a comma are listed here.
LLP_COMMA_NAMES = {
    "Baby_cry_infant_cry": "Baby cry, infant cry",
    "Chicken_rooster": "Chicken, rooster",
    "Violin_fiddle": "Violin, fiddle",
}
# DAVIS's AVE pair list names class folders by short tokens; the classes are AVE's 28 categories.
AVE_FOLDERS = {
    "Accordion": "Accordion", "Acoustic_guitar": "Acoustic guitar", "Aircraft": "Fixed-wing aircraft, airplane",
    "Baby": "Baby cry, infant cry", "Banjo": "Banjo", "Bark": "Bark", "Bus": "Bus", "Cat": "Cat",
    "Chainsaw": "Chainsaw", "Church_bell": "Church bell", "Clock": "Clock", "Female": "Female speech, woman speaking",
    "Flute": "Flute", "Food": "Frying (food)", "Goat": "Goat", "Helicopter": "Helicopter", "Horse": "Horse",
    "Male": "Male speech, man speaking", "Mandolin": "Mandolin", "Motorcycle": "Motorcycle",
    "Race_car": "Race car, auto racing", "Rodent": "Rodents, rats, mice", "Shofar": "Shofar",
    "Toilet": "Toilet flush", "Train": "Train horn", "Truck": "Truck", "Ukulele": "Ukulele", "Violin": "Violin, fiddle",
}  # fmt: skip


def build(suite_name: str, annotations_dir: str | Path | None) -> tuple[bytes, dict]:
    """The suite's canonical manifest bytes and its spec (with manifest name and sha256)."""
    try:
        builder = registry.manifest_builders.get(suite_name)
    except RegistryError as exc:
        raise SuiteError(str(exc)) from None
    items, spec = builder(Path(annotations_dir) if annotations_dir is not None else None)
    data = dump_items(items)
    spec = {**spec, "name": suite_name, "manifest": f"{suite_name}.jsonl", "manifest_sha256": sha256_bytes(data)}
    suite = parse_suite(spec, f"built suite {suite_name}", spec_dir="")
    unknown = {label for item in parse_manifest(data, spec["manifest"]) for label in item.labels} - set(suite.classes)
    if unknown:
        raise SuiteError(f"built suite {suite_name}: labels not among its classes: {sorted(unknown)[:5]}")
    return data, spec


def spec_text(spec: dict) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_suite(root: Path, data: bytes, spec: dict) -> list[Path]:
    """Write manifest, spec and the SHA256SUMS line under a project root; returns the paths."""
    manifest = root / "data_manifests" / spec["manifest"]
    spec_path = root / "avbench" / "suites" / "specs" / f"{spec['name']}.json"
    sums_path = root / "data_manifests" / "SHA256SUMS"
    sums = {}
    if sums_path.is_file():
        for line in sums_path.read_text("utf-8").splitlines():
            digest, _, name = line.partition("  ")
            sums[name] = digest
    sums[spec["manifest"]] = spec["manifest_sha256"]
    atomic_write(manifest, data)
    atomic_write(spec_path, spec_text(spec).encode("utf-8"))
    atomic_write(sums_path, "".join(f"{sums[name]}  {name}\n" for name in sorted(sums)).encode("utf-8"))
    return [manifest, spec_path, sums_path]


def shipped_differences(data: bytes, spec: dict) -> list[str]:
    """How a fresh build differs from the manifest and spec shipped in the package."""
    name = spec["name"]
    found = []
    shipped = resources.files("avbench.manifests").joinpath(spec["manifest"])
    if not shipped.is_file():
        found.append(f"{spec['manifest']}: not shipped")
    elif shipped.read_bytes() != data:
        found.append(
            f"{spec['manifest']}: shipped sha256 {sha256_bytes(shipped.read_bytes())}, built {spec['manifest_sha256']}"
        )
    shipped_spec = resources.files("avbench.suites").joinpath("specs", f"{name}.json")
    if not shipped_spec.is_file():
        found.append(f"suites/{name}.json: not shipped")
    elif json.loads(shipped_spec.read_text("utf-8")) != spec:
        found.append(f"suites/{name}.json: differs from the built spec")
    return found


# ---- annotation readers ----------------------------------------------------------


def annotation_file(annotations: Path | None, relative: str) -> Path:
    if annotations is None:
        raise DataError(f"this suite is built from public annotation files: pass --annotations DIR holding {relative}")
    path = annotations / relative
    if not path.is_file():
        raise DataError(f"annotation file {path} not found (see data_manifests/README.md for the layout)")
    return path


def csv_rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.reader(handle, delimiter=delimiter) if row]


def vggsound_test_clips(annotations: Path | None) -> list[tuple[str, str]]:
    """(clip id, label) per test row; the clip id is the file stem `YTID_start`."""
    rows = csv_rows(annotation_file(annotations, "vggsound/test.csv"))
    return [(Path(name).stem, label) for name, label in rows]


def _vggsound_classes(annotations: Path | None) -> list[str]:
    return [row[0] for row in csv_rows(annotation_file(annotations, "vggsound/stat.csv"))]


def llp_class_name(token: str) -> str:
    return LLP_COMMA_NAMES.get(token, token.replace("_", " "))


def _pair_list(path: Path) -> list[list[tuple[str, str]]]:
    """DAVIS pair rows `/Class/ID.wav, /Class/ID.wav` -> [(class folder, clip id), ...] per row."""
    pairs = []
    for number, row in enumerate(csv_rows(path), start=1):
        pair = []
        for cell in row:
            parts = cell.strip().split("/")
            if len(parts) != 3 or parts[0] or not parts[2].endswith(".wav"):
                raise DataError(f"{path} line {number}: {cell!r} is not '/Class/ID.wav'")
            pair.append((parts[1], parts[2][: -len(".wav")]))
        pairs.append(pair)
    return pairs


# ---- items ---------------------------------------------------------------------------


def source_entry(clip: str, label: str | None, with_frame: bool = True) -> dict:
    source = {"clip": clip, "label": label, "path": f"audio/{clip}.wav", "start": 0.0, "gain_db": 0.0}
    if with_frame:
        source["frame"] = {"path": f"frames/{clip}.jpg", "rule": "middle"}
    return source


def item_seeds(count: int) -> list[int]:
    rng = np.random.Generator(np.random.PCG64(SEED))
    return [int(s) for s in rng.integers(0, 2**31, size=count)]


def single_source_items(suite_name: str, clips: list[tuple[str, str]]) -> list[dict]:
    """One seeded item per (clip, label), ids `{suite_name}-00000` on: the layout every one-source suite shares."""
    return [
        {
            "id": f"{suite_name}-{k:05d}",
            "seed": seed,
            "labels": [label],
            "mix": "mean",
            "sources": [source_entry(clip, label)],
        }
        for k, ((clip, label), seed) in enumerate(zip(clips, item_seeds(len(clips)), strict=True))
    ]


def _mixed2_items(annotations: Path | None) -> list[dict]:
    """Pairs (a, b) drawn uniformly from the test rows, redrawn until the labels
    differ and the unordered pair is new; each accepted pair then draws its seed."""
    clips = vggsound_test_clips(annotations)
    rng = np.random.Generator(np.random.PCG64(SEED))
    seen: set[frozenset[int]] = set()
    items = []
    while len(items) < MIXED2_SIZE:
        a, b = (int(k) for k in rng.integers(0, len(clips), size=2))
        if clips[a][1] == clips[b][1] or frozenset((a, b)) in seen:
            continue
        seen.add(frozenset((a, b)))
        items.append(
            {
                "id": f"mixed2-{len(items):05d}",
                "seed": int(rng.integers(0, 2**31)),
                "labels": [clips[a][1], clips[b][1]],
                "mix": "equal-rms-mean",
                "sources": [source_entry(*clips[a]), source_entry(*clips[b])],
            }
        )
    return items


def vggsound_spec(tasks: list[str], metrics: list[dict], description: str, annotations: Path | None) -> dict:
    return {
        "version": "1.0.0", "protocol": 1, "tasks": tasks, "sample_rate": 16000, "clip_seconds": 10.0,
        "classes": _vggsound_classes(annotations), "data": "files", "dataset": VGGSOUND,
        "licence": VGGSOUND_LICENCE, "description": description, "metrics": metrics,
    }  # fmt: skip


MIXED2_METRICS = [
    {"metric": "clip-retrieval", "task": "generate", "options": CLIP},
    {"metric": "clip-per-source", "task": "generate_per_source", "options": CLIP},
    {
        "metric": "fidelity",
        "task": "generate",
        "options": {"backbone": "inception-v3-compat", "metrics": ["fd", "kid", "is"]},
    },
]


def build_vggsound_single(annotations: Path | None) -> tuple[list[dict], dict]:
    items = single_source_items("vggsound-single", vggsound_test_clips(annotations))
    metrics = [
        {"metric": "clip-retrieval", "task": "generate", "options": CLIP},
        {
            "metric": "fidelity",
            "task": "generate",
            "options": {"backbone": "inception-v3-compat", "metrics": ["fd", "kid", "is"]},
        },
        {"metric": "clipscore", "task": "generate", "options": CLIP},
    ]
    description = "Every VGGSound test clip, one source per item, 10 s at 16 kHz; reference frame = the middle frame."
    return items, vggsound_spec(["generate"], metrics, description, annotations)


def build_mixed2(annotations: Path | None) -> tuple[list[dict], dict]:
    description = (
        f"{MIXED2_SIZE} seeded pairs (PCG64 seed {SEED}) of VGGSound test clips with distinct labels; "
        "sources scaled to their mean RMS and averaged; 10 s at 16 kHz."
    )
    return _mixed2_items(annotations), vggsound_spec(
        ["generate", "generate_per_source"], MIXED2_METRICS, description, annotations
    )


def build_mixed2_mini(annotations: Path | None) -> tuple[list[dict], dict]:
    description = f"The first {MIXED2_MINI_SIZE} items of mixed2 (same ids), for CI regression checks."
    items = _mixed2_items(annotations)[:MIXED2_MINI_SIZE]
    return items, vggsound_spec(["generate", "generate_per_source"], MIXED2_METRICS, description, annotations)


def build_llp_multi(annotations: Path | None) -> tuple[list[dict], dict]:
    """AVVP test videos whose label list has two or more entries (MACS's rule, which
    counts the list as written: one video lists "Clapping,Clapping" and so has one class)."""
    rows = csv_rows(annotation_file(annotations, "llp/AVVP_test_pd.csv"), delimiter="\t")[1:]
    chosen = [(name, labels.split(",")) for name, labels in rows if len(labels.split(",")) >= 2]
    items = [
        {
            "id": f"llp-multi-{k:05d}",
            "seed": seed,
            "mix": "mean",
            "labels": list(dict.fromkeys(llp_class_name(t) for t in tokens)),
            "sources": [source_entry(clip, None, with_frame=False)],
            "frame": {"path": f"frames/{clip}.jpg", "rule": "middle"},
        }  # fmt: skip
        for k, ((clip, tokens), seed) in enumerate(zip(chosen, item_seeds(len(chosen)), strict=True))
    ]
    full = csv_rows(annotation_file(annotations, "llp/AVVP_dataset_full.csv"), delimiter="\t")[1:]
    classes = sorted({llp_class_name(t) for _, labels in full for t in labels.split(",")})
    spec = {
        "version": "1.0.0", "protocol": 1, "tasks": ["generate"], "sample_rate": 16000, "clip_seconds": 8.0,
        "classes": classes, "data": "files",
        "dataset": "LLP / AVVP test split (Tian, Li, Xu, ECCV 2020), videos with two or more labels (MACS's LLP-multi)",
        "licence": NO_LICENCE,
        "description": "AVVP test videos with >= 2 event labels; the centred 8 s at 16 kHz; "
                       "reference frame = the middle frame.",
        "metrics": [
            {"metric": "fidelity", "task": "generate",
             "options": {"backbone": "inception-v3-compat", "metrics": ["fd", "kid"]}},
            {"metric": "fidelity", "task": "generate",
             "options": {"backbone": "clip-vit-b32-openai", "metrics": ["fd"]}},
            {"metric": "ais-iis", "task": "generate",
             "options": {"backbone": "clip-vit-b32-openai", "audio_backbone": "wav2clip"}},
        ],
    }  # fmt: skip
    return items, spec


def _separation_items(name: str, pairs: list[list[tuple[str, str]]], label_of: Callable[[str], str]) -> list[dict]:
    return [
        {
            "id": f"{name}-{k:05d}",
            "seed": seed,
            "mix": "mean",
            "labels": [label_of(folder) for folder, _ in pair],
            "sources": [source_entry(clip, label_of(folder)) for folder, clip in pair],
        }  # fmt: skip
        for k, (pair, seed) in enumerate(zip(pairs, item_seeds(len(pairs)), strict=True))
    ]


def _separation_spec(sample_rate: int, clip_seconds: float, classes: list[str], dataset: str, description: str) -> dict:
    return {
        "version": "1.0.0", "protocol": 1, "tasks": ["separate_audio"], "sample_rate": sample_rate,
        "clip_seconds": clip_seconds, "classes": classes, "data": "files", "dataset": dataset, "licence": NO_LICENCE,
        "description": description,
        "metrics": [{"metric": "separation", "task": "separate_audio", "options": {"permutation": False}}],
    }  # fmt: skip


def build_music_2mix(annotations: Path | None) -> tuple[list[dict], dict]:
    """DAVIS/iQuery MUSIC test pairs in order; labels are the class folders with '_' -> ' '."""
    solo = json.loads(annotation_file(annotations, "music/MUSIC_solo_videos.json").read_text("utf-8"))
    folders = set(solo["videos"])
    pairs = _pair_list(annotation_file(annotations, "music/testsepmusic.csv"))
    unknown = {folder for pair in pairs for folder, _ in pair} - folders
    if unknown:
        raise DataError(f"music/testsepmusic.csv names classes not in MUSIC_solo_videos.json: {sorted(unknown)}")
    items = _separation_items("music-2mix", pairs, lambda folder: folder.replace("_", " "))
    spec = _separation_spec(
        11025, 65535 / 11025, sorted(folder.replace("_", " ") for folder in folders),
        "MUSIC solo test pairs of DAVIS / iQuery (testsepmusic.csv; Zhao et al. ECCV 2018)",
        "The 250 published MUSIC test mixtures, in order: two solo videos, 65,535 samples at 11,025 Hz "
        "centred on each video's middle, averaged; cue = each video's middle frame.",
    )  # fmt: skip
    return items, spec


def build_ave_2mix(annotations: Path | None) -> tuple[list[dict], dict]:
    """DAVIS/iQuery AVE test pairs in order; folder tokens map to AVE's category names,
    cross-checked against the labels DAVIS's ave/test.csv gives each video."""
    pairs = _pair_list(annotation_file(annotations, "ave/testsepave.csv"))
    test_labels: dict[str, set[str]] = {}
    for row in csv_rows(annotation_file(annotations, "ave/test.csv")):
        test_labels.setdefault(Path(row[0]).stem, set()).add(row[3])
    for number, pair in enumerate(pairs, start=1):
        for folder, clip in pair:
            if folder not in AVE_FOLDERS or AVE_FOLDERS[folder] not in test_labels.get(clip, set()):
                raise DataError(f"ave/testsepave.csv line {number}: /{folder}/{clip}.wav does not match ave/test.csv")
    categories = sorted(
        {
            line.split("&")[0]
            for line in annotation_file(annotations, "ave/Annotations.txt").read_text("utf-8").splitlines()
            if line
        }
    )
    if sorted(AVE_FOLDERS.values()) != categories:
        raise DataError("ave/Annotations.txt categories differ from the 28 AVE classes avbench knows")
    items = _separation_items("ave-2mix", pairs, AVE_FOLDERS.__getitem__)
    spec = _separation_spec(
        11000, 10.0, categories,
        "AVE test pairs of DAVIS / iQuery (testsepave.csv; Tian et al. ECCV 2018)",
        "The 402 published AVE test mixtures, in order: two 10-s clips at 11,000 Hz averaged; "
        "cue = each clip's middle frame.",
    )  # fmt: skip
    return items, spec
