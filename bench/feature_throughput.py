"""Throughput of avbench's feature passes against a bare loop over the same module.

Usage: python bench/feature_throughput.py [--images 512] [--batch-size 32] [--repeats 2] [--size 256]
                                [--extractors inception,clip] [--seed 0]

For each extractor, avbench's path is `FeatureStore.images` over an `ImageSet`
(content hashes computed inside the timed region, a fresh feature cache per
pass, so every pass computes and writes its npz), with the backbone loaded by
avbench from pinned weights. The bare loop runs the same module object at the
same batch size and does only what is needed: stack the uint8 HxWx3 images
into a [B, 3, H, W] batch, call the module, keep the output tensors.
  inception  torch-fidelity's FeatureExtractorInceptionV3 ("inception-v3-compat");
             the module does its own resize and scaling.
  clip       open_clip ViT-B-32-quickgelu; the bare loop applies the same batched
             torch preprocessing avbench uses (bicubic antialiased resize of the
             shortest edge to 224, centre crop, /255, CLIP mean/std) with
             torchvision.transforms.v2.functional, then model.encode_image.
No pretrained weights exist offline: randomly initialised weights are saved
to a temporary $AVBENCH_HOME, pinned with `register_weights` under the
backbone's own weights name and copied in with `import_file`, so avbench's
loader, hash check and cache keys all run for real.

Each pass is warmed up on one batch, then avbench and bare passes alternate
(ABBA order) `--repeats` times each; the figures are medians. Prints images/s
for both, the ratio avbench / bare (target >= 0.9), the same ratio in CPU
time, and the largest feature difference between the two paths.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import BACKBONES, avbench_home, install_random_weights, machine_note, median

from avbench.cache import ArrayCache, array_hash
from avbench.features import Backbones, FeatureStore, ImageSet


def sample_images(count: int, size: int, seed: int) -> list[np.ndarray]:
    """uint8 [size, size, 3] images: smooth random colour fields plus grain."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 8, 8, 3)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(
        torch.from_numpy(coarse).permute(0, 3, 1, 2), size=(size, size), mode="bilinear"
    )
    grain = rng.normal(0, 12, (count, size, size, 3)).astype(np.float32)
    images = np.clip(smooth.permute(0, 2, 3, 1).numpy() + grain, 0, 255).astype(np.uint8)
    return list(images)


def bare_inception(module: torch.nn.Module, images: list[np.ndarray], batch_size: int) -> np.ndarray:
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.stack(images[start : start + batch_size])).permute(0, 3, 1, 2).contiguous()
            outputs.append(module(batch)[0])
    return torch.cat(outputs).numpy()


