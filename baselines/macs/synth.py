"""MACS in miniature for the synthetic world: separator -> slot embeddings -> 64x64 image.

The pipeline is MACS's with the synthetic world's parts in place of the large
ones: the `audio-synth` tower (a frozen copy, shipped inside this model's
weights so that a retrained evaluator cannot silently change it) stands in for
LAION-CLAP, and `SlotImageGenerator` for the adapted Stable Diffusion UNet.
Slots are ordered by contextual significance: the cosine between a slot's
embedding and the mixture's, weighted by the slot's share of the mixture's
RMS, so the slots that carry the mixture come first and near-silent slots last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from avbench.synth.evaluator import EMBED_DIM, AudioTower

from .adapter import SlotMLP
from .generator import GeneratorConfig, SlotImageGenerator
from .separator import MaskSeparator, SeparatorConfig


@dataclass(frozen=True)
class SynthConfig:
    separator: SeparatorConfig = field(
        default_factory=lambda: SeparatorConfig(slots=4, sample_rate=16000, seconds=2.0, width=4)
    )
    mlp_hidden: int = 256
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(token_dim=EMBED_DIM))


def significance_order(
    slot_embeddings: torch.Tensor, mixture_embedding: torch.Tensor, slots: torch.Tensor
) -> torch.Tensor:
    """Indices [B, M] that sort slots from most to least significant."""
    cosine = F.cosine_similarity(slot_embeddings, mixture_embedding.unsqueeze(1), dim=-1)
    rms = slots.pow(2).mean(dim=-1).sqrt()
    share = rms / rms.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.argsort(cosine * share, dim=1, descending=True, stable=True)


class SynthMACS(nn.Module):
    def __init__(self, config: SynthConfig):
        super().__init__()
        self.config = config
        self.separator = MaskSeparator(config.separator)
        self.embedder = AudioTower()
        self.mlp = SlotMLP(
            config.separator.slots, in_dim=EMBED_DIM, hidden=config.mlp_hidden, out_dim=config.generator.token_dim
        )
        self.generator = SlotImageGenerator(config.generator)

    @torch.no_grad()
    def slot_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """Mixture [B, T] -> slot embeddings [B, M, D], most significant first."""
        slots = self.separator(audio)
        b, m, t = slots.shape
        embedded = self.embedder(slots.reshape(b * m, t)).view(b, m, -1)
        order = significance_order(embedded, self.embedder(audio), slots)
        return torch.gather(embedded, 1, order.unsqueeze(-1).expand(-1, -1, embedded.shape[-1]))

    def images(self, slot_embeddings: torch.Tensor) -> torch.Tensor:
        """[B, M, D] slot embeddings -> images [B, 3, 64, 64] in [-1, 1]."""
        return self.generator(self.mlp(slot_embeddings))
