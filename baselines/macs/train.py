"""Train the synthetic-world MACS: `python -m avbench.baselines.macs.train`.

Three stages, as in MACS:
1. the mask separator, by MixIT on mixtures of two synthetic mixtures
   (unsupervised: the loss only sees the two mixtures, never their sources);
2. slot embeddings of training mixtures with the frozen separator and a
   frozen copy of the `audio-synth` tower (the CLAP stand-in);
3. the slot MLP and the 64x64 generator, on (slot embeddings, ideal image)
   pairs: the object frame for one source, the world's scene for two.
Clips come from the world's training seeds (>= MANIFEST_SEED_LIMIT). Everything
is seeded: the same command on the same thread count writes the same bytes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from avbench.checkpoints import file_sha256, load_state_dict
from avbench.items.audio import mix_sources
from avbench.synth.catalog import AUDIO_WEIGHTS_FILE
from avbench.synth.catalog import WEIGHTS_DIR as EVALUATOR_WEIGHTS_DIR
from avbench.synth.world import CLASSES, MANIFEST_SEED_LIMIT, World

from .model import SYNTH_CONFIG, SYNTH_FILE, WEIGHTS_DIR
from .synth import SynthMACS

TRAIN_SEED_BASE = MANIFEST_SEED_LIMIT + 3_000_000  # this script's own slice of the training seeds


def render_pool(world: World, per_class: int) -> np.ndarray:
    """Waves [classes, per_class, T] of training clips."""
    waves = np.zeros((len(CLASSES), per_class, world.num_samples), np.float32)
    for c, label in enumerate(CLASSES):
        for k in range(per_class):
            waves[c, k] = world.source_audio(label, TRAIN_SEED_BASE + c * per_class + k)
    return waves


def draw_mixture(rng: np.random.Generator, waves: np.ndarray, sources: int) -> tuple[np.ndarray, list[int], list[int]]:
    """A suite-like mixture of `sources` distinct classes: (mixture, classes, clip indices)."""
    classes = [int(c) for c in rng.choice(len(CLASSES), size=sources, replace=False)]
    clips = [int(k) for k in rng.integers(0, waves.shape[1], size=sources)]
    rule = "mean" if sources == 1 else "equal-rms-mean"
    mixture, _ = mix_sources([waves[c, k] for c, k in zip(classes, clips, strict=True)], [0.0] * sources, rule)
    return mixture, classes, clips


def neg_si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """-SI-SDR in dB over the last axis (zero-mean signals)."""
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    reference = reference - reference.mean(dim=-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * reference
    ratio = target.pow(2).sum(-1) / ((estimate - target).pow(2).sum(-1) + eps)
    return -10 * torch.log10(ratio + eps)


def mixit_loss(slots: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Best split of the M slots into two groups that rebuild the two mixtures (MixIT)."""
    m = slots.shape[1]
    groups = torch.tensor(
        list(itertools.product((0.0, 1.0), repeat=m))[1:], dtype=slots.dtype
    )  # every non-empty first group
    to_first = torch.einsum("km,bmt->bkt", groups, slots)
    to_second = torch.einsum("km,bmt->bkt", 1 - groups, slots)
    losses = neg_si_sdr(to_first, first.unsqueeze(1)) + neg_si_sdr(to_second, second.unsqueeze(1))
    return losses.min(dim=1).values.mean()


def cosine_schedule(optimiser, steps: int):
    warmup = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )


def train_separator(
    model: SynthMACS, waves: np.ndarray, rng: np.random.Generator, steps: int, batch: int, lr: float
) -> float:
    separator = model.separator.train()
    optimiser = torch.optim.AdamW(separator.parameters(), lr=lr, weight_decay=1e-4)
    schedule = cosine_schedule(optimiser, steps)
    last = 0.0
    for step in range(1, steps + 1):
        pairs = [[draw_mixture(rng, waves, int(rng.integers(1, 3)))[0] for _ in range(2)] for _ in range(batch)]
        first = torch.from_numpy(np.stack([p[0] for p in pairs]))
        second = torch.from_numpy(np.stack([p[1] for p in pairs]))
        loss = mixit_loss(separator(first + second), first, second)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(separator.parameters(), 5.0)
        optimiser.step()
        schedule.step()
        last = 0.9 * last + 0.1 * loss.item() if step > 1 else loss.item()
        if step % 25 == 0 or step == steps:
            print(f"separator step {step}/{steps}  -SI-SDR (MixIT) {last:.2f} dB", flush=True)
    separator.eval()
    return last