def bare_clip(model: torch.nn.Module, images: list[np.ndarray], batch_size: int) -> np.ndarray:
    from torchvision.transforms.v2 import functional as TF

    cfg = model.visual.preprocess_cfg
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.stack(images[start : start + batch_size])).permute(0, 3, 1, 2)
            x = TF.resize(x, [size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
            x = TF.center_crop(x, [size, size])
            outputs.append(model.encode_image((x.float() / 255.0 - mean) / std))
    return torch.cat(outputs).numpy()


class Bench:
    """One extractor: the avbench pass and the bare pass over the same loaded module."""

    def __init__(self, extractor: str, backbones: Backbones, batch_size: int, scratch: Path):
        self.extractor = extractor
        self.backbone = BACKBONES[extractor]
        self.backbones = backbones
        self.batch_size = batch_size
        self.scratch = scratch
        self.passes = 0
        start = time.perf_counter()
        loaded = backbones.get(self.backbone)
        self.load_seconds = time.perf_counter() - start
        self.module = loaded.module if extractor == "inception" else loaded.model
        self.layer = "2048" if extractor == "inception" else "embedding"

    def avbench(self, images: list[np.ndarray]) -> np.ndarray:
        self.passes += 1
        folder = self.scratch / f"cache-{self.passes}"
        store = FeatureStore(ArrayCache(folder), self.backbones, self.batch_size)
        image_set = ImageSet(hashes=[array_hash(im) for im in images], load=images.__getitem__)
        features = store.images(self.backbone, image_set)[self.layer]
        if store.passes != 1:
            raise RuntimeError("the avbench pass was answered from a cache; the timing would be meaningless")
        shutil.rmtree(folder)
        return features

    def bare(self, images: list[np.ndarray]) -> np.ndarray:
        run = bare_inception if self.extractor == "inception" else bare_clip
        return run(self.module, images, self.batch_size)


def timed(function, images) -> tuple[float, float, np.ndarray]:
    wall, cpu = time.perf_counter(), time.process_time()
    features = function(images)
    return time.perf_counter() - wall, time.process_time() - cpu, features


def measure(bench: Bench, images: list[np.ndarray], repeats: int) -> dict:
    """Warm up both paths on one batch, then alternate full passes in ABBA order."""
    warm = images[: bench.batch_size]
    bench.avbench(warm)
    bench.bare(warm)
    times = {"avbench": [], "bare": []}
    cpu = {"avbench": [], "bare": []}
    features = {}
    paths = {"avbench": bench.avbench, "bare": bench.bare}
    for round_ in range(repeats):
        for name in ("avbench", "bare") if round_ % 2 == 0 else ("bare", "avbench"):
            wall_s, cpu_s, features[name] = timed(paths[name], images)
            times[name].append(wall_s)
            cpu[name].append(cpu_s)
            print(
                f"  {bench.extractor:9s} {name:7s} pass {round_ + 1}: {wall_s:7.2f} s wall, {cpu_s:7.2f} s cpu",
                flush=True,
            )
    delta = float(np.max(np.abs(features["avbench"] - features["bare"].astype(np.float64))))
    finite = bool(np.isfinite(features["bare"]).all())
    return {"times": times, "cpu": cpu, "delta": delta, "finite": finite}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per path, after one warm-up batch")
    parser.add_argument("--size", type=int, default=256, help="side of the square test images")
    parser.add_argument("--extractors", default="inception,clip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chosen = [e.strip() for e in args.extractors.split(",") if e.strip()]
    if not chosen or any(e not in BACKBONES for e in chosen):
        parser.error(f"--extractors takes a comma-separated subset of {', '.join(BACKBONES)}")

    began = time.perf_counter()
    print(machine_note())
    print(
        f"{args.images} images {args.size}x{args.size}, batch size {args.batch_size}, 1 warm-up batch + {args.repeats} "
        f"timed passes per path, ABBA order",
        flush=True,
    )
    torch.manual_seed(args.seed)
    images = sample_images(args.images, args.size, args.seed)
    results = {}
    with avbench_home() as home, tempfile.TemporaryDirectory(prefix="avbench-bench-weights-") as scratch:
        backbones = Backbones(torch.device("cpu"))
        for extractor in chosen:
            install_random_weights(extractor, Path(scratch))
            bench = Bench(extractor, backbones, args.batch_size, home)
            print(
                f"{extractor}: {bench.backbone} loaded by avbench in {bench.load_seconds:.1f} s "
                f"(random weights, sha256 {backbones.weights[bench.backbone]['sha256'][:12]}...)",
                flush=True,
            )
            results[extractor] = measure(bench, images, args.repeats)

    print()
    for extractor, result in results.items():
        wall = {name: median(values) for name, values in result["times"].items()}
        cpu = {name: median(values) for name, values in result["cpu"].items()}
        rate = {name: args.images / seconds for name, seconds in wall.items()}
        print(
            f"{extractor:9s} avbench {rate['avbench']:6.2f} images/s ({wall['avbench']:7.2f} s)   "
            f"bare {rate['bare']:6.2f} images/s ({wall['bare']:7.2f} s)   "
            f"ratio avbench/bare {rate['avbench'] / rate['bare']:.3f} "
            f"(cpu-time ratio {cpu['bare'] / cpu['avbench']:.3f})   "
            f"max |feature delta| {result['delta']:.2e}{'' if result['finite'] else '  (features not finite!)'}"
        )
    print(f"target: ratio >= 0.9; raw passes above; total time {time.perf_counter() - began:.0f} s")
    print(machine_note())


if __name__ == "__main__":
    main()
