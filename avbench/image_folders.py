"""Two folders of images as `ScoringInputs`, for `avbench fidelity DIR1 DIR2`.

Files are read the way torch-fidelity reads a directory (non-recursive, PNG
and JPEG, sorted by name, PIL `convert("RGB")` to uint8), so the same folders
give the same features in the same order, and so the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_images(directory: str | Path) -> list[Path]:
    """The PNG/JPEG files directly in `directory`, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise DataError(f"{directory} holds no PNG or JPEG images")
    return files


def load_image(path: Path) -> np.ndarray:
    """uint8 H x W x 3 RGB."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from None


def encode_files(files: list[Path], extractor, batch_size: int) -> dict[str, np.ndarray]:
    """Every feature layer of `extractor` for `files`, float64 [N, D], in file order.

    A batch is `batch_size` consecutive files, cut further where the image
    size changes (an extractor takes one size per call).
    """
    rows: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(files), batch_size):
        images = [load_image(p) for p in files[start : start + batch_size]]
        while images:
            run = next((i for i, im in enumerate(images) if im.shape != images[0].shape), len(images))
            batch = torch.from_numpy(np.stack(images[:run])).permute(0, 3, 1, 2).contiguous()
            for layer, value in extractor.encode_images(batch).items():
                rows.setdefault(layer, []).append(value.detach().to("cpu", torch.float64).numpy())
            images = images[run:]
    return {layer: np.concatenate(parts) for layer, parts in rows.items()}


class FolderInputs:
    """`ScoringInputs` over a folder of generated images and a folder of reference images."""

    task = "generate"
    suite = None

    def __init__(
        self, generated: str | Path, reference: str | Path, extractors: dict, batch_size: int = 64, seed: int = 0
    ):
        self.files = {"generated": list_images(generated), "reference": list_images(reference)}
        self.item_ids = [p.name for p in self.files["generated"]]
        self.labels: list[tuple[str, ...]] = [() for _ in self.item_ids]
        self.seed = seed
        self._extractors = extractors  # backbone name -> loaded extractor
        self._batch_size = batch_size
        self._memo: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def image_features(self, backbone: str, which: str, layer: str | None = None) -> np.ndarray:
        if which not in self.files:
            raise DataError(f"folder scoring has image sets 'generated' and 'reference', not {which!r}")
        if backbone not in self._extractors:
            raise DataError(f"backbone {backbone!r} was not loaded for this folder comparison")
        key = (backbone, which)
        if key not in self._memo:
            self._memo[key] = encode_files(self.files[which], self._extractors[backbone], self._batch_size)
        layers = self._memo[key]
        if layer is None:
            layer = next(iter(layers))
        if layer not in layers:
            raise DataError(f"backbone {backbone!r} has no feature layer {layer!r}; it has {', '.join(layers)}")
        return layers[layer]
