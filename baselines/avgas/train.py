"""Train the synthetic-world AV-GAS: `python -m avbench.baselines.avgas.train`.

Seeded, single process, CPU. It starts from the shipped synthetic Sound2Scene
(run `python -m avbench.baselines.sound2scene.train` first when retraining both):
its frozen image encoder gives the A2V targets, its
frozen audio encoder applied to each clean source gives the A2A targets and
initialises the separator's trunk, and its generator is copied unchanged.
The separator learns, on two-class world mixtures (the suites' equal-RMS
rule), K = 2 slot features: per mixture the loss takes the cheaper of the two
slot orders of A2V + A2A InfoNCE (negatives: every source in the batch).
Writes `avgas_synth.safetensors` into --out and prints its sha256; pin it in
model.py (SYNTH_WEIGHTS_SHA256).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from avbench.checkpoints import load_state_dict

from ..common.checkpoint_io import save_weights
from ..common.image_encoder import ImageEncoder
from ..common.losses import info_nce_rows, pit_min, slot_orders
from ..common.training import Log, adam, batches, report_file, seed_everything, step
from ..common.world_data import render_world_data
from ..sound2scene import model as s2s
from ..sound2scene.train import IMAGE_ENCODER_FILE, IMAGE_ENCODER_SHA256, embed_audio, image_features
from ..sound2scene.train import TrainConfig as Sound2SceneTrainConfig
from .model import NAME, SYNTH, SYNTH_WEIGHTS, AVGASNet


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    pairs: int = 3000
    steps: int = 250
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    tau: float = 10.0
    a2a_weight: float = 1.0
    held_out: int = 200  # last mixtures: scored, never trained on


def slot_loss(slots: torch.Tensor, image_targets: torch.Tensor, audio_targets: torch.Tensor, config: TrainConfig):
    """Permutation-invariant A2V + A2A InfoNCE; slots [B, K, D], targets [B, K, D] (sources in manifest order)."""
    batch, count, dim = slots.shape
    flat_image, flat_audio = image_targets.reshape(-1, dim), audio_targets.reshape(-1, dim)
    key = torch.arange(batch)[:, None] * count  # row of item i's first source among the flattened keys
    per_slot = []  # per_slot[k][:, j]: loss of slot k if it stood for source j
    for k in range(count):
        image_rows = info_nce_rows(slots[:, k], flat_image, config.tau)
        audio_rows = info_nce_rows(slots[:, k], flat_audio, config.tau)
        columns = key + torch.arange(count)[None, :]
        per_slot.append(image_rows.gather(1, columns) + config.a2a_weight * audio_rows.gather(1, columns))
    orders = [sum(per_slot[k][:, source] for k, source in enumerate(order)) for order in slot_orders(count)]
    return pit_min(orders)


def slot_accuracy(slots: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor) -> float:
    """Fraction of mixtures whose slots name exactly their two classes (nearest image-class prototype)."""
    predicted = (slots @ prototypes.t()).argmax(-1)  # [B, K]
    return float((predicted.sort(1).values == labels.sort(1).values).all(1).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=SYNTH_WEIGHTS.parent, help="output folder (default: the shipped weights folder)"
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=s2s.SYNTH_WEIGHTS.parent,
        help="folder with the synthetic Sound2Scene's weights (default: the shipped ones)",
    )
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    args = parser.parse_args(argv)
    config = TrainConfig(seed=args.seed)
    log = Log()
    gen = seed_everything(config.seed)
    pinned = args.source == s2s.SYNTH_WEIGHTS.parent
    sound2scene, _ = s2s.load_single_file(
        args.source / s2s.SYNTH_WEIGHTS.name, s2s.SYNTH_WEIGHTS_SHA256 if pinned else None
    )
    encoder = ImageEncoder(Sound2SceneTrainConfig().image.encoder_widths)
    encoder.load_state_dict(load_state_dict(args.source / IMAGE_ENCODER_FILE, IMAGE_ENCODER_SHA256 if pinned else None))
    encoder.eval().requires_grad_(False)
    sound2scene.eval().requires_grad_(False)

    data = render_world_data(Sound2SceneTrainConfig().clips_per_class, config.pairs, config.seed + 1, scenes=False)
    log(f"rendered {data.pairs.shape[0]} mixtures of {data.audio.shape[0]} clips")
    objects = image_features(encoder, data.objects)
    image_targets = objects[data.pairs]  # [P, 2, D]
    audio_targets = embed_audio(sound2scene.spectrogram, sound2scene.audnet, data.audio)[data.pairs]

    net = AVGASNet(SYNTH)
    trunk = {k: v for k, v in sound2scene.audnet.state_dict().items() if not k.startswith("fc.")}
    net.separator.trunk.load_state_dict(trunk)
    net.generator.load_state_dict(sound2scene.generator.state_dict())
    net.generator.requires_grad_(False)
    separator = net.separator.to(memory_format=torch.channels_last).train()
    trainable = data.pairs.shape[0] - config.held_out
    with torch.no_grad():  # the front-end has no parameters: compute every mixture's spectrogram once
        specs = torch.cat([net.spectrogram(chunk) for chunk in data.mixtures[:trainable].split(256)])
    optimiser, schedule = adam(separator.parameters(), config.lr, config.steps, config.weight_decay)
    for number in range(config.steps):
        index = batches(trainable, config.batch, gen)
        spec = specs[index].contiguous(memory_format=torch.channels_last)
        loss, _ = slot_loss(separator(spec), image_targets[index], audio_targets[index], config)
        step(optimiser, schedule, loss)
        if number % 50 == 0 or number == config.steps - 1:
            log(f"separator step {number}: a2v + a2a infonce {loss.item():.4f}")
    net.eval()
    held = slice(trainable, None)
    labels = data.labels[data.pairs[held]]
    prototypes = F.normalize(
        torch.stack([objects[data.labels == c].mean(0) for c in range(int(data.labels.max()) + 1)]), dim=1
    )
    with torch.no_grad():
        slots = net.slots(data.mixtures[held])
    log(f"held-out mixtures: both slots name the two classes in {slot_accuracy(slots, labels, prototypes):.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / SYNTH_WEIGHTS.name
    save_weights(net.state_dict(), path, NAME, SYNTH)
    report_file(path, log)
    log(f"done in {log.elapsed:.0f} s")


if __name__ == "__main__":
    main()
