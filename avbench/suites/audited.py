"""Builders of the audited suites: the VGGSound and LLP suites with human-checked ground truth.

The published-protocol suites (mixed2, vggsound-single, llp-multi) stay as
they are, for comparison with papers. Their audited siblings keep the same
clip ids, paths, sample rates and windows, so one data root serves both:

- the clean VGGSound pool: every test clip whose VGGSounder labels (the
  package's default `+background-music` file) hold exactly one audible class
  (A or AV), equal to its VGGSound label, with no background music and no
  voice-over; in test.csv order.
- vggsound-single-clean: every clip of the pool.
- mixed2-clean: 2,000 two-class mixtures of pool clips, mixed as mixed2 is.
  One PCG64(0) stream deals the classes in rounds: each round is a permutation
  of the pool's classes, read two at a time, so the two classes of a pair differ
  and every class is dealt once per round (with an odd class count, the one
  left over opens the next round). Within a class, clips are taken in a seeded
  order, cycling. A pair whose two clips were already paired reshuffles the rest
  of its round. Each accepted pair then draws its item seed.
- mixed2-clean-mini: its first 200 items.
- llp-multi-audio: the AVVP test videos (AVVP_test_pd.csv order) with at least
  two distinct audible events in AVVP_eval_audio.csv. G is those events; the
  item lists every event row with its onset and offset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .audit import LLP_AUDIO, VGGSOUNDER, llp_audio_events, vggsounder_labels
from .builders import (
    MIXED2_METRICS,
    MIXED2_MINI_SIZE,
    MIXED2_SIZE,
    SEED,
    VGGSOUND,
    VGGSOUND_LICENCE,
    annotation_file,
    build_llp_multi,
    build_vggsound_single,
    csv_rows,
    item_seeds,
    single_source_items,
    source_entry,
    vggsound_spec,
    vggsound_test_clips,
)

VGGSOUNDER_CITATION = "VGGSounder (Zverev, Wiedemer, Prabhu, Bethge, Brendel, Koepke, ICCV 2025)"
CLEAN_DATASET = f"{VGGSOUND}, audited with {VGGSOUNDER_CITATION}: one audible class, no music, no voice-over"
CLEAN_LICENCE = f"{VGGSOUND_LICENCE}; VGGSounder labels Apache-2.0 (Bizilizi/VGGSounder)"
MIXED2_TASKS = ["generate", "generate_per_source"]
RESHUFFLES = 1000  # a round reshuffled this often without a new clip pair cannot be completed


def clean_pool(annotations: Path | None) -> list[tuple[str, str]]:
    """(clip id, label) of every VGGSound test clip that VGGSounder confirms alone and clean, in test.csv order."""
    labels = vggsounder_labels(annotations)
    pool = []
    for clip, label in vggsound_test_clips(annotations):
        found = labels.get(clip)
        if found is not None and found.audible == {label} and not (found.background_music or found.voice_over):
            pool.append((clip, label))
    return pool


def _clean_pairs(pool: list[tuple[str, str]]) -> list[tuple[int, int, int]]:
    """(pool index a, pool index b, item seed) per mixture; see the module's docstring for the rule."""
    by_class: dict[str, list[int]] = {}
    for index, (_, label) in enumerate(pool):
        by_class.setdefault(label, []).append(index)
    classes = sorted(by_class)
    rng = np.random.Generator(np.random.PCG64(SEED))
    order = {c: [by_class[c][k] for k in rng.permutation(len(by_class[c]))] for c in classes}
    used = dict.fromkeys(classes, 0)
    taken: set[frozenset[int]] = set()
    pairs: list[tuple[int, int, int]] = []
    dealt: list[str] = []
    while len(pairs) < MIXED2_SIZE:
        dealt += [classes[k] for k in rng.permutation(len(classes)) if classes[k] not in dealt]
        reshuffles = 0
        while len(dealt) >= 2 and len(pairs) < MIXED2_SIZE:
            ca, cb = dealt[:2]
            a, b = order[ca][used[ca] % len(order[ca])], order[cb][used[cb] % len(order[cb])]
            if frozenset((a, b)) in taken:
                reshuffles += 1
                if reshuffles > RESHUFFLES:
                    left = len(dealt)
                    raise DataError(f"mixed2-clean: the {left} classes left in a round cannot pair without a repeat")
                dealt = [dealt[k] for k in rng.permutation(len(dealt))]
                continue
            taken.add(frozenset((a, b)))
            used[ca] += 1
            used[cb] += 1
            dealt = dealt[2:]
            pairs.append((a, b, int(rng.integers(0, 2**31))))
    return pairs


