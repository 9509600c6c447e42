"""The runs the crash and concurrency tests drive: suites and command lines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Variant:
    """One suite as the crash and concurrency tests run it, with the tasks whose outputs it writes."""

    suite: str
    tasks: list[str]
    extra: tuple[str, ...] = ()
    limit: int = 8
    batch_size: int = 2


def variants(toy_suite: Path) -> dict[str, Variant]:
    """synth-sep: outputs and SDR, no features; toy-mixed2 and synth-mixed2: images, features, retrieval."""
    return {
        "synth-sep": Variant("synth-sep", ["separate_audio"]),
        "toy-mixed2": Variant(str(toy_suite), ["generate", "generate_per_source"]),
        "synth-mixed2": Variant("synth-mixed2", ["generate", "generate_per_source"], ("--allow-small-n",)),
    }


def run_args(variant: Variant, out: Path, cache: Path) -> list[str]:
    """`avbench run` of the slowed-down, step-logging oracle (see toy_plugins.EventOracle)."""
    return [
        "run",
        "--model",
        "event-oracle",
        "--suite",
        variant.suite,
        "--limit",
        str(variant.limit),
        "--batch-size",
        str(variant.batch_size),
        "--workers",
        "0",
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        *variant.extra,
    ]
