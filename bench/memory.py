"""Peak memory of scoring 10,000 synthetic items against scoring 1,000.

Usage: python bench/memory.py [--small 1000] [--large 10000] [--paths run,direct] [--keep DIR]

Every measurement is the peak RSS (`ru_maxrss`) of a fresh child process.
  run     avbench's own scoring path. A suite spec in a temporary folder holds
          N synth-single items (`build_synth_manifest`) and one metric,
          `fidelity` (FD and KID on clip-synth features, KID subsets of 1000).
          One child generates the `oracle` model's outputs (`Run.generate`),
          a second scores them with an empty feature cache (`Run.score`):
          every item is loaded, 2N images go through clip-synth, FD and KID
          are computed. Both peaks are printed; the scoring peak is the figure.
  direct  the feature and metric layers alone: two `ImageSet`s of N world
          object images each (the items' frames, and the same objects drawn
          from the next clip seed), whose `load` renders an image on demand,
          through `FeatureStore.images` on clip-synth, then FD and KID.
Prints each peak, the ratio large / small (target <= 1.2), and the growth
per item, beside the bytes one loaded item holds in memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import avbench_home, emit, machine_note, run_child

KID_SUBSET = 1000
SEED = 0


def write_suite(folder: Path, n_items: int) -> Path:
    """A synth-single suite of n_items items scored by FD and KID on clip-synth; returns the spec path."""
    from avbench.suites.manifest import dump_items, sha256_bytes
    from avbench.suites.synthetic import builder
    from avbench.synth.world import build_synth_manifest

    _, spec = builder("synth-single")()
    data = dump_items(build_synth_manifest("synth-single", n_items, SEED))
    name = f"bench-memory-{n_items}"
    (folder / f"{name}.jsonl").write_bytes(data)
    spec.update(
        name=name,
        manifest=f"{name}.jsonl",
        manifest_sha256=sha256_bytes(data),
        metrics=[
            {
                "metric": "fidelity",
                "task": "generate",
                "options": {"backbone": "clip-synth", "metrics": ["fd", "kid"], "kid_subset_size": KID_SUBSET},
            }
        ],
    )
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def child_run(stage: str, suite: str, out: str, cache: str) -> dict:
    from avbench.runner import Run, RunOptions

    job = Run(
        RunOptions(
            model="oracle",
            suite=suite,
            out=Path(out),
            cache_dir=Path(cache),
            device="cpu",
            batch_size=32,
            allow_small_n=True,
        )
    )
    if stage == "generate":
        job.generate()
        return {"timings": job.timings, "model_calls": job.model_calls}
    record = job.score()
    return {"timings": record.timings, "calls": record.calls, "metrics": {m.name: m.value for m in record.metrics}}


def child_direct(n_items: int, cache: str) -> dict:
    """FD and KID between the items' object frames and the same objects from the next clip seed, rendered on demand."""
    import torch

    from avbench.cache import ArrayCache, array_hash
    from avbench.features import Backbones, FeatureStore, ImageSet
    from avbench.metrics.fidelity import fid_from_features, kid_from_features
    from avbench.synth.world import World, build_synth_manifest

    world = World()
    clips = [
        (s["label"], int(s["clip"].rsplit("-", 1)[1]))
        for item in build_synth_manifest("synth-single", n_items, SEED)
        for s in item["sources"]
    ]

    def image_set(offset: int) -> ImageSet:
        render = lambda i: world.object_image(clips[i][0], clips[i][1] + offset)  # noqa: E731
        return ImageSet(hashes=[array_hash(render(i)) for i in range(len(clips))], load=render)

    store = FeatureStore(ArrayCache(Path(cache)), Backbones(torch.device("cpu")), batch_size=32)
    start = time.perf_counter()
    generated = store.images("clip-synth", image_set(1))["embedding"]
    reference = store.images("clip-synth", image_set(0))["embedding"]
    fd = fid_from_features(generated, reference)
    kid = kid_from_features(generated, reference, subset_size=KID_SUBSET, allow_small_n=True)
    return {"seconds": time.perf_counter() - start, "fd": fd, "kid": kid.value, "passes": store.passes}


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["generate", "score", "direct"])
    parser.add_argument("--suite")
    parser.add_argument("--out")
    parser.add_argument("--cache")
    parser.add_argument("--items", type=int)
    args = parser.parse_args(argv)
    if args.mode == "direct":
        emit(child_direct(args.items, args.cache))
    else:
        emit(child_run(args.mode, args.suite, args.out, args.cache))


def item_bytes() -> int:
    """Bytes of the arrays one loaded synth-single item holds (mixture, true sources, frames)."""
    from avbench.items.sources import SynthSource, load_item
    from avbench.suites.spec import load_suite

    suite = load_suite("synth-single")
    ready = load_item(SynthSource(suite), suite, suite.items[0])
    truth = ready.truth
    return (
        ready.mixture.nbytes
        + truth.sources.nbytes
        + truth.reference.nbytes
        + sum(im.nbytes for im in truth.source_images)
    )


def report(path: str, peaks: dict[int, float], small: int, large: int) -> None:
    ratio = peaks[large] / peaks[small]
    growth = (peaks[large] - peaks[small]) * 1024 / (large - small)
    print(
        f"{path:6s} peak RSS {small}: {peaks[small]:8.1f} MB, {large}: {peaks[large]:8.1f} MB, "
        f"ratio {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'}), growth {growth:6.1f} KB per item"
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--paths", default="run,direct", help="comma-separated: run, direct")
    parser.add_argument(
        "--keep", type=Path, help="write suites, runs and caches here (kept) instead of a temporary folder"
    )
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or any(p not in ("run", "direct") for p in paths):
        parser.error("--paths takes run, direct or both")

    began = time.perf_counter()
    print(machine_note(), flush=True)
    peaks: dict[str, dict[int, float]] = {p: {} for p in paths}
    with avbench_home(), tempfile.TemporaryDirectory(prefix="avbench-bench-memory-") as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        for n in (args.small, args.large):
            if "run" in paths:
                suite = write_suite(root, n)
                where = ["--suite", str(suite), "--out", str(root / f"run-{n}")]
                made = run_child(__file__, ["generate", *where, "--cache", str(root / f"cache-gen-{n}")])
                print(f"run    {n:6d} items: generate child {made.describe()}", flush=True)
                scored = run_child(__file__, ["score", *where, "--cache", str(root / f"cache-score-{n}")])
                timings = scored.report["timings"]
                print(
                    f"run    {n:6d} items: score    child {scored.describe()}; score stage {timings['score']:.1f} s, "
                    f"feature passes {scored.report['calls']['feature_passes']}, {scored.report['metrics']}",
                    flush=True,
                )
                peaks["run"][n] = scored.max_rss_mb
            if "direct" in paths:
                direct = run_child(__file__, ["direct", "--items", str(n), "--cache", str(root / f"cache-direct-{n}")])
                print(
                    f"direct {n:6d} items: child {direct.describe()}; "
                    f"FD {direct.report['fd']:.3f}, KID {direct.report['kid']:.5f}, "
                    f"feature passes {direct.report['passes']}",
                    flush=True,
                )
                peaks["direct"][n] = direct.max_rss_mb
    print()
    for path in paths:
        report(path, peaks[path], args.small, args.large)
    print(
        f"one loaded synth-single item holds {item_bytes() / 1024:.1f} KB of arrays; "
        f"total time {time.perf_counter() - began:.0f} s"
    )
    print(machine_note())


if __name__ == "__main__":
    main()
