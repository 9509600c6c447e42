"""A whole `avbench run` on real-size backbones, cold and warm: where the wall time goes outside forward passes.

Usage: python bench/e2e.py [--model avgas] [--fallback oracle] [--items 256] [--batch-size 32] [--profile]

The suite is the synthetic world's two-class mixtures (synth-mixed2's items, plus seed variants up to
`--items`), scored on real-size backbones instead of the world's own tiny evaluator: CLIP ViT-B/32
(`clip-vit-b32-openai`: CRS, R@K*, sepR@1, sep-acc) and torch-fidelity's Inception
(`inception-v3-compat`: FD, KID). Both get random weights in their publishers' layouts, imported the way a
user imports a file that does not match the pin (`import_file(..., unverified=True)`). So with 256 items the
cold run puts 256 generated images and 512 per-source images through CLIP, and 256 generated images plus
their 256 references through Inception.

Two fresh processes run `avbench.evaluate` (what `avbench run` calls) under a throw-away $AVBENCH_HOME, on
the same run directory and feature cache: cold (nothing on disk) and warm (the same command again). Each
process imports avbench and every library the run loads (torch, torchvision, open_clip, torch-fidelity)
before its clock starts, then times, on the main thread and exclusively (a nested timed call is charged
to the innermost kind):
  model      the model's task methods (generate, generate_per_source, separate_audio);
  extractor  every extractor's encode_images / encode_text / encode_audio;
  loading    building the model and the backbones (Backbones.get, open_model, ModelHandle.get);
  decoding   waiting for item batches (DataLoader workers), reading media and output files back;
  scoring    the metrics' own work (compute_metric, less the kinds above);
  bootstrap  the 95 % intervals;
  writing    outputs, markers, feature and score caches, items.csv and record.json;
  other      the rest of the wall after imports (run setup, hashing, bookkeeping).
The outside-forward share is 1 - (model + extractor) / wall after imports. Target: <= 15 % on the cold run.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any heavy import

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import (  # noqa: E402
    avbench_home,
    emit,
    machine_note,
    print_profile,
    random_clip_file,
    random_inception_file,
    run_child,
)

TASKS = ("generate", "generate_per_source", "separate_audio")
ENCODERS = ("encode_images", "encode_text", "encode_audio")
KINDS = ("model", "extractor", "loading", "decoding", "scoring", "bootstrap", "writing")
FORWARD = ("model", "extractor")
BACKBONES = {"clip-synth": "clip-vit-b32-openai"}  # the world's evaluator -> its real-size counterpart
FIDELITY_BACKBONE = "inception-v3-compat"
SEED_SHIFT = 7919  # variant items: every clip's seed moved by this


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timers:
    """Exclusive main-thread wall seconds per kind: time in a nested timed call counts for the inner kind only."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(KINDS, 0.0)
        self.cpu = dict.fromkeys(KINDS, 0.0)
        self.calls = dict.fromkeys(KINDS, 0)
        self._stack: list[str] = []
        self._since = (0.0, 0.0)

    def _charge(self) -> None:
        now, cpu = time.perf_counter(), own_cpu()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._since[0]
            self.cpu[self._stack[-1]] += cpu - self._since[1]
        self._since = (now, cpu)

    def wrap(self, kind: str, function):
        def timed(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                return function(*args, **kwargs)
            self._charge()
            self._stack.append(kind)
            self.calls[kind] += 1
            try:
                return function(*args, **kwargs)
            finally:
                self._charge()
                self._stack.pop()

        return timed

    def wrap_iterator(self, kind: str, function):
        """For generators: the time spent waiting for each next item."""

        def timed(*args, **kwargs):
            step = self.wrap(kind, next)
            iterator = function(*args, **kwargs)
            while True:
                try:
                    yield step(iterator)
                except StopIteration:
                    return

        return timed


def patch(owner, name: str, wrapper) -> None:
    setattr(owner, name, wrapper(getattr(owner, name)))


def instrument(model_name: str, timers: Timers) -> None:
    """Wrap the model's task methods, every extractor `Backbones.get` hands out, and avbench's own stages."""
    import avbench.items.media as media
    import avbench.outputs as outputs
    import avbench.runner as runner
    import avbench.scoring as scoring
    from avbench.cache import ArrayCache
    from avbench.features import Backbones
    from avbench.models.handle import ModelHandle
    from avbench.registry import models
    from avbench.score_cache import ScoreCache

    model_cls = models.get(model_name)
    for task in TASKS:
        if task in model_cls.tasks:
            patch(model_cls, task, lambda f: timers.wrap("model", f))
    get = timers.wrap("loading", Backbones.get)

    def timed_get(self, name):
        extractor = get(self, name)
        if not getattr(extractor, "_bench_timed", False):
            for method in ENCODERS:
                if hasattr(extractor, method):
                    setattr(extractor, method, timers.wrap("extractor", getattr(extractor, method)))
            extractor._bench_timed = True
        return extractor

    Backbones.get = timed_get
    for owner, name in ((runner, "open_model"), (ModelHandle, "get")):
        patch(owner, name, lambda f: timers.wrap("loading", f))
    for owner in (runner, media):
        patch(owner, "batches", lambda f: timers.wrap_iterator("decoding", f))
    for owner, name in ((outputs.OutputStore, "image"), (outputs.OutputStore, "audio"), (media.MediaStore, "read")):
        patch(owner, name, lambda f: timers.wrap("decoding", f))
    patch(scoring, "compute_metric", lambda f: timers.wrap("scoring", f))
    patch(scoring, "bootstrap_ci", lambda f: timers.wrap("bootstrap", f))
    for owner, name in (
        (outputs.OutputWriter, "submit"),
        (outputs.OutputWriter, "wait"),
        (outputs.OutputWriter, "shutdown"),
        (ArrayCache, "put"),
        (ScoreCache, "put"),
        (runner, "atomic_write_text"),
        (runner, "dumps"),
        (runner, "items_csv"),
    ):
        patch(owner, name, lambda f: timers.wrap("writing", f))


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--suite", "--out", "--cache-dir", "--profile-to"):
        parser.add_argument(flag)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    import cProfile

    import open_clip  # noqa: F401 - imported before the clock: the run loads them
    import torch_fidelity.feature_extractor_inceptionv3  # noqa: F401
    import torchvision  # noqa: F401

    import avbench

    imported = time.perf_counter()
    profile = cProfile.Profile() if args.profile_to else None
    if profile:
        profile.enable()
    name = args.model
    if ":" in name:  # an unregistered "module:Class": register it under its own name
        from avbench.registry import import_target

        name = import_target(name).name
        avbench.register_model(name, args.model, replace=True)
    timers = Timers()
    instrument(name, timers)
    timers._charge()
    record = avbench.evaluate(
        name, args.suite, out=args.out, cache_dir=args.cache_dir, batch_size=args.batch_size, allow_small_n=True
    )
    end = time.perf_counter()
    timers._charge()
    if profile:
        profile.disable()
        profile.dump_stats(args.profile_to)
    emit(
        {
            "wall": end - STARTED,
            "imports": imported - STARTED,
            "after_imports": end - imported,
            "seconds": timers.seconds,
            "cpu": timers.cpu,
            "calls": timers.calls,
            "timings": record.timings,
            "record_calls": record.calls,
            "n": record.n.effective,
            "model": name,
            "warnings": record.warnings,
        }
    )


def resolve_model(requested: str, fallback: str) -> str:
    """The requested model if it can run here, else the fallback, with a message saying why."""
    from avbench.registry import models

    if ":" in requested or requested in models.names():
        return requested
    print(
        f"NOTE: model {requested!r} is not registered (`avbench list models` shows {', '.join(models.names())}); "
        f"falling back to {fallback!r}. Pass --model NAME or --model module:Class to choose another.",
        flush=True,
    )
    return fallback


def _shift(clip: str) -> str:
    label, seed = clip.rsplit("-", 1)
    return f"{label}-{int(seed) + SEED_SHIFT}"


def _variant(item: dict, k: int) -> dict:
    """Item `item` with every clip's seed moved: new audio, objects and scene, same labels."""
    text = json.dumps(item)
    for source in item["sources"]:
        text = text.replace(source["clip"], _shift(source["clip"]))
    variant = json.loads(text)
    variant["id"] = f"e2e-variant-{k:05d}"
    return variant


def write_suite(folder: Path, items: int) -> Path:
    """synth-mixed2's items (plus seed variants) with its metrics moved onto real-size backbones."""
    from avbench import registry
    from avbench.suites.manifest import dump_items, sha256_bytes

    base = registry.suites.get("synth-mixed2")
    entries = [json.loads(line) for line in base.manifest_bytes().decode().splitlines() if line.strip()]
    entries += [_variant(entries[k % len(entries)], k) for k in range(max(0, items - len(entries)))]
    manifest = dump_items(entries[:items])
    (folder / "e2e-real.jsonl").write_bytes(manifest)
    spec = json.loads(Path(base.spec_dir, "synth-mixed2.json").read_text())
    metrics = []
    for metric in spec["metrics"]:
        backbone = metric["options"].get("backbone")
        if metric["metric"] == "fidelity":
            metrics.append({**metric, "options": {**metric["options"], "backbone": FIDELITY_BACKBONE}})
        elif metric["metric"] in ("clip-retrieval", "clip-per-source") and backbone in BACKBONES:
            metrics.append({**metric, "options": {**metric["options"], "backbone": BACKBONES[backbone]}})
    spec.update(name="e2e-real", manifest="e2e-real.jsonl", manifest_sha256=sha256_bytes(manifest), metrics=metrics)
    path = folder / "e2e-real.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def install_weights(folder: Path) -> None:
    """Random real-size weights, imported as unverified copies of the built-in entries."""
    from avbench.weights import import_file

    import_file(random_clip_file(folder), "clip-vit-b32-openai", unverified=True)
    import_file(random_inception_file(folder), FIDELITY_BACKBONE, unverified=True)


def describe(name: str, result) -> str:
    report = result.report
    seconds, after = report["seconds"], report["after_imports"]
    forward = sum(seconds[k] for k in FORWARD)
    other = after - sum(seconds.values())
    parts = ", ".join(f"{k} {seconds[k]:.2f} s ({100 * seconds[k] / after:.1f} %)" for k in KINDS)
    return (
        f"{name:4s} process wall {result.wall:7.2f} s (imports {report['imports']:.2f} s, "
        f"after imports {after:.2f} s), "
        f"cpu {result.cpu:7.2f} s, peak RSS {result.max_rss_mb:6.0f} MB\n"
        f"     after imports: {parts}, other {other:.2f} s ({100 * other / after:.1f} %)\n"
        f"     outside forward {100 * (1 - forward / after):5.1f} % of the wall after imports; "
        f"calls {report['calls']}; record {report['record_calls']}"
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="avgas")
    parser.add_argument("--fallback", default="oracle", help="model to run when --model is not registered")
    parser.add_argument("--items", type=int, default=256, help="items scored (>= 256 generated images)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="profile the cold run and print where its time goes")
    args = parser.parse_args()

    print(machine_note(), flush=True)
    model = resolve_model(args.model, args.fallback)
    with avbench_home() as home, tempfile.TemporaryDirectory(prefix="avbench-bench-e2e-") as scratch:
        install_weights(Path(scratch))
        suite = write_suite(Path(scratch), args.items)
        common = [
            "--model",
            model,
            "--suite",
            str(suite),
            "--out",
            str(home / "run"),
            "--cache-dir",
            str(home / "cache"),
            "--batch-size",
            str(args.batch_size),
        ]
        profile_file = Path(scratch) / "cold.prof"
        cold = run_child(__file__, common + (["--profile-to", str(profile_file)] if args.profile else []))
        print(describe("cold", cold), flush=True)
        warm = run_child(__file__, common)
        print(describe("warm", warm), flush=True)

        seconds, after = cold.report["seconds"], cold.report["after_imports"]
        share = 1 - sum(seconds[k] for k in FORWARD) / after
        profiled = " (profiled: cold timings inflated)" if args.profile else ""
        print(
            f"\n{cold.report['model']} on {args.items} items (synth-mixed2 on clip-vit-b32-openai and "
            f"{FIDELITY_BACKBONE}), batch size {args.batch_size}{profiled}"
        )
        print(f"record warnings: {cold.report['warnings']}")
        print(
            f"cold: outside-forward share {100 * share:.1f} % of the wall after imports "
            f"({after:.1f} s; imports {cold.report['imports']:.1f} s more); warm wall {warm.wall:.2f} s"
        )
        print(f"target: outside-forward share <= 15 %: {'met' if share <= 0.15 else 'NOT met'}")
        print(machine_note())
        if args.profile:
            print("\ncold run, avbench functions by cumulative time:")
            print_profile(str(profile_file), 30, "avbench/")


if __name__ == "__main__":
    main()
