"""A whole `avbench run`, cold and warm: wall time and the share outside forward passes.

Usage: python bench/e2e.py [--model avgas] [--suite synth-mixed2] [--fallback oracle]
                           [--batch-size 16] [--profile]

Two fresh processes run `avbench.evaluate` (what `avbench run` calls) under a
throw-away $AVBENCH_HOME, on the same run directory and feature cache:
  cold  nothing on disk: generate, extract every feature, score;
  warm  the same command again: everything comes from the run and the cache.
Inside each process the model's task methods (generate, generate_per_source,
separate_audio) and every extractor's encode_images / encode_text /
encode_audio are wrapped with timers, so the forward time is measured in the
same run as the wall time. The outside-forward share is
1 - (model + extractor time) / wall, with wall counted from process start
(interpreter, imports, loading, data, scoring, writing: what a user waits
for), then from the `evaluate` call alone, then in CPU seconds (forward CPU
over the process's CPU), which a loaded machine disturbs least.
Targets: outside-forward share <= 15 % on the cold run; warm run under 5 s.

`--model` takes a registered name or a "module:Class" target (registered
for the run under the class's own name). When the model is not registered
(the avgas baseline may not be yet), the run falls back to `--fallback` and
says so. `--profile` profiles the cold process with cProfile and prints
where its time goes.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any heavy import: the child's wall counts from here

import argparse  # noqa: E402
import functools  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import avbench_home, emit, machine_note, print_profile, run_child  # noqa: E402

TASKS = ("generate", "generate_per_source", "separate_audio")
ENCODERS = ("encode_images", "encode_text", "encode_audio")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timers:
    """Wall seconds, CPU seconds and calls per kind of forward pass; nested timed calls count once."""

    def __init__(self) -> None:
        self.seconds = {"model": 0.0, "extractor": 0.0}
        self.cpu = {"model": 0.0, "extractor": 0.0}
        self.calls = {"model": 0, "extractor": 0}
        self._depth = 0

    def wrap(self, kind: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            start, start_cpu = time.perf_counter(), own_cpu()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[kind] += time.perf_counter() - start
                self.cpu[kind] += own_cpu() - start_cpu
                self.calls[kind] += 1
                self._depth -= 1

        return timed


def instrument(model_name: str, timers: Timers) -> None:
    """Time the model class's task methods and every extractor `Backbones.get` hands out."""
    from avbench.features import Backbones
    from avbench.registry import models

    model_cls = models.get(model_name)
    for task in TASKS:
        if task in model_cls.tasks:
            setattr(model_cls, task, timers.wrap("model", getattr(model_cls, task)))
    get = Backbones.get

    def timed_get(self, name):
        extractor = get(self, name)
        if not getattr(extractor, "_bench_timed", False):
            for method in ENCODERS:
                if hasattr(extractor, method):
                    setattr(extractor, method, timers.wrap("extractor", getattr(extractor, method)))
            extractor._bench_timed = True
        return extractor

    Backbones.get = timed_get


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--suite", "--out", "--cache-dir", "--profile-to"):
        parser.add_argument(flag)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    import cProfile

    profile = cProfile.Profile() if args.profile_to else None
    if profile:
        profile.enable()
    import avbench

    name = args.model
    if ":" in name:  # an unregistered "module:Class": register it under its own name
        from avbench.registry import import_target

        name = import_target(name).name
        avbench.register_model(name, args.model, replace=True)
    timers = Timers()
    instrument(name, timers)
    begin = time.perf_counter()
    record = avbench.evaluate(name, args.suite, out=args.out, cache_dir=args.cache_dir, batch_size=args.batch_size)
    end = time.perf_counter()
    if profile:
        profile.disable()
        profile.dump_stats(args.profile_to)
    emit({"wall": end - STARTED, "evaluate": end - begin, "forward": timers.seconds, "forward_cpu": timers.cpu, "forward_calls": timers.calls,
          "timings": record.timings, "calls": record.calls, "n": record.n.effective, "model": name})


