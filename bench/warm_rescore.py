"""Re-scoring a finished run from a warm cache, against its cold first scoring.

Usage: python bench/warm_rescore.py [--model oracle-one] [--suite synth-mixed2] [--limit N]
                             [--batch-size 16] [--backbone inception|clip] [--profile] [--keep DIR]

Two fresh processes run `avbench.evaluate` on the same run directory and
feature cache, under a throw-away $AVBENCH_HOME:
  cold  generate every output, then score (every feature pass computed);
  warm  the same call again: outputs are on disk, features in the cache.
A fresh process per run is what a user re-running `avbench run` gets, so
import and start-up costs count on both sides. Prints each run's stage
timings from the record, its process wall/CPU time, the scoring and
whole-run speed-ups, and the warm run's model calls and feature passes.
Targets: scoring speed-up >= 20x, warm model calls 0 and feature passes 0.

The synthetic suites' clip-synth evaluator is tiny, so their cold feature
passes are cheap and fixed costs bound the speed-up. `--backbone` scores a
copy of the suite with one more metric, FD and KID on a real-size backbone
(inception-v3-compat or clip-vit-b32-openai) with random weights pinned in the
temporary $AVBENCH_HOME, so the cold scoring does the feature work of a real
suite.
`--profile` runs the warm process under cProfile and prints where its time
goes (avbench functions, then everything).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    BACKBONES,
    ChildResult,
    avbench_home,
    emit,
    install_random_weights,
    machine_note,
    pin_weights,
    print_profile,
    run_child,
)

# Libraries that take seconds to import; a warm run needs none of them.
HEAVY_MODULES = ("open_clip", "torchvision", "torch_fidelity", "torchmetrics", "torch._dynamo")


def cpu_seconds() -> float:
    """User + system time of this process and its finished children (data-loading workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_stages_cpu() -> dict[str, float]:
    """Wrap Run.generate and Run.score to add their CPU seconds to the returned dict.

    On a loaded machine the CPU time of a stage varies far less than its wall time.
    """
    from avbench.runner import Run

    seconds: dict[str, float] = {}
    for stage in ("generate", "score"):
        method = getattr(Run, stage)

        def timed(self, *args, _method=method, _stage=stage, **kwargs):
            start = cpu_seconds()
            try:
                return _method(self, *args, **kwargs)
            finally:
                seconds[_stage] = cpu_seconds() - start

        setattr(Run, stage, timed)
    return seconds


def child(argv: list[str]) -> None:
    """One `avbench.evaluate` call; reports the record's timings and counters."""
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--suite", "--out", "--cache-dir", "--profile-to"):
        parser.add_argument(flag)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pin", nargs=3, metavar=("NAME", "FILE", "SHA256"), help="weights entry to re-register")
    args = parser.parse_args(argv)
    if args.pin:
        pin_weights(*args.pin)
    import cProfile

    profile = cProfile.Profile() if args.profile_to else None
    start = time.perf_counter()
    if profile:
        profile.enable()
    import avbench

    stage_cpu = time_stages_cpu()
    record = avbench.evaluate(
        args.model,
        args.suite,
        out=args.out,
        cache_dir=args.cache_dir,
        limit=args.limit,
        batch_size=args.batch_size,
        allow_small_n=True,
    )
    wall = time.perf_counter() - start
    if profile:
        profile.disable()
        profile.dump_stats(args.profile_to)
    heavy = [m for m in HEAVY_MODULES if m in sys.modules]
    emit(
        {
            "evaluate_wall": wall,
            "timings": record.timings,
            "calls": record.calls,
            "n": record.n.effective,
            "heavy_imports": heavy,
            "cpu": stage_cpu,
        }
    )


def suite_with_backbone(suite: str, backbone: str, folder: Path) -> Path:
    """A copy of built-in `suite` with FD and KID on `backbone` added; its manifest stays the shipped one."""
    from importlib import resources

    spec = json.loads(resources.files("avbench.suites").joinpath("specs", f"{suite}.json").read_text("utf-8"))
    kid_subset = next(
        (m["options"]["kid_subset_size"] for m in spec["metrics"] if "kid_subset_size" in m.get("options", {})), 100
    )
    spec["name"] = f"{suite}+{backbone}"
    spec["metrics"].append(
        {
            "metric": "fidelity",
            "task": "generate",
            "options": {"backbone": backbone, "metrics": ["fd", "kid"], "kid_subset_size": kid_subset},
        }
    )
    path = folder / f"{suite}+{backbone}.json"
    path.write_text(json.dumps(spec, indent=2), "utf-8")
    return path


def describe(name: str, result: ChildResult) -> str:
    timings, cpu = result.report["timings"], result.report["cpu"]
    return (
        f"{name:4s} generate {timings['generate']:7.2f} s (cpu {cpu['generate']:6.2f} s), "
        f"score {timings['score']:7.2f} s (cpu {cpu['score']:6.2f} s), "
        f"import+evaluate {result.report['evaluate_wall']:7.2f} s; {result.describe()}\n"
        f"     calls {result.report['calls']}; "
        f"heavy libraries imported: {', '.join(result.report['heavy_imports']) or 'none'}"
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="oracle-one")
    parser.add_argument("--suite", default="synth-mixed2")
    parser.add_argument("--limit", type=int, help="only the first N items")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--backbone", choices=sorted(BACKBONES), help="also score FD/KID on this real-size backbone (random weights)"
    )
    parser.add_argument("--profile", action="store_true", help="profile the warm run and print where its time goes")
    parser.add_argument("--keep", type=Path, help="put the run and cache here (kept) instead of a temporary folder")
    args = parser.parse_args()

    print(machine_note(), flush=True)
    with avbench_home() as home, tempfile.TemporaryDirectory(prefix="avbench-bench-profile-") as scratch:
        root = args.keep or home
        suite = args.suite
        pin: list[str] = []
        if args.backbone:
            pin = ["--pin", *install_random_weights(args.backbone, Path(scratch))]
            suite = str(suite_with_backbone(args.suite, BACKBONES[args.backbone], Path(scratch)))
        common = [
            "--model",
            args.model,
            "--suite",
            suite,
            "--out",
            str(root / "run"),
            "--cache-dir",
            str(root / "cache"),
            "--batch-size",
            str(args.batch_size),
            *pin,
        ]
        if args.limit:
            common += ["--limit", str(args.limit)]
        cold = run_child(__file__, common)
        print(describe("cold", cold), flush=True)
        profile_file = Path(scratch) / "warm.prof"
        warm = run_child(__file__, common + (["--profile-to", str(profile_file)] if args.profile else []))
        print(describe("warm", warm), flush=True)

        score = cold.report["timings"]["score"] / warm.report["timings"]["score"]
        score_cpu = cold.report["cpu"]["score"] / warm.report["cpu"]["score"]
        evaluate = cold.report["evaluate_wall"] / warm.report["evaluate_wall"]
        process = cold.wall / warm.wall
        calls = warm.report["calls"]
        extra = f" + FD/KID on {BACKBONES[args.backbone]} (random weights)" if args.backbone else ""
        print(f"\n{args.model} on {args.suite}{extra}, {cold.report['n']} items, batch size {args.batch_size}")
        print(
            f"speed-up warm vs cold: scoring stage {score:.1f}x (cpu {score_cpu:.1f}x), "
            f"import+evaluate {evaluate:.1f}x, "
            f"whole process {process:.1f}x (cpu {cold.cpu / warm.cpu:.1f}x)"
        )
        print(
            f"warm run: model calls {calls['model_calls']}, feature passes {calls['feature_passes']}, "
            f"score cache hits {calls['score_cache_hits']}, "
            f"items loaded for scoring {calls['items_loaded_for_scoring']}"
        )
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
