"""Train the synthetic world's evaluator: `python -m avbench.synth.train_evaluator`.

Two stages, both seeded and single-process:
1. clip-synth: the open_clip model learns to match world images to prompts.
   Objects match "a photo of {c}."; two-class scenes match "a photo of A and B."
   and, among the single-class prompts, both of their classes equally; noise
   and empty backgrounds match no class (uniform target), so they are never
   classified confidently. The loss is a softmax over the fixed prompt set
   rather than over the batch, because a batch holds many images per class.
2. audio-synth: with clip-synth frozen, an audio CNN regresses each clip (or
   two-clip mixture) onto the image embedding of its own frame (or scene), the
   Wav2CLIP recipe, plus a small class term against the frozen text prompts.

Training clips use seeds at or above `MANIFEST_SEED_LIMIT`, so no suite clip is
ever seen in training. The script writes the two safetensors files and their
SHA256SUMS; the clip weights are stored in float16 (the model is evaluated
after that rounding, so the numbers it prints are those of the shipped file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .catalog import AUDIO_WEIGHTS_FILE, CLIP_WEIGHTS_FILE, WEIGHTS_DIR
from .evaluator import OPEN_CLIP_NAME, AudioTower, register_open_clip_config
from .objects import background, to_uint8
from .world import CLASSES, MANIFEST_SEED_LIMIT, World

SEED = 0
OBJECT_SEEDS = MANIFEST_SEED_LIMIT  # object clips: OBJECT_SEEDS + k
SCENE_SEEDS = MANIFEST_SEED_LIMIT + 500_000  # clips that only appear in training scenes
PAIRS = [(a, b) for a in range(len(CLASSES)) for b in range(len(CLASSES)) if a != b]


def single_prompt(label: str) -> str:
    return f"a photo of {label}."


def pair_prompt(a: str, b: str) -> str:
    return f"a photo of {a} and {b}."


PROMPTS = [single_prompt(c) for c in CLASSES] + [pair_prompt(CLASSES[a], CLASSES[b]) for a, b in PAIRS]


def _log(message: str) -> None:
    print(message, flush=True)


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


class ImagePool:
    """Pre-rendered training images with their target distributions over singles and all prompts."""

    def __init__(self, world: World, rng: np.random.Generator, objects_per_class: int, scenes: int):
        n_classes = len(CLASSES)
        images, singles, prompts = [], [], []
        for k in range(objects_per_class):
            for c, label in enumerate(CLASSES):
                images.append(world.object_image(label, OBJECT_SEEDS + k))
                singles.append(np.eye(n_classes)[c])
                prompts.append(np.eye(len(PROMPTS))[c])
        for k in range(scenes):
            a, b = rng.choice(n_classes, 2, replace=False)
            images.append(world.scene_image([CLASSES[a], CLASSES[b]], [SCENE_SEEDS + 2 * k, SCENE_SEEDS + 2 * k + 1]))
            target = np.zeros(len(PROMPTS))
            target[[n_classes + PAIRS.index((a, b)), n_classes + PAIRS.index((b, a))]] = 0.5
            singles.append((np.eye(n_classes)[a] + np.eye(n_classes)[b]) / 2)
            prompts.append(target)
        self.images = _to_tensor(images)
        self.singles = torch.tensor(np.array(singles), dtype=torch.float32)
        self.prompts = torch.tensor(np.array(prompts), dtype=torch.float32)
        self.n_objects = objects_per_class * n_classes


def _null_images(world: World, rng: np.random.Generator, count: int) -> torch.Tensor:
    """Uniform noise and empty backgrounds: images of no class."""
    noise = [rng.integers(0, 256, (world.image_size, world.image_size, 3), dtype=np.uint8) for _ in range(count // 2)]
    empty = [to_uint8(background(rng, world.image_size)) for _ in range(count - count // 2)]
    return _to_tensor(noise + empty)


class Normalise:
    """clip-synth's own preprocessing for native-size images: scale, then CLIP mean/std."""

    def __init__(self, model):
        cfg = model.visual.preprocess_cfg
        self.mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - self.mean) / self.std


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def _schedule(step: int, total: int, peak: float) -> float:
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _optimiser(params, lr: float) -> torch.optim.Optimizer:
    decay = [p for p in params if p.requires_grad and p.ndim >= 2]
    rest = [p for p in params if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=lr)


