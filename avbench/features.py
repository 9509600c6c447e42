"""Feature passes: one streaming pass per (image set, extractor), cached.

Under torchrun each rank extracts its share of a set and the shares are
gathered, in order, on every rank. A pass is keyed by everything that changes its numbers: the extractor name,
its preprocessing, its weights hash, the library versions and the content
hash of every image, in order. A warm cache answers without loading the
backbone at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from . import __version__
from .cache import ArrayCache, stable_hash
from .distributed import World
from .versions import installed

log = logging.getLogger("avbench.features")


@dataclass
class ImageSet:
    """Images named by content hash and loaded only when a pass needs them."""

    hashes: list[str]
    load: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.hashes)


def _library_versions() -> dict[str, str]:
    return {
        "avbench": __version__,
        "torch": torch.__version__,
        "open_clip": installed("open_clip"),
        "torch_fidelity": installed("torch_fidelity"),
    }


class Backbones:
    """Loads each backbone once, on first use, with its weights verified."""

    def __init__(self, device: torch.device):
        self.device = device
        self._loaded: dict[str, object] = {}
        self.weights: dict[str, dict] = {}

    def spec(self, name: str):
        from .registry import backbones

        return backbones.get(name)

    def identity(self, name: str) -> dict:
        """What enters cache keys: name, preprocessing and weights hash (the pin, or an unverified copy's own).

        Asking for it marks the backbone as used by this run: features keyed by
        that hash were computed from that file, cached or not.
        """
        from .weights import identity

        spec = self.spec(name)
        sha, verified = identity(spec.weights) if spec.weights else (None, True)
        self.weights[name] = (
            {"sha256": sha, "verified": True} if verified else {"sha256": sha, "verified": False, "entry": spec.weights}
        )
        return {"name": spec.name, "preprocessing": spec.preprocessing, "weights": sha}

    def get(self, name: str):
        if name not in self._loaded:
            from .registry import import_target
            from .weights import resolve

            spec = self.spec(name)
            path = resolve(spec.weights) if spec.weights else None
            extractor = import_target(spec.loader)(spec, path, self.device)
            extractor.weights_sha256 = self.identity(name)["weights"]
            self._loaded[name] = extractor
        return self._loaded[name]


_DEFAULT_WORLD = World()


class FeatureStore:
    """Memoised, disk-cached feature passes over image sets, prompts and audio."""

    def __init__(self, cache: ArrayCache, backbones: Backbones, batch_size: int, world: World = _DEFAULT_WORLD):
        self.world = world
        self.cache = cache
        self.backbones = backbones
        self.batch_size = batch_size
        self.passes = 0
        self._memo: dict[str, dict[str, np.ndarray]] = {}
        self.versions = _library_versions()

    def key(self, backbone: str, kind: str, content: Sequence[str]) -> str:
        return stable_hash(
            {
                "backbone": self.backbones.identity(backbone),
                "kind": kind,
                "versions": self.versions,
                "content": list(content),
            }
        )

    def _cached(self, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if key in self._memo:
            return self._memo[key]
        arrays = self.cache.get(key)
        if not self.world.all_true(arrays is not None):  # every rank computes, or none does
            arrays = compute()
            self.passes += 1
            if self.world.is_main:
                self.cache.put(key, arrays)
        self._memo[key] = arrays
        return arrays

    def images(self, backbone: str, images: ImageSet) -> dict[str, np.ndarray]:
        """All feature layers of `backbone` for `images`, float64 [N, D] each."""

        def compute() -> dict[str, np.ndarray]:
            extractor = self.backbones.get(backbone)
            log.info("feature pass: %d images through %s", len(images), backbone)
            mine = self.world.shard(list(range(len(images))))
            layers: dict[str, np.ndarray] = {}  # one preallocated [len(mine), D] array per layer: no per-batch pieces
            with torch.inference_mode():
                for start in range(0, len(mine), self.batch_size):
                    positions = range(start, min(start + self.batch_size, len(mine)))
                    for group in _by_shape([(p, images.load(mine[p])) for p in positions]):
                        out = extractor.encode_images(_stack([im for _, im in group]).to(extractor.device))
                        rows = [p for p, _ in group]
                        for layer, value in out.items():
                            value = value.detach().to("cpu", torch.float64).numpy()
                            if layer not in layers:
                                layers[layer] = np.empty((len(mine), *value.shape[1:]), dtype=np.float64)
                            layers[layer][rows] = value
            if self.world.size == 1:
                return layers
            merged: dict[str, np.ndarray] = {}
            for indices, part in self.world.all_gather((mine, layers)):
                for layer, value in part.items():
                    if layer not in merged:
                        merged[layer] = np.empty((len(images), *value.shape[1:]), dtype=np.float64)
                    merged[layer][indices] = value
            return merged

        return self._cached(self.key(backbone, "images", images.hashes), compute)

    def text(self, backbone: str, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        """Text features [P, D] and the backbone's logit scale."""

        def compute() -> dict[str, np.ndarray]:
            extractor = self.backbones.get(backbone)
            with torch.inference_mode():
                features = np.asarray(extractor.encode_text(list(prompts)), dtype=np.float64)
            return {"text": features, "logit_scale": np.array(float(extractor.logit_scale))}

        return self._cached(self.key(backbone, "text", prompts), compute)

    def audio(self, backbone: str, hashes: Sequence[str], load: Callable[[int], np.ndarray]) -> np.ndarray:
        """Audio-tower embeddings [N, D] of mono clips."""

        def compute() -> dict[str, np.ndarray]:
            extractor = self.backbones.get(backbone)
            parts = []
            with torch.inference_mode():
                for start in range(0, len(hashes), self.batch_size):
                    clips = [load(i) for i in range(start, min(start + self.batch_size, len(hashes)))]
                    batch = torch.from_numpy(np.stack(clips)).to(extractor.device)
                    parts.append(extractor.encode_audio(batch).detach().to("cpu", torch.float64).numpy())
            return {"audio": np.concatenate(parts)}

        return self._cached(self.key(backbone, "audio", hashes), compute)["audio"]


def _by_shape(indexed: list[tuple[int, np.ndarray]]) -> list[list[tuple[int, np.ndarray]]]:
    """Split a batch into groups of equal image size (extractors take one size per call)."""
    groups: dict[tuple, list[tuple[int, np.ndarray]]] = {}
    for index, image in indexed:
        groups.setdefault(image.shape, []).append((index, image))
    return list(groups.values())


def _stack(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HxWx3 images of one size -> uint8 [B, 3, H, W]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