def _mixed2_clean_items(annotations: Path | None) -> list[dict]:
    pool = clean_pool(annotations)
    return [
        {
            "id": f"mixed2-clean-{k:05d}",
            "seed": seed,
            "labels": [pool[a][1], pool[b][1]],
            "mix": "equal-rms-mean",
            "sources": [source_entry(*pool[a]), source_entry(*pool[b])],
        }  # fmt: skip
        for k, (a, b, seed) in enumerate(_clean_pairs(pool))
    ]


def _clean_spec(tasks: list[str], metrics: list[dict], description: str, annotations: Path | None) -> dict:
    spec = vggsound_spec(tasks, metrics, description, annotations)
    return {**spec, "dataset": CLEAN_DATASET, "licence": CLEAN_LICENCE}


def build_mixed2_clean(annotations: Path | None) -> tuple[list[dict], dict]:
    description = (
        f"{MIXED2_SIZE} seeded pairs (PCG64 seed {SEED}) of VGGSound test clips that {VGGSOUNDER} confirms hold only "
        "their label, with no music or voice-over; classes dealt evenly in rounds, no clip pair repeated; "
        "sources scaled to their mean RMS and averaged; 10 s at 16 kHz."
    )
    return _mixed2_clean_items(annotations), _clean_spec(MIXED2_TASKS, MIXED2_METRICS, description, annotations)


def build_mixed2_clean_mini(annotations: Path | None) -> tuple[list[dict], dict]:
    description = f"The first {MIXED2_MINI_SIZE} items of mixed2-clean (same ids), for CI regression checks."
    items = _mixed2_clean_items(annotations)[:MIXED2_MINI_SIZE]
    return items, _clean_spec(MIXED2_TASKS, MIXED2_METRICS, description, annotations)


def build_vggsound_single_clean(annotations: Path | None) -> tuple[list[dict], dict]:
    items = single_source_items("vggsound-single-clean", clean_pool(annotations))
    metrics = build_vggsound_single(annotations)[1]["metrics"]
    description = (
        f"Every VGGSound test clip that {VGGSOUNDER} confirms holds only its label, with no music or voice-over; "
        "one source per item, 10 s at 16 kHz; reference frame = the middle frame."
    )
    return items, _clean_spec(["generate"], metrics, description, annotations)


def build_llp_multi_audio(annotations: Path | None) -> tuple[list[dict], dict]:
    """AVVP test videos with >= 2 distinct audible events; G = those events, each row kept with its times."""
    events = llp_audio_events(annotations)
    rows = csv_rows(annotation_file(annotations, "llp/AVVP_test_pd.csv"), delimiter="\t")[1:]
    chosen = [(clip, events[clip]) for clip, _ in rows if len({label for label, _, _ in events.get(clip, [])}) >= 2]
    items = [
        {
            "id": f"llp-multi-audio-{k:05d}",
            "seed": seed,
            "mix": "mean",
            "labels": list(dict.fromkeys(label for label, _, _ in found)),
            "events": [{"label": label, "onset": onset, "offset": offset} for label, onset, offset in found],
            "sources": [source_entry(clip, None, with_frame=False)],
            "frame": {"path": f"frames/{clip}.jpg", "rule": "middle"},
        }  # fmt: skip
        for k, ((clip, found), seed) in enumerate(zip(chosen, item_seeds(len(chosen)), strict=True))
    ]
    _, spec = build_llp_multi(annotations)
    spec = {
        **spec,
        "dataset": f"LLP / AVVP test split (Tian, Li, Xu, ECCV 2020), videos with >= 2 audible events in {LLP_AUDIO}",
        "description": (
            f"AVVP test videos with >= 2 distinct audible events in {LLP_AUDIO}; G = those events. Each item lists "
            "every annotated event with its onset and offset in seconds of the 10-s clip. Audio: the centred 8 s "
            "(clip seconds 1-9) at 16 kHz; reference frame = the middle frame (clip second 5)."
        ),
    }
    return items, spec