def build_pairs(
    model: SynthMACS, world: World, waves: np.ndarray, rng: np.random.Generator, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(slot embeddings [N, M, D], ideal images [N, 3, 64, 64] in [-1, 1]); one third single-source."""
    mixtures, images = [], []
    for n in range(count):
        sources = 1 if n % 3 == 0 else 2
        mixture, classes, clips = draw_mixture(rng, waves, sources)
        labels = [CLASSES[c] for c in classes]
        seeds = [TRAIN_SEED_BASE + c * waves.shape[1] + k for c, k in zip(classes, clips, strict=True)]
        mixtures.append(mixture)
        images.append(world.frame(labels, seeds))
    embeddings = torch.cat(
        [model.slot_embeddings(torch.from_numpy(np.stack(mixtures[i : i + 64]))) for i in range(0, count, 64)]
    )
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return embeddings, pixels


def train_generator(model: SynthMACS, embeddings, pixels, steps: int, batch: int, lr: float, seed: int) -> float:
    params = list(model.mlp.parameters()) + list(model.generator.parameters())
    model.mlp.train()
    model.generator.train()
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = cosine_schedule(optimiser, steps)
    gen = torch.Generator().manual_seed(seed)
    last = 0.0
    for step in range(1, steps + 1):
        index = torch.randint(0, embeddings.shape[0], (batch,), generator=gen)
        loss = (model.images(embeddings[index]) - pixels[index]).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        last = 0.9 * last + 0.1 * loss.item() if step > 1 else loss.item()
        if step % 50 == 0 or step == steps:
            print(f"generator step {step}/{steps}  L1 {last:.4f}", flush=True)
    model.mlp.eval()
    model.generator.eval()
    return last


def provenance(module: str, facts: dict, config: dict) -> dict[str, str]:
    """safetensors metadata as one key: a multi-key map is written in hash order,
    which would change the file's bytes."""
    return {
        "avbench": json.dumps(
            {"trained_by": f"python -m {module}", "training": facts, "config": config}, sort_keys=True
        )
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100, help="training clips rendered per class")
    parser.add_argument("--separator-steps", type=int, default=100)
    parser.add_argument("--separator-batch", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=1200, help="(audio, image) pairs for the generator")
    parser.add_argument("--generator-steps", type=int, default=1200)
    parser.add_argument("--generator-batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--audio-tower", type=Path, default=EVALUATOR_WEIGHTS_DIR / AUDIO_WEIGHTS_FILE)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / SYNTH_FILE)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    world = World(
        sample_rate=SYNTH_CONFIG.separator.sample_rate, clip_seconds=SYNTH_CONFIG.separator.seconds, image_size=64
    )
    model = SynthMACS(SYNTH_CONFIG)
    model.embedder.load_state_dict(load_state_dict(args.audio_tower), strict=True)
    model.embedder.eval().requires_grad_(False)
    timings = {}
    start = time.perf_counter()
    waves = render_pool(world, args.per_class)
    timings["render"] = time.perf_counter() - start
    mixit = train_separator(model, waves, rng, args.separator_steps, args.separator_batch, 2e-3)
    timings["separator"] = time.perf_counter() - start - sum(timings.values())
    embeddings, pixels = build_pairs(model, world, waves, rng, args.pairs)
    timings["pairs"] = time.perf_counter() - start - sum(timings.values())
    l1 = train_generator(model, embeddings, pixels, args.generator_steps, args.generator_batch, 2e-3, args.seed)
    timings["generator"] = time.perf_counter() - start - sum(timings.values())
    from safetensors.torch import save_file

    facts = {k: v for k, v in vars(args).items() if k not in ("out", "audio_tower", "threads")}
    facts["audio_tower_sha256"] = file_sha256(args.audio_tower)
    config = {
        "separator": asdict(SYNTH_CONFIG.separator),
        "mlp_hidden": SYNTH_CONFIG.mlp_hidden,
        "generator": asdict(SYNTH_CONFIG.generator),
    }
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=provenance("avbench.baselines.macs.train", facts, config))
    summary = {
        **facts,
        "final_mixit_neg_si_sdr": round(mixit, 3),
        "final_generator_l1": round(l1, 4),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "out": str(args.out),
        "sha256": file_sha256(args.out),
        "bytes": args.out.stat().st_size,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
