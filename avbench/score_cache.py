"""Metric results keyed by the content of their inputs: re-scoring a finished run computes nothing.

A metric's entries are a pure function of its code and options, the suite's
spec, the scored items and their labels, the content hashes of the outputs
and the references, the seed, the library versions, and the backbones whose
features it read. The key (scoring.RunScoring.metric_key) covers all but the
backbones, which a metric names only as it runs; so an entry also stores the
identity (weights hash, preprocessing) of every backbone the metric used,
and answers only while all of them are unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from .cache import ArrayCache
from .record import MetricEntry

FORMAT = "avbench-scores/1"

Scores = tuple[list[MetricEntry], dict[str, dict[str, float]]]  # entries, item -> value name -> score


class ScoreCache:
    """One metric's entries and per-item scores per key, in an ArrayCache (checksummed, corrupt files dropped)."""

    def __init__(self, root: Path):
        self._files = ArrayCache(root)

    @property
    def hits(self) -> int:
        return self._files.hits

    @property
    def corrupt(self) -> int:
        return self._files.corrupt

    def get(self, key: str, identity: Callable[[str], dict]) -> Scores | None:
        """The stored scores, if every backbone they were computed with has the same identity now."""
        arrays = self._files.get(key)
        if arrays is None:
            return None
        try:
            stored = json.loads(arrays["json"].tobytes().decode("utf-8"))
            if stored["format"] != FORMAT:
                return None
            if any(identity(name) != used for name, used in stored["backbones"].items()):
                return None
            entries = [MetricEntry(**entry) for entry in stored["entries"]]
            return entries, stored["per_item"]
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, key: str, backbones: dict[str, dict], scores: Scores) -> None:
        entries, per_item = scores
        payload = {
            "format": FORMAT,
            "backbones": backbones,
            "entries": [dataclasses.asdict(e) for e in entries],
            "per_item": per_item,
        }
        self._files.put(key, {"json": np.frombuffer(json.dumps(payload).encode("utf-8"), dtype=np.uint8)})
