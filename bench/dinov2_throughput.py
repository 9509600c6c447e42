"""Throughput of avbench's DINOv2 ViT-L/14 feature pass against a bare loop over the same module, at 224² on CPU.

Usage: python bench/dinov2_throughput.py [--images 16] [--batch-size 8] [--repeats 2] [--size 256] [--seed 0]

avbench's side is `FeatureStore.images` over an `ImageSet` (content hashes computed inside the timed region, a
fresh feature cache per pass, so every pass computes and writes its npz), with `dinov2-vitl14` loaded by avbench's
loader from a random checkpoint in the publisher's key layout (`dinov2_vitl14_pretrain.pth`: 37x37 positional grid,
mask_token), pinned with `register_weights` under the backbone's weights name and copied in with `import_file`.
The bare loop runs the same module object at the same batch size and does only what dgm-eval does per image:
PIL bicubic resize to 224x224, /255, ImageNet mean/std, then the forward.

One warm-up batch per path, then avbench and bare passes alternate (ABBA order) `--repeats` times each; the
figures are medians. Prints images/s for both, the ratio avbench / bare (target >= 0.9), the same ratio in CPU
time, and the largest feature difference between the two paths (0 expected).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import avbench_home, machine_note, median, pin_weights
from PIL import Image

from avbench.cache import ArrayCache, array_hash
from avbench.features import Backbones, FeatureStore, ImageSet

BACKBONE = "dinov2-vitl14"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def random_checkpoint(folder: Path, seed: int) -> Path:
    """A seeded random state dict with the keys and shapes of dinov2_vitl14_pretrain.pth."""
    import timm

    from avbench.backbones.dinov2 import TIMM_ARCH

    with torch.device("meta"):
        hub_sized = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=0)  # 518 px: the hub's 37x37 grid
    shapes = {k: v.shape for k, v in hub_sized.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=generator) * 0.02 for key, shape in shapes.items()}
    for key in state:
        if ".norm" in key and key.endswith("weight") or key == "norm.weight":
            state[key] += 1.0
    state["mask_token"] = torch.zeros(1, 1024)
    path = folder / "dinov2_vitl14_pretrain.pth"
    torch.save(state, path)
    return path


def sample_images(count: int, size: int, seed: int) -> list[np.ndarray]:
    """uint8 [size, size, 3] images: smooth random colour fields plus grain."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.integers(0, 256, (count, 3, 8, 8)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear").permute(0, 2, 3, 1).numpy()
    grain = rng.normal(0, 12, (count, size, size, 3)).astype(np.float32)
    return list(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def bare(module: torch.nn.Module, images: list[np.ndarray], batch_size: int) -> np.ndarray:
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            resized = [np.asarray(Image.fromarray(im).resize((224, 224), Image.BICUBIC)) for im in batch]
            x = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).float().div(255)
            outputs.append(module((x - MEAN) / STD))
    return torch.cat(outputs).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per path, after one warm-up batch")
    parser.add_argument("--size", type=int, default=256, help="side of the square test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"start: {machine_note()}", flush=True)
    images = sample_images(args.images, args.size, args.seed)
    with avbench_home() as home, tempfile.TemporaryDirectory(prefix="dinov2-bench-") as scratch:
        from avbench.weights import import_file

        path = random_checkpoint(Path(scratch), args.seed)
        pin_weights(BACKBONE, path.name, hashlib.sha256(path.read_bytes()).hexdigest())
        import_file(path, BACKBONE)
        backbones = Backbones(torch.device("cpu"))
        start = time.perf_counter()
        module = backbones.get(BACKBONE).module
        print(f"loaded {BACKBONE} through avbench in {time.perf_counter() - start:.1f} s ({home})", flush=True)
        passes = 0

        def avbench_pass(batch: list[np.ndarray]) -> np.ndarray:
            nonlocal passes
            passes += 1
            folder = Path(scratch) / f"cache-{passes}"
            store = FeatureStore(ArrayCache(folder), backbones, args.batch_size)
            image_set = ImageSet([array_hash(im) for im in batch], batch.__getitem__)
            features = store.images(BACKBONE, image_set)["embedding"]
            if store.passes != 1:
                raise RuntimeError("the avbench pass was answered from a cache; the timing would be meaningless")
            shutil.rmtree(folder)
            return features

        paths = {"avbench": avbench_pass, "bare": lambda batch: bare(module, batch, args.batch_size)}
        for run in paths.values():
            run(images[: args.batch_size])  # warm-up
        wall: dict[str, list[float]] = {"avbench": [], "bare": []}
        cpu: dict[str, list[float]] = {"avbench": [], "bare": []}
        features = {}
        for round_ in range(args.repeats):
            for name in ("avbench", "bare") if round_ % 2 == 0 else ("bare", "avbench"):
                w, c = time.perf_counter(), time.process_time()
                features[name] = paths[name](images)
                wall[name].append(time.perf_counter() - w)
                cpu[name].append(time.process_time() - c)
                print(
                    f"  {name:7s} pass {round_ + 1}: {wall[name][-1]:7.2f} s wall, {cpu[name][-1]:7.2f} s cpu",
                    flush=True,
                )
    rate = {name: args.images / median(times) for name, times in wall.items()}
    delta = float(np.max(np.abs(features["avbench"] - features["bare"].astype(np.float64))))
    print(f"{args.images} images at batch size {args.batch_size}, {args.size}² inputs -> 224², CPU")
    print(f"  avbench {rate['avbench']:.3f} images/s, bare {rate['bare']:.3f} images/s")
    print(f"  throughput ratio avbench / bare: {rate['avbench'] / rate['bare']:.3f} (target >= 0.9)")
    print(f"  CPU-time ratio bare / avbench:   {median(cpu['bare']) / median(cpu['avbench']):.3f}")
    print(f"  max |feature difference|: {delta:.3g}")
    print(f"end: {machine_note()}")


if __name__ == "__main__":
    main()
