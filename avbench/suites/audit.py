"""How far a suite's ground truth G agrees with human audio labels.

VGGSound gives one label per clip and LLP one weak list per video; VGGSounder
(Bizilizi/VGGSounder, ICCV 2025, Apache-2.0) marks every class of a VGGSound
test clip as audible (A), visible (V) or both (AV), and AVVP_eval_audio.csv
gives LLP's audible events with their onsets and offsets. A synthetic clip's
audible classes are part of its name (see avbench/synth/world.py), so the
synthetic suites audit without annotation files.

Per source, the claimed classes are its label, or the item's labels when the
source has none (LLP's labels belong to the whole clip). An item is confirmed
when every source is annotated, every labelled source holds exactly its label
as audible, and the audible classes of its sources together are exactly G.

The audits of the shipped suites are committed in data_manifests/audit.json
(`avbench manifest audit --all --write`), so `avbench list suites` shows each
suite's confirmed fraction without the annotation files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from ..errors import DataError, SuiteError
from .builders import annotation_file, csv_rows, llp_class_name
from .spec import Suite

VGGSOUNDER = "vggsounder/vggsounder+background-music.csv"  # the vggsounder package's default file
LLP_AUDIO = "llp/AVVP_eval_audio.csv"
AUDIBLE = ("A", "AV")
AUDIT_TABLE = "audit.json"


@dataclass(frozen=True)
class ClipLabels:
    """A VGGSounder clip: its audible classes and the clip-level flags."""

    audible: frozenset[str]
    background_music: bool
    voice_over: bool


@dataclass(frozen=True)
class Audit:
    suite: str
    manifest_sha256: str
    reference: str  # what the audible classes come from
    items: int
    sources: int
    unannotated_sources: int  # clips the reference does not cover
    multi_class_sources: int  # more than one audible class
    extra_class_sources: int  # an audible class beyond the source's claimed ones
    inaudible_labels: int  # (source, claimed class) pairs whose class is not audible
    differing_items: int  # annotated items whose audible classes together are not G
    multi_class_items_below_two: int  # items with |G| >= 2 whose sources hold fewer than two audible classes
    confirmed_items: int

    @property
    def confirmed_fraction(self) -> float:
        return self.confirmed_items / self.items

    def as_dict(self) -> dict:
        return {**asdict(self), "confirmed_fraction": round(self.confirmed_fraction, 6)}


def _flag(value: str, path: Path, number: int) -> bool:
    if value not in ("True", "False"):
        raise DataError(f"{path} line {number}: expected True or False, got {value!r}")
    return value == "True"


def vggsounder_labels(annotations: Path | None) -> dict[str, ClipLabels]:
    """Clip id -> its VGGSounder labels, from the package's default `+background-music` file."""
    path = annotation_file(annotations, VGGSOUNDER)
    audible: dict[str, set[str]] = {}
    flags: dict[str, tuple[bool, bool]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            clip = row["video_id"]
            found = (_flag(row["background_music"], path, number), _flag(row["voice_over"], path, number))
            if flags.setdefault(clip, found) != found:
                raise DataError(f"{path} line {number}: clip {clip} changes its background-music or voice-over flag")
            audible.setdefault(clip, set())
            if row["modality"] in AUDIBLE:
                audible[clip].add(row["label"])
    return {clip: ClipLabels(frozenset(audible[clip]), *flags[clip]) for clip in audible}


def llp_audio_events(annotations: Path | None) -> dict[str, list[tuple[str, float, float]]]:
    """LLP clip id -> its audible events (AudioSet display name, onset s, offset s), in file order.

    Every row counts, as in AVVP's video-level audio labels; a few rows have offset == onset, which
    marks no 1-s segment in AVVP's segment-level evaluation (`GT_a[class, onset:offset] = 1`).
    """
    events: dict[str, list[tuple[str, float, float]]] = {}
    for name, onset, offset, label in csv_rows(annotation_file(annotations, LLP_AUDIO), delimiter="\t")[1:]:
        events.setdefault(name, []).append((llp_class_name(label), float(onset), float(offset)))
    return events


def _reference(suite: Suite, annotations: Path | None) -> tuple[str, dict[str, frozenset[str]]]:
    """What the suite is audited against, and clip id -> audible classes."""
    if suite.data == "synth":
        from ..synth.world import clip_labels

        clips = {s.clip for item in suite.items for s in item.sources}
        return "the synthetic world's clip names", {clip: frozenset(clip_labels(clip)) for clip in clips}
    if suite.dataset.startswith("VGGSound"):
        return VGGSOUNDER, {clip: labels.audible for clip, labels in vggsounder_labels(annotations).items()}
    if suite.dataset.startswith("LLP"):
        events = llp_audio_events(annotations)
        return LLP_AUDIO, {clip: frozenset(label for label, _, _ in found) for clip, found in events.items()}
    raise SuiteError(f"suite {suite.name!r}: no human audio labels to audit it against (VGGSound, LLP or synth only)")


def audit_suite(suite: Suite, annotations: Path | None) -> Audit:
    """Audit every item of `suite`; `annotations` is the folder of vggsounder/ and llp/ (unused for synth-*)."""
    reference, audible = _reference(suite, annotations)
    names = ("sources", "unannotated", "multi", "extra", "inaudible", "differing", "below", "confirmed")
    counts = dict.fromkeys(names, 0)
    for item in suite.items:
        heard: set[str] = set()
        exact = annotated = True
        for source in item.sources:
            counts["sources"] += 1
            claimed = {source.label} if source.label is not None else set(item.labels)
            found = audible.get(source.clip)
            if found is None:
                counts["unannotated"] += 1
                annotated = False
                continue
            heard |= found
            counts["multi"] += len(found) > 1
            counts["extra"] += bool(found - claimed)
            counts["inaudible"] += len(claimed - found)
            exact &= source.label is None or found == claimed
        if annotated:
            counts["differing"] += heard != set(item.labels)
            counts["below"] += len(item.labels) >= 2 and len(heard) < 2
            counts["confirmed"] += exact and heard == set(item.labels)
    return Audit(
        suite=suite.name, manifest_sha256=suite.manifest_sha256, reference=reference, items=len(suite.items),
        sources=counts["sources"], unannotated_sources=counts["unannotated"], multi_class_sources=counts["multi"],
        extra_class_sources=counts["extra"], inaudible_labels=counts["inaudible"], differing_items=counts["differing"],
        multi_class_items_below_two=counts["below"], confirmed_items=counts["confirmed"],
    )  # fmt: skip


def is_auditable(suite: Suite) -> bool:
    return suite.data == "synth" or suite.dataset.startswith(("VGGSound", "LLP"))


def report_lines(audit: Audit) -> list[str]:
    """The audit in words, one figure a line."""
    return [
        f"{audit.suite}: {audit.items:,} items, {audit.sources:,} sources, audited against {audit.reference}",
        f"  {audit.unannotated_sources:,} sources not annotated",
        f"  {audit.multi_class_sources:,} multi-class sources (more than one audible class)",
        f"  {audit.extra_class_sources:,} sources with an audible class beyond their labels",
        f"  {audit.inaudible_labels:,} inaudible labels (a labelled class not audible in its source)",
        f"  {audit.differing_items:,} items whose audible classes differ from G",
        f"  {audit.multi_class_items_below_two:,} multi-class items with fewer than two audible classes",
        f"  {audit.confirmed_items:,} of {audit.items:,} items confirmed ({audit.confirmed_fraction:.1%})",
    ]


def table_text(kept: dict[str, dict], audits: Iterable[Audit]) -> str:
    """The committed audit table, suite -> audit, as canonical JSON: `kept` updated by `audits`."""
    table = {**kept, **{audit.suite: audit.as_dict() for audit in audits}}
    return json.dumps(table, indent=2, sort_keys=True) + "\n"


def committed_audits() -> dict[str, dict]:
    """The audit table shipped in avbench.manifests."""
    return json.loads(resources.files("avbench.manifests").joinpath(AUDIT_TABLE).read_text("utf-8"))


def confirmed_fraction(suite: Suite) -> float | None:
    """The committed confirmed fraction of a suite's pinned manifest; None if it was never audited."""
    entry = committed_audits().get(suite.name)
    if entry is None or entry["manifest_sha256"] != suite.manifest_sha256:
        return None
    return entry["confirmed_fraction"]
