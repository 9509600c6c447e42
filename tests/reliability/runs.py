"""The runs the reliability tests drive: suites, command lines, record comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Variant:
    suite: str
    tasks: list[str]
    extra: tuple[str, ...] = ()
    limit: int = 8
    batch_size: int = 2


def clip_synth_ready() -> bool:
    from avbench.synth.evaluator import CLIP_WEIGHTS_FILE, WEIGHTS_DIR

    return (WEIGHTS_DIR / CLIP_WEIGHTS_FILE).is_file()


def variants(toy_suite: Path) -> dict[str, Variant]:
    return {
        "synth-sep": Variant("synth-sep", ["separate_audio"]),
        "toy-mixed2": Variant(str(toy_suite), ["generate", "generate_per_source"]),
        "synth-mixed2": Variant("synth-mixed2", ["generate", "generate_per_source"], ("--allow-small-n",)),
    }


def run_args(variant: Variant, out: Path, cache: Path) -> list[str]:
    return [
        "run", "--model", "event-oracle", "--suite", variant.suite, "--limit", str(variant.limit),
        "--batch-size", str(variant.batch_size), "--workers", "0", "--out", str(out), "--cache-dir", str(cache), *variant.extra,
    ]
