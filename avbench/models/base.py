"""The one interface every model implements, built-in or third party.

A model declares the tasks it supports, its sample rate and its device, and
answers a whole batch at once. Randomness comes in as per-item seeds, so an
item's output never depends on batch size, order or global RNG state.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np
import torch

TASKS = ("generate", "generate_per_source", "separate_audio")


@dataclass(frozen=True)
class Truth:
    """What the suite knows about one item: labels and reference media.

    Only models that declare `uses_ground_truth = True` (the sanity models)
    are handed this; the record marks their runs as privileged.
    """

    labels: tuple[str, ...]
    reference: np.ndarray | None  # uint8 HxWx3: the item's reference frame / ideal scene
    source_images: tuple[np.ndarray, ...] = ()  # uint8 HxWx3 per source
    sources: np.ndarray | None = None  # float32 [S, T] true source waveforms


@dataclass
class Batch:
    """A batch of ready items, as the runner hands it to a model."""

    item_ids: list[str]
    audio: torch.Tensor  # float32 [B, T] mono mixture at `sample_rate`, on the model's device
    sample_rate: int
    seeds: list[int]
    num_sources: list[int]
    cues: list[list[np.ndarray]] | None = None  # separate_audio: one uint8 HxWx3 cue per source
    truth: list[Truth] | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    def generator(self, index: int, device: torch.device | str = "cpu") -> torch.Generator:
        """A torch generator seeded for item `index` alone."""
        gen = torch.Generator(device=device)
        gen.manual_seed(int(self.seeds[index]))
        return gen


class Model(abc.ABC):  # noqa: B024 - abstract by intent, every method optional
    """Base class of all avbench models.

    Subclasses set `name`, `version`, `tasks` and `sample_rate`, and override
    the methods of the tasks they support. Outputs:
      generate            -> list of B uint8 images (H, W, 3)
      generate_per_source -> list of B lists, num_sources[i] images each
      separate_audio      -> list of B float32 arrays [num_sources[i], T]

    Conformance hook (`avbench conformance`, README "Conformance"): an adapter
    of published code can prove, on cases recorded by running the official
    code, that it loads the official files and computes the same function.
      from_checkpoint(..., architecture=dict)  the parsed `--config` JSON
          (reduced hyper-parameters); the paper loader builds the official
          network with them. None (every real run) means the full paper config.
      conformance_inputs      case keys that are inputs (never compared)
      conformance_tolerances  max |Δ| allowed per output key; integer keys
          are compared in their own units (0 = exact)
      conformance(cases, meta) -> {key: tensor} for every output key the
          adapter computes, given all tensors of the case file and its parsed
          "conformance" metadata. A key it does not return fails.
    """

    name: ClassVar[str] = "model"
    version: ClassVar[str] = "0"
    tasks: ClassVar[frozenset[str]] = frozenset()
    sample_rate: ClassVar[int] = 16000
    uses_ground_truth: ClassVar[bool] = False
    conformance_inputs: ClassVar[frozenset[str]] = frozenset()
    conformance_tolerances: ClassVar[Mapping[str, float]] = {}

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.checkpoint_sha256: str | None = None

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, *, device: str = "cpu", suite=None, architecture: dict | None = None
    ) -> "Model":
        """Build the model, loading `path` if given.

        `suite` (a `Suite`) lets a model pick a default checkpoint, for
        example its shipped synthetic-world weights on synthetic suites.
        `architecture` (conformance only) holds reduced hyper-parameters for
        the paper loader; None means the full paper configuration.
        """
        from ..errors import CheckpointError

        if path is not None:
            raise CheckpointError(f"model {cls.name!r} takes no checkpoint, got {path}")
        if architecture is not None:
            raise CheckpointError(f"model {cls.name!r} has no official architecture to configure")
        return cls(device=device)

    @classmethod
    def supports(cls, task: str) -> bool:
        """A class-level answer: a run decides its tasks before (and without) building the model."""
        return task in cls.tasks

    def generate(self, batch: Batch) -> list[np.ndarray]:
        raise NotImplementedError(f"{self.name} does not support generate")

    def generate_per_source(self, batch: Batch) -> list[list[np.ndarray]]:
        raise NotImplementedError(f"{self.name} does not support generate_per_source")

    def separate_audio(self, batch: Batch) -> list[np.ndarray]:
        raise NotImplementedError(f"{self.name} does not support separate_audio")

    def conformance(self, cases: Mapping[str, torch.Tensor], meta: Mapping) -> dict[str, torch.Tensor]:
        """This adapter's value of every output key of a recorded case file it can compute (base: none)."""
        return {}

    def describe(self) -> dict:
        """Identity written into the record."""
        return {
            "name": self.name,
            "version": self.version,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "checkpoint_sha256": self.checkpoint_sha256,
            "uses_ground_truth": self.uses_ground_truth,
        }
