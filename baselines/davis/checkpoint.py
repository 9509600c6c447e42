"""Loading DAVIS weights: avbench's synthetic-world file, or DAVIS's official pair.

The official pair, as `main.py` `checkpoint()` writes it: `unet_best.pth`
(the `AudioVisualModel` state dict: `net_unet.*` and `time_mlp.*`) and
`frame_best.pth` (the `Clip` wrapper: `model.*` = the whole OpenAI CLIP,
`temporal_transformer.*`). Both are plain state dicts, read with
`torch.load(weights_only=True)` onto the CPU (they are saved from cuda:0).
Two groups of keys are dropped on purpose, because the official forward never
reads them: the top-level `time_mlp.*` (the U-Net uses its own `net_unet.time_mlp`)
and CLIP's text tower (only `encode_image` is called). Every other key must
exist in the model with the same shape.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import torch

from avbench.checkpoints import file_sha256, load_checked, load_state_dict, map_keys
from avbench.errors import CheckpointError

from .separator import DavisConfig, DavisSeparator

WEIGHTS_DIR = Path(__file__).with_name("weights")
SYNTH_FILE = "davis_synth.safetensors"
SYNTH_SHA256 = "b77d074eeef16e8501f8507ab2169f10e22d830f1a570e07a661c957d1d1672c"
UNET_FILE, FRAME_FILE = "unet_best.pth", "frame_best.pth"


def load_synth(path: Path, config: DavisConfig, expected_sha256: str | None) -> tuple[DavisSeparator, str]:
    """A separator from avbench's own safetensors layout (`net.*`, `cue.*`)."""
    state = load_state_dict(path, expected_sha256=expected_sha256)
    separator = DavisSeparator(config)
    load_checked(separator, state, f"davis weights {path}")
    return separator, expected_sha256 or file_sha256(Path(path))


def _unet_key(key: str) -> str | None:
    return None if key.startswith("time_mlp.") else key  # AudioVisualModel.time_mlp: built, never called


def _frame_key(key: str) -> str | None:
    if key.startswith("model.") and not key.startswith("model.visual."):
        return None  # CLIP's text tower and logit scale: the frame network only encodes images
    return key


def load_official_states(
    separator: DavisSeparator,
    unet_state: Mapping[str, torch.Tensor],
    frame_state: Mapping[str, torch.Tensor],
    where: str = "davis",
) -> None:
    """Put the two official state dicts into `separator` (`net` <- unet_best, `cue` <- frame_best)."""
    unet = map_keys(unet_state, _unet_key, set(separator.net.state_dict()), f"{where} {UNET_FILE}")
    load_checked(separator.net, unet, f"{where} {UNET_FILE}")
    frame = map_keys(frame_state, _frame_key, set(separator.cue.state_dict()), f"{where} {FRAME_FILE}")
    load_checked(separator.cue, frame, f"{where} {FRAME_FILE}")


def load_paper(folder: str | Path, config: DavisConfig) -> tuple[DavisSeparator, dict[str, str]]:
    """A separator from DAVIS's `unet_best.pth` + `frame_best.pth`; returns it and the files' sha256."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"davis: {folder} is not a folder; pass the folder holding {UNET_FILE} and {FRAME_FILE}")
    missing = [name for name in (UNET_FILE, FRAME_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"davis: {folder} lacks {', '.join(missing)} (DAVIS's released checkpoint files)")
    separator = DavisSeparator(config)
    load_official_states(
        separator, load_state_dict(folder / UNET_FILE), load_state_dict(folder / FRAME_FILE), str(folder)
    )
    return separator, {name: file_sha256(folder / name) for name in (UNET_FILE, FRAME_FILE)}


def combined_sha256(hashes: dict[str, str]) -> str:
    """One identity for a multi-file checkpoint: sha256 over 'name:sha256' lines, sorted."""
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()