def resolve_model(requested: str, fallback: str) -> str:
    """The requested model if it can run here, else the fallback, with a message saying why."""
    from avbench.registry import models

    if ":" in requested or requested in models.names():
        return requested
    print(f"NOTE: model {requested!r} is not registered (`avbench list models` shows {', '.join(models.names())}); "
          f"falling back to {fallback!r}. Pass --model NAME or --model module:Class to choose another.", flush=True)
    if fallback in ("oracle", "oracle-one", "random"):
        print(f"NOTE: {fallback!r} is a sanity model whose forward pass only copies data, so its outside-forward share "
              "is near 100 % by construction; only the extractor part of the figure means anything.", flush=True)
    return fallback


def describe(name: str, result) -> str:
    report = result.report
    forward, forward_cpu = report["forward"], report["forward_cpu"]
    inside = forward["model"] + forward["extractor"]
    inside_cpu = forward_cpu["model"] + forward_cpu["extractor"]
    return (
        f"{name:4s} wall {result.wall:7.2f} s (evaluate {report['evaluate']:7.2f} s; stages {', '.join(f'{k} {v:.2f} s' for k, v in report['timings'].items())}), "
        f"cpu {result.cpu:7.2f} s, peak RSS {result.max_rss_mb:6.0f} MB\n"
        f"     forward: model {forward['model']:7.2f} s in {report['forward_calls']['model']} calls, "
        f"extractors {forward['extractor']:7.2f} s in {report['forward_calls']['extractor']} calls; "
        f"outside forward {100 * (1 - inside / result.wall):5.1f} % of the process wall, "
        f"{100 * (1 - inside / report['evaluate']):5.1f} % of evaluate, {100 * (1 - inside_cpu / result.cpu):5.1f} % of the process cpu\n"
        f"     calls {report['calls']}"
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="avgas")
    parser.add_argument("--fallback", default="oracle", help="model to run when --model is not registered")
    parser.add_argument("--suite", default="synth-mixed2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="profile the cold run and print where its time goes")
    args = parser.parse_args()

    print(machine_note(), flush=True)
    model = resolve_model(args.model, args.fallback)
    with avbench_home() as home, tempfile.TemporaryDirectory(prefix="avbench-bench-profile-") as scratch:
        common = ["--model", model, "--suite", args.suite, "--out", str(home / "run"), "--cache-dir", str(home / "cache"),
                  "--batch-size", str(args.batch_size)]
        profile_file = Path(scratch) / "cold.prof"
        cold = run_child(__file__, common + (["--profile-to", str(profile_file)] if args.profile else []))
        print(describe("cold", cold), flush=True)
        warm = run_child(__file__, common)
        print(describe("warm", warm), flush=True)

        forward, forward_cpu = cold.report["forward"], cold.report["forward_cpu"]
        share = 1 - (forward["model"] + forward["extractor"]) / cold.wall
        share_cpu = 1 - (forward_cpu["model"] + forward_cpu["extractor"]) / cold.cpu
        print(f"\n{cold.report['model']} on {args.suite}, {cold.report['n']} items, batch size {args.batch_size}"
              f"{' (profiled: cold timings inflated)' if args.profile else ''}")
        print(f"cold wall {cold.wall:.2f} s, warm wall {warm.wall:.2f} s (cold/warm {cold.wall / warm.wall:.1f}x); "
              f"cold outside-forward share {100 * share:.1f} % of wall ({100 * share_cpu:.1f} % of cpu)")
        print(f"targets: outside-forward share <= 15 %: {'met' if share <= 0.15 else 'NOT met'}; "
              f"warm run < 5 s: {'met' if warm.wall < 5 else 'NOT met'}")
        print(machine_note())
        if args.profile:
            print("\ncold run, avbench functions by cumulative time:")
            print_profile(str(profile_file), 30, "avbench/")
            print("cold run, everything by cumulative time:")
            print_profile(str(profile_file), 40)


if __name__ == "__main__":
    main()
