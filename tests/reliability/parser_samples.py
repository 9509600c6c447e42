"""Valid inputs for the parsers, to fuzz by mutation: manifest lines, a suite spec, a record."""

from __future__ import annotations

import json
from importlib import resources

from avbench.defaults import SCHEMA_VERSION
from avbench.record import Counts, Failure, MetricEntry, ModelInfo, Record, SuiteInfo
from avbench.suites.spec import load_suite


def manifest_lines() -> list[str]:
    """The first line of each shipped synthetic manifest (with and without frames, two and more sources)."""
    return [
        load_suite(name).manifest_bytes().decode("utf-8").splitlines()[0]
        for name in ("synth-sep", "synth-mixed2", "synth-single")
    ]


def suite_spec() -> dict:
    return json.loads((resources.files("avbench.suites") / "specs" / "synth-mixed2.json").read_text("utf-8"))


def record() -> Record:
    """A record with every field set, nested values included."""
    return Record(
        schema_version=SCHEMA_VERSION,
        avbench_version="0.1.0",
        created="2026-01-02T03:04:05+00:00",
        run_key="ab" * 32,
        model=ModelInfo(
            name="oracle",
            version="1",
            entry="avbench.models.sanity:OracleModel",
            checkpoint=None,
            checkpoint_sha256=None,
            uses_ground_truth=True,
        ),
        suite=SuiteInfo(
            name="synth-sep",
            version="1.0.0",
            protocol=1,
            manifest="synth-sep.jsonl",
            manifest_sha256="cd" * 32,
            items_sha256="ef" * 32,
            data="synth",
            spec_sha256="fe" * 32,
        ),
        tasks=["separate_audio"],
        seed=0,
        n=Counts(original=100, effective=10, failed=1, missing=2),
        metrics=[
            MetricEntry(
                name="SDR[bss-v3]",
                value=12.5,
                higher_is_better=True,
                backbone="bss-v3",
                metric="separation",
                task="separate_audio",
                protocol=1,
                n=9,
                skipped=1,
                ci_low=11.0,
                ci_high=14.0,
                details={"filter_length": 512, "nested": {"a": [1, 2.5, None]}},
            ),
            MetricEntry(
                name="KID[clip-synth]",
                value=None,
                higher_is_better=False,
                backbone="clip-synth",
                metric="fidelity",
                task="generate",
                protocol=1,
                n=0,
                spread=0.01,
            ),
        ],
        item_scores_sha256="dc" * 32,
        bootstrap={"resamples": 1000, "confidence": 0.95, "seed": 0},
        device="cpu",
        batch_size=16,
        world_size=1,
        failures=[Failure(item="synth-sep-00003", task="separate_audio", reason="model raised RuntimeError: x")],
        warnings=["1 item(s) failed and are excluded from every metric"],
        weights={"clip-synth": {"sha256": "01" * 32, "verified": True}},
        environment={"python": "3.11.7", "torch": "2.14.1"},
        timings={"generate": 1.5, "score": 2.25},
        calls={"model_calls": 3, "feature_passes": 0, "feature_cache_hits": 0, "corrupt_cache_files": 0},
    )
