"""Re-scoring a finished run from a warm cache, against its cold first scoring.

Usage: python bench/cache.py [--model oracle-one] [--suite synth-mixed2] [--limit N]
                             [--batch-size 16] [--profile] [--keep DIR]

Two fresh processes run `avbench.evaluate` on the same run directory and
feature cache, under a throw-away $AVBENCH_HOME:
  cold  generate every output, then score (every feature pass computed);
  warm  the same call again: outputs are on disk, features in the cache.
A fresh process per run is what a user re-running `avbench run` gets, so
import and start-up costs count on both sides. Prints each run's stage
timings from the record, its process wall/CPU time, the scoring and
whole-run speed-ups, and the warm run's model calls and feature passes.
Targets: scoring speed-up >= 20x, warm model calls 0 and feature passes 0.
`--profile` runs the warm process under cProfile and prints where its time
goes (avbench functions, then everything).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import ChildResult, avbench_home, emit, machine_note, print_profile, run_child


def child(argv: list[str]) -> None:
    """One `avbench.evaluate` call; reports the record's timings and counters."""
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--suite", "--out", "--cache-dir", "--profile-to"):
        parser.add_argument(flag)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    import cProfile

    profile = cProfile.Profile() if args.profile_to else None
    start = time.perf_counter()
    if profile:
        profile.enable()
    import avbench

    record = avbench.evaluate(args.model, args.suite, out=args.out, cache_dir=args.cache_dir, limit=args.limit, batch_size=args.batch_size, allow_small_n=True)
    wall = time.perf_counter() - start
    if profile:
        profile.disable()
        profile.dump_stats(args.profile_to)
    emit({"evaluate_wall": wall, "timings": record.timings, "calls": record.calls, "n": record.n.effective})


def describe(name: str, result: ChildResult) -> str:
    timings = result.report["timings"]
    return (
        f"{name:4s} generate {timings['generate']:7.2f} s, score {timings['score']:7.2f} s, "
        f"import+evaluate {result.report['evaluate_wall']:7.2f} s; {result.describe()}\n"
        f"     calls {result.report['calls']}"
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="oracle-one")
    parser.add_argument("--suite", default="synth-mixed2")
    parser.add_argument("--limit", type=int, help="only the first N items")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="profile the warm run and print where its time goes")
    parser.add_argument("--keep", type=Path, help="put the run and cache here (kept) instead of a temporary folder")
    args = parser.parse_args()

    print(machine_note(), flush=True)
    with avbench_home() as home, tempfile.TemporaryDirectory(prefix="avbench-bench-profile-") as scratch:
        root = args.keep or home
        common = ["--model", args.model, "--suite", args.suite, "--out", str(root / "run"), "--cache-dir", str(root / "cache"),
                  "--batch-size", str(args.batch_size)]
        if args.limit:
            common += ["--limit", str(args.limit)]
        cold = run_child(__file__, common)
        print(describe("cold", cold), flush=True)
        profile_file = Path(scratch) / "warm.prof"
        warm = run_child(__file__, common + (["--profile-to", str(profile_file)] if args.profile else []))
        print(describe("warm", warm), flush=True)

        score = cold.report["timings"]["score"] / warm.report["timings"]["score"]
        evaluate = cold.report["evaluate_wall"] / warm.report["evaluate_wall"]
        process = cold.wall / warm.wall
        calls = warm.report["calls"]
        print(f"\n{args.model} on {args.suite}, {cold.report['n']} items, batch size {args.batch_size}")
        print(f"speed-up warm vs cold: scoring stage {score:.1f}x, import+evaluate {evaluate:.1f}x, "
              f"whole process {process:.1f}x (cpu {cold.cpu / warm.cpu:.1f}x)")
        print(f"warm run: model calls {calls['model_calls']}, feature passes {calls['feature_passes']}, "
              f"feature cache hits {calls['feature_cache_hits']}")
        verdict = score >= 20 and calls["model_calls"] == 0 and calls["feature_passes"] == 0
        print(f"target (scoring >= 20x, 0 model calls, 0 feature passes): {'met' if verdict else 'NOT met'}")
        print(machine_note())
        if args.profile:
            print("\nwarm run, avbench functions by cumulative time:")
            print_profile(str(profile_file), 30, "avbench/")
            print("warm run, everything by cumulative time:")
            print_profile(str(profile_file), 30)


if __name__ == "__main__":
    main()
