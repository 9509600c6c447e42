"""Ten SIGKILLs at seeded random points of one run, then a resume: the same record, no damaged file.

Five kills come from inside, at a random step of each phase in turn: a model
call, an output landing, a feature batch, a cache file landing, the record
landing (each file kill falls just before or just after its os.replace). Five
come from outside after a random delay, wherever the run then is. Every kill
is followed by a check that what is on disk is whole, and the last resume must
produce the uninterrupted run's record.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from run_integrity import assert_complete, assert_intact
from run_variants import Variant, run_args, variants
from toy_plugins import KINDS

from avbench.record import load_record

KILLS = 10
MAX_ATTEMPTS = 30


def phase(run_dir: Path, cache_dir: Path, variant: Variant, cache_files: int) -> str:
    """Where a kill landed: outputs incomplete, feature cache incomplete, or scoring and writing."""
    if len(list(run_dir.glob("outputs/*/*.done.json"))) < variant.limit * len(variant.tasks):
        return "generation"
    if len(list(cache_dir.rglob("*.npz"))) < cache_files:
        return "features"
    return "scoring"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["synth-sep", "toy-mixed2", "synth-mixed2"])
def test_ten_sigkills_then_resume_equal_an_uninterrupted_run(name, fork_server, toy_suite, tmp_path):
    variant = variants(toy_suite)[name]
    counter = itertools.count()

    def job(out: Path, cache: Path, **kill) -> dict:
        step = next(counter)
        return {
            "args": run_args(variant, out, cache),
            "log": tmp_path / f"{step}.log",
            "events": tmp_path / f"{step}.events",
            **kill,
        }

    (clean,) = fork_server.run(job(tmp_path / "clean", tmp_path / "clean-cache"))
    assert clean.exit == 0, clean.log
    clean_cache_files = len(list((tmp_path / "clean-cache").rglob("*.npz")))

    rng = random.Random(1234)
    in_clean = {kind: clean.events.count(kind) for kind in KINDS}
    plan = [kind for kind in KINDS if in_clean[kind]]
    plan += ["w"] * (KILLS // 2 - len(plan))  # suites without features: more kills while the record lands
    done = dict.fromkeys(KINDS, 0)  # steps of each kind that killed attempts already made
    rescoring_seconds = clean.seconds
    killed_dir, killed_cache = tmp_path / "killed", tmp_path / "killed-cache"
    phases = []
    for attempt in range(MAX_ATTEMPTS):
        if len(phases) == KILLS:
            break
        if attempt < len(plan):
            kind = plan[attempt]
            # never the very last step of a kind, after which that phase would be over
            kill = {"kill_on": [kind, rng.randint(1, max(1, in_clean[kind] - done[kind] - 1))]}
        else:
            kill = {"kill_after": rng.uniform(0, rescoring_seconds)}
        (result,) = fork_server.run(job(killed_dir, killed_cache, **kill))
        assert result.exit == 0 or result.killed, result.log
        if result.killed:
            phases.append(phase(killed_dir, killed_cache, variant, clean_cache_files))
            for kind in done:
                done[kind] += result.events.count(kind)
        else:
            assert attempt >= len(plan), f"planned kill {kill} did not happen"
            rescoring_seconds = result.seconds
        assert_intact(killed_dir, killed_cache)
    assert len(phases) == KILLS
    assert phases[: len(plan)] == sorted(phases[: len(plan)], key=["generation", "features", "scoring"].index)
    assert {"generation", "scoring"} <= set(phases) and ("features" in phases) == bool(clean_cache_files), phases

    (final,) = fork_server.run(job(killed_dir, killed_cache))
    assert final.exit == 0, final.log
    resumed, reference = load_record(killed_dir), load_record(tmp_path / "clean")
    assert resumed.comparable() == reference.comparable()
    assert resumed.n.effective == variant.limit and resumed.n.failed == 0
    assert (killed_dir / "items.csv").read_bytes() == (tmp_path / "clean" / "items.csv").read_bytes()
    assert_complete(killed_dir, killed_cache, variant.tasks, variant.limit)
    assert_complete(tmp_path / "clean", tmp_path / "clean-cache", variant.tasks, variant.limit)
