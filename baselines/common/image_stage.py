"""The synthetic world's image side: a frozen image encoder and its generator.

Trained once (by `python -m avbench.baselines.sound2scene.train`) and shared by both
synthetic baselines, as Sound2Scene and AV-GAS both decode with a pre-trained
instance-conditioned BigGAN:
1. `ImageEncoder` learns, from world objects and two-class scenes, to tell
   which classes an image shows (multi-label BCE). Its normalised pooled
   feature h is the frozen "image feature" audio is aligned to. (SwAV learns
   its features without labels; on a ten-class toy world a label-trained
   encoder is the cheap stand-in, and only the image side sees labels.)
2. The BigGAN-style generator G(z, h) learns to reconstruct the same images
   from their features by regression (mean squared error), with z drawn from
   N(0, I) as at test time. It therefore learns the mean image given h and
   all but ignores z; an adversarial loss would make z select sharp instances,
   as in IC-GAN, but a GAN does not train in minutes on two CPU cores (and a
   conditional-VAE decoder tried instead drew worse images from the prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .biggan import BigGANGenerator, GeneratorConfig
from .image_encoder import ImageEncoder, instance_feature
from .training import adam, batches, step
from .world_data import WorldData, to_unit_range


@dataclass(frozen=True)
class ImageStageConfig:
    encoder_widths: tuple[int, ...] = (16, 32, 64, 128)
    encoder_steps: int = 150
    generator_steps: int = 350
    batch: int = 64
    generator_batch: int = 32
    lr: float = 3e-3
    classes: int = 10


def _images_and_targets(data: WorldData, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All objects and scenes, with their multi-hot class targets."""
    images = torch.cat([data.objects, data.scenes])
    targets = torch.zeros(images.shape[0], classes)
    targets[torch.arange(data.labels.shape[0]), data.labels] = 1.0
    pair_labels = data.labels[data.pairs]
    rows = data.labels.shape[0] + torch.arange(data.pairs.shape[0])
    targets[rows, pair_labels[:, 0]] = 1.0
    targets[rows, pair_labels[:, 1]] = 1.0
    return images, targets


def train_image_encoder(data: WorldData, config: ImageStageConfig, gen: torch.Generator, log=print) -> ImageEncoder:
    images, targets = _images_and_targets(data, config.classes)
    encoder = ImageEncoder(config.encoder_widths)
    head = nn.Linear(encoder.feature_dim, config.classes)
    params = list(encoder.parameters()) + list(head.parameters())
    optimiser, schedule = adam(params, config.lr, config.encoder_steps)
    for number in range(config.encoder_steps):
        index = batches(images.shape[0], config.batch, gen)
        loss = F.binary_cross_entropy_with_logits(head(encoder(to_unit_range(images[index]))), targets[index])
        step(optimiser, schedule, loss)
        if number % 100 == 0 or number == config.encoder_steps - 1:
            log(f"image encoder step {number}: bce {loss.item():.4f}")
    return encoder.eval().requires_grad_(False)


def train_generator(
    data: WorldData,
    encoder: ImageEncoder,
    gen_config: GeneratorConfig,
    config: ImageStageConfig,
    gen: torch.Generator,
    log=print,
) -> BigGANGenerator:
    images = torch.cat([data.objects, data.scenes])
    with torch.no_grad():
        features = torch.cat([instance_feature(encoder, to_unit_range(chunk)) for chunk in images.split(256)])
    generator = BigGANGenerator(gen_config).init_orthogonal().to(memory_format=torch.channels_last)
    optimiser, schedule = adam(generator.parameters(), config.lr, config.generator_steps)
    for number in range(config.generator_steps):
        index = batches(images.shape[0], config.generator_batch, gen)
        target = to_unit_range(images[index]).contiguous(memory_format=torch.channels_last)
        z = torch.randn(index.shape[0], generator.dim_z, generator=gen)
        loss = F.mse_loss(generator(z, features[index]), target)
        step(optimiser, schedule, loss)
        if number % 100 == 0 or number == config.generator_steps - 1:
            log(f"generator step {number}: mse {loss.item():.4f}")
    return generator.eval().requires_grad_(False)