def train_clip(
    model, tokens: torch.Tensor, pool: ImagePool, world: World, rng: np.random.Generator, steps: int, batch: int
) -> None:
    normalise = Normalise(model)
    model.token_embedding.requires_grad_(False)  # a fixed random code per token is enough for 100 prompts
    optimiser = _optimiser(list(model.parameters()), 1e-3)
    n_null = batch // 8
    n_obj = (batch - n_null) // 2
    n_scene = batch - n_null - n_obj
    n_classes = len(CLASSES)
    model.train()
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _schedule(step, steps, 1e-3)
        idx = np.concatenate(
            [rng.integers(0, pool.n_objects, n_obj), rng.integers(pool.n_objects, len(pool.images), n_scene)]
        )
        images = torch.cat([pool.images[idx], _null_images(world, rng, n_null)])
        flip = torch.from_numpy(rng.random(batch) < 0.5)
        images[flip] = images[flip].flip(-1)
        singles = torch.cat([pool.singles[idx], torch.full((n_null, n_classes), 1.0 / n_classes)])
        image_emb = model.encode_image(normalise(images), normalize=True)
        text_emb = model.encode_text(tokens, normalize=True)
        logits = model.logit_scale.exp().clamp(max=100.0) * image_emb @ text_emb.T
        loss = _soft_cross_entropy(logits[:, :n_classes], singles)
        loss = loss + _soft_cross_entropy(logits[: len(idx)], pool.prompts[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step % 50 == 0 or step == steps - 1:
            _log(f"clip step {step:4d}/{steps}  loss {loss.item():.3f}  scale {model.logit_scale.exp().item():.1f}")
    model.eval()


@torch.no_grad()
def embed_images(model, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    normalise = Normalise(model)
    return torch.cat(
        [model.encode_image(normalise(images[i : i + batch]), normalize=True) for i in range(0, len(images), batch)]
    )


def _equal_rms_mean(waves: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(waves.astype(np.float64) ** 2, axis=-1, keepdims=True))
    return (waves / rms).mean(axis=0).astype(np.float32)


def train_audio(
    tower: AudioTower,
    model,
    text_singles: torch.Tensor,
    world: World,
    rng: np.random.Generator,
    clips_per_class: int,
    mixtures: int,
    steps: int,
    batch: int,
) -> None:
    """Regress audio embeddings onto the frozen image embeddings of the matching frame or scene."""
    n_classes = len(CLASSES)
    labels = [c for _ in range(clips_per_class) for c in range(n_classes)]
    seeds = [OBJECT_SEEDS + k for k in range(clips_per_class) for _ in range(n_classes)]
    waves = np.stack([world.source_audio(CLASSES[c], s) for c, s in zip(labels, seeds, strict=True)])
    frames = _to_tensor([world.object_image(CLASSES[c], s) for c, s in zip(labels, seeds, strict=True)])
    pairs = []
    while len(pairs) < mixtures:
        i, j = rng.integers(0, len(labels), 2)
        if labels[i] != labels[j]:
            pairs.append((int(i), int(j)))
    scenes = _to_tensor(
        [world.scene_image([CLASSES[labels[i]], CLASSES[labels[j]]], [seeds[i], seeds[j]]) for i, j in pairs]
    )
    targets = torch.cat([embed_images(model, frames), embed_images(model, scenes)])
    class_targets = torch.cat(
        [
            torch.eye(n_classes)[labels],
            torch.stack([(torch.eye(n_classes)[labels[i]] + torch.eye(n_classes)[labels[j]]) / 2 for i, j in pairs]),
        ]
    )
    _log(f"audio pool: {len(labels)} clips, {len(pairs)} mixtures")
    optimiser = _optimiser(list(tower.parameters()), 2e-3)
    tower.train()
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _schedule(step, steps, 2e-3)
        idx = rng.integers(0, len(targets), batch)
        audio = np.stack(
            [waves[k] if k < len(labels) else _equal_rms_mean(waves[list(pairs[k - len(labels)])]) for k in idx]
        )
        audio *= rng.uniform(0.3, 1.0, (batch, 1)).astype(np.float32)
        emb = F.normalize(tower(torch.from_numpy(audio)), dim=-1)
        loss = (1.0 - (emb * targets[idx]).sum(dim=-1)).mean()
        loss = loss + 0.2 * _soft_cross_entropy(20.0 * emb @ text_singles.T, class_targets[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == steps - 1:
            _log(f"audio step {step:4d}/{steps}  loss {loss.item():.3f}")
    tower.eval()


def _round_to_half(module: torch.nn.Module) -> None:
    """Round every float parameter to float16 precision, as it will be stored."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def _save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> str:
    """Write a safetensors file whose bytes depend only on its content.

    safetensors writes several metadata keys in no fixed order, so the
    metadata travels as one canonical JSON string under a single key.
    """
    from safetensors.torch import save_file

    canonical = {"avbench": json.dumps(metadata, sort_keys=True, separators=(",", ":"))}
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path), metadata=canonical)
    path.chmod(0o644)  # shipped as package data
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_weights(out: Path, model, tower: AudioTower, steps: int, audio_steps: int) -> dict[str, str]:
    """Both safetensors files (clip in float16) and SHA256SUMS; returns file name -> sha256."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"trained_by": "avbench.synth.train_evaluator", "seed": str(SEED)}
    clip_state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    sums = {
        CLIP_WEIGHTS_FILE: _save(
            clip_state, out / CLIP_WEIGHTS_FILE, {**meta, "open_clip_model": OPEN_CLIP_NAME, "steps": str(steps)}
        ),
        AUDIO_WEIGHTS_FILE: _save(
            tower.state_dict(),
            out / AUDIO_WEIGHTS_FILE,
            {**meta, "image_backbone": "clip-synth", "steps": str(audio_steps)},
        ),
    }
    (out / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    return sums


@torch.inference_mode()
def held_out_report(model, tokens: torch.Tensor, tower: AudioTower, world: World, n: int = 20) -> dict[str, float]:
    """Accuracies on clips from a seed range never used in training (and never in manifests' range)."""
    text = F.normalize(model.encode_text(tokens[: len(CLASSES)]), dim=-1)
    fresh = 5 * MANIFEST_SEED_LIMIT
    objects = _to_tensor([world.object_image(c, fresh + k) for k in range(n) for c in CLASSES])
    truth = torch.arange(len(CLASSES)).repeat(n)
    obj_emb = embed_images(model, objects)
    r1 = (obj_emb @ text.T).argmax(dim=1).eq(truth).float().mean().item()
    pair_rng = np.random.default_rng(1)
    pairs = [pair_rng.choice(len(CLASSES), 2, replace=False) for _ in range(10 * n)]
    scenes = _to_tensor(
        [
            world.scene_image([CLASSES[a], CLASSES[b]], [fresh + 2 * k, fresh + 2 * k + 1])
            for k, (a, b) in enumerate(pairs)
        ]
    )
    top2 = (embed_images(model, scenes) @ text.T).topk(2, dim=1).indices
    both = np.mean([set(t.tolist()) == {int(a), int(b)} for t, (a, b) in zip(top2, pairs, strict=True)])
    audio = torch.from_numpy(np.stack([world.source_audio(c, fresh + k) for k in range(n) for c in CLASSES]))
    centroids = F.normalize(torch.stack([obj_emb[truth == c].mean(0) for c in range(len(CLASSES))]), dim=-1)
    audio_emb = F.normalize(tower(audio), dim=-1)
    audio_acc = (audio_emb @ centroids.T).argmax(dim=1).eq(truth).float().mean().item()
    return {"object_R@1": r1, "scene_both_top2": float(both), "audio_to_class_image": audio_acc}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=WEIGHTS_DIR, help="directory for the safetensors files and SHA256SUMS"
    )
    parser.add_argument("--steps", type=int, default=300, help="clip-synth training steps (batch 64)")
    parser.add_argument("--audio-steps", type=int, default=150, help="audio-synth training steps (batch 64)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads: one is fastest on a shared CPU and keeps results reproducible",
    )
    args = parser.parse_args(argv)

    import open_clip

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    world = World()
    register_open_clip_config()
    model = open_clip.create_model(OPEN_CLIP_NAME)
    tokens = open_clip.get_tokenizer(OPEN_CLIP_NAME)(PROMPTS)

    pool = ImagePool(world, rng, objects_per_class=300, scenes=3000)
    _log(f"image pool: {len(pool.images)} images in {time.perf_counter() - started:.0f} s")
    train_clip(model, tokens, pool, world, rng, args.steps, 64)
    _round_to_half(model)
    clip_done = time.perf_counter()

    with torch.no_grad():
        text_singles = F.normalize(model.encode_text(tokens[: len(CLASSES)]), dim=-1)
    for p in model.parameters():
        p.requires_grad_(False)
    tower = AudioTower()
    train_audio(
        tower, model, text_singles, world, rng, clips_per_class=150, mixtures=1500, steps=args.audio_steps, batch=64
    )
    finished = time.perf_counter()

    report = held_out_report(model, tokens, tower, world)
    sums = write_weights(args.out, model, tower, args.steps, args.audio_steps)
    _log(
        f"clip stage {clip_done - started:.0f} s, audio stage {finished - clip_done:.0f} s, "
        f"total {finished - started:.0f} s"
    )
    _log("held-out: " + ", ".join(f"{k} {v:.3f}" for k, v in report.items()))
    for name, digest in sums.items():
        _log(f"{digest}  {name}  {(args.out / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
