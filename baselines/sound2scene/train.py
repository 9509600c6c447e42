"""Train the synthetic-world Sound2Scene: `python -m avbench.baselines.sound2scene.train`.

Seeded, single process, CPU. Stages:
1. render training clips and two-clip scenes from the world (seeds above every
   manifest's, see common/world_data.py);
2. the image side shared with AV-GAS (common/image_stage.py): the frozen image
   encoder, then the generator that decodes its features;
3. the audio encoder, as in Sound2Scene's train.py: single-source clips only,
   InfoNCE with negative-L2 logits between the audio embedding and the image
   feature of the clip's own frame (the released code keeps tau at 1; the
   synthetic run uses a sharper tau so that a few hundred steps suffice).
Writes `image_encoder_synth.safetensors` (read by the AV-GAS trainer) and
`sound2scene_synth.safetensors` into --out and prints their sha256; pin the
latter in model.py (SYNTH_WEIGHTS_SHA256) and the former here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..common.audio_resnet import AudioResNet
from ..common.checkpoint_io import save_weights
from ..common.image_encoder import ImageEncoder, instance_feature
from ..common.image_stage import ImageStageConfig, train_generator, train_image_encoder
from ..common.losses import info_nce_l2
from ..common.spectrogram import LogSpectrogram
from ..common.training import Log, adam, batches, report_file, seed_everything, step
from ..common.world_data import WorldData, render_world_data, to_unit_range
from .model import NAME, SYNTH, SYNTH_WEIGHTS, Sound2SceneNet

IMAGE_ENCODER_FILE = "image_encoder_synth.safetensors"
IMAGE_ENCODER_SHA256 = "6c0a6b68e50e46e050600a1b091e5d647b6a945477bb4cdb69422684e1bf403b"
IMAGE_ENCODER_MODEL = "synth-image-encoder"


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    clips_per_class: int = 200
    pairs: int = 2000
    image: ImageStageConfig = ImageStageConfig()
    audio_steps: int = 200
    audio_batch: int = 64
    audio_lr: float = 1e-3
    weight_decay: float = 1e-5
    tau: float = 10.0
    held_out: int = 200  # last clips: scored, never trained on


def image_features(encoder: ImageEncoder, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([instance_feature(encoder, to_unit_range(chunk)) for chunk in images.split(256)])


def embed_audio(spectrogram: LogSpectrogram, audnet: AudioResNet, audio: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([F.normalize(audnet(spectrogram(chunk))[0], dim=1) for chunk in audio.split(128)])


def class_accuracy(
    queries: torch.Tensor, keys: torch.Tensor, query_labels: torch.Tensor, key_labels: torch.Tensor
) -> float:
    """How often a query's nearest class prototype (mean key of the class) is its own class."""
    prototypes = F.normalize(
        torch.stack([keys[key_labels == c].mean(0) for c in range(int(key_labels.max()) + 1)]), dim=1
    )
    return float(((queries @ prototypes.t()).argmax(1) == query_labels).float().mean())


def train_audio_encoder(
    data: WorldData, targets: torch.Tensor, config: TrainConfig, gen: torch.Generator, log: Log
) -> AudioResNet:
    spectrogram = LogSpectrogram(SYNTH.spectrogram)
    audnet = AudioResNet(SYNTH.audio).to(memory_format=torch.channels_last)
    trainable = data.audio.shape[0] - config.held_out
    with torch.no_grad():  # the front-end has no parameters: compute every clip's spectrogram once
        specs = torch.cat([spectrogram(chunk) for chunk in data.audio[:trainable].split(256)])
    optimiser, schedule = adam(audnet.parameters(), config.audio_lr, config.audio_steps, config.weight_decay)
    for number in range(config.audio_steps):
        index = batches(trainable, config.audio_batch, gen)
        spec = specs[index].contiguous(memory_format=torch.channels_last)
        loss = info_nce_l2(audnet(spec)[0], targets[index], config.tau)
        step(optimiser, schedule, loss)
        if number % 50 == 0 or number == config.audio_steps - 1:
            log(f"audio encoder step {number}: infonce {loss.item():.4f}")
    audnet.eval().requires_grad_(False)
    held = slice(trainable, None)
    audio_features = embed_audio(spectrogram, audnet, data.audio[held])
    accuracy = class_accuracy(audio_features, targets[:trainable], data.labels[held], data.labels[:trainable])
    log(f"held-out clips: audio embedding -> nearest image-class prototype accuracy {accuracy:.3f}")
    return audnet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=SYNTH_WEIGHTS.parent, help="output folder (default: the shipped weights folder)"
    )
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    args = parser.parse_args(argv)
    config = TrainConfig(seed=args.seed)
    log = Log()
    gen = seed_everything(config.seed)
    data = render_world_data(config.clips_per_class, config.pairs, config.seed)
    log(f"rendered {data.audio.shape[0]} clips and {data.pairs.shape[0]} scenes")
    encoder = train_image_encoder(data, config.image, gen, log)
    generator = train_generator(data, encoder, SYNTH.generator, config.image, gen, log)
    audnet = train_audio_encoder(data, image_features(encoder, data.objects), config, gen, log)
    net = Sound2SceneNet(SYNTH)
    net.audnet.load_state_dict(audnet.state_dict())
    net.generator.load_state_dict(generator.state_dict())
    args.out.mkdir(parents=True, exist_ok=True)
    encoder_path = args.out / IMAGE_ENCODER_FILE
    save_weights(encoder.state_dict(), encoder_path, IMAGE_ENCODER_MODEL, {"widths": list(config.image.encoder_widths)})
    weights_path = args.out / SYNTH_WEIGHTS.name
    save_weights(net.state_dict(), weights_path, NAME, SYNTH)
    report_file(encoder_path, log)
    report_file(weights_path, log)
    log(f"done in {log.elapsed:.0f} s")


if __name__ == "__main__":
    main()
