"""Ten SIGKILLs at seeded random points of one run, then a resume: the same record, no damaged file.

Half the kills come from outside after a random delay (wherever the run is:
generating, extracting features, scoring, writing); half from inside at a
random step: a model call, a feature batch, or either side of an os.replace,
i.e. just before or just after a file or marker lands.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from avbench.record import load_record
from integrity import assert_complete, assert_intact

KILLS = 10
MAX_ATTEMPTS = 40


@dataclass
class Variant:
    suite: str
    tasks: list[str]
    extra: tuple[str, ...] = ()
    limit: int = 8
    batch_size: int = 2


def _clip_synth_ready() -> bool:
    from avbench.synth.evaluator import CLIP_WEIGHTS_FILE, WEIGHTS_DIR

    return (WEIGHTS_DIR / CLIP_WEIGHTS_FILE).is_file()


def variants(toy_suite: Path) -> dict[str, Variant]:
    return {
        "synth-sep": Variant("synth-sep", ["separate_audio"]),
        "toy-mixed2": Variant(str(toy_suite), ["generate", "generate_per_source"]),
        "synth-mixed2": Variant("synth-mixed2", ["generate", "generate_per_source"], ("--allow-small-n",)),
    }


def without_weights(record) -> dict:
    return {k: v for k, v in record.comparable().items() if k != "weights"}


def run_args(variant: Variant, out: Path, cache: Path) -> list[str]:
    return [
        "run", "--model", "event-oracle", "--suite", variant.suite, "--limit", str(variant.limit),
        "--batch-size", str(variant.batch_size), "--workers", "0", "--out", str(out), "--cache-dir", str(cache), *variant.extra,
    ]


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "name",
    [
        "synth-sep",
        "toy-mixed2",
        pytest.param("synth-mixed2", marks=pytest.mark.skipif(not _clip_synth_ready(), reason="clip-synth weights not trained yet")),
    ],
)
def test_ten_sigkills_then_resume_equal_an_uninterrupted_run(name, fork_server, toy_suite, tmp_path):
    variant = variants(toy_suite)[name]
    counter = iter(range(10**6))

    def job(out: Path, cache: Path, **kill) -> dict:
        step = next(counter)
        return {"args": run_args(variant, out, cache), "log": tmp_path / f"{step}.log", "events": tmp_path / f"{step}.events", **kill}

    (clean,) = fork_server.run(job(tmp_path / "clean", tmp_path / "clean-cache"))
    assert clean.exit == 0, clean.log

    rng = random.Random(1234)
    steps, seconds = clean.events, clean.seconds  # the extent of the work still to do, refined as attempts finish
    killed_dir, killed_cache = tmp_path / "killed", tmp_path / "killed-cache"
    kills = attempts = 0
    while kills < KILLS and attempts < MAX_ATTEMPTS:
        attempts += 1
        kill = {"kill_at": rng.randint(1, steps)} if attempts % 2 else {"kill_after": rng.uniform(0, seconds)}
        (result,) = fork_server.run(job(killed_dir, killed_cache, **kill))
        assert result.exit == 0 or result.killed, result.log
        if result.killed:
            kills += 1
            import sys; print("KILL", kill, len(list(killed_dir.glob("outputs/*/*.done.json"))), len(list(killed_cache.rglob("*.npz"))), (killed_dir/"record.json").exists(), result.events, file=sys.stderr)
        else:
            steps, seconds = result.events, result.seconds
        assert_intact(killed_dir, killed_cache)
    assert kills == KILLS

    (final,) = fork_server.run(job(killed_dir, killed_cache))
    assert final.exit == 0, final.log
    resumed, reference = load_record(killed_dir), load_record(tmp_path / "clean")
    assert without_weights(resumed) == without_weights(reference)  # `weights`: see test_warm_cache.py
    assert resumed.n.effective == variant.limit and resumed.n.failed == 0
    assert (killed_dir / "items.csv").read_bytes() == (tmp_path / "clean" / "items.csv").read_bytes()
    assert_complete(killed_dir, killed_cache, variant.tasks, variant.limit)
    assert_complete(tmp_path / "clean", tmp_path / "clean-cache", variant.tasks, variant.limit)
