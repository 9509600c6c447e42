"""Loading DAVIS weights: avbench's synthetic-world file, or DAVIS's released pair.

The released pair is `unet_best.pth` (keys `net_unet.*`, `time_mlp.*`) and
`frame_best.pth` (keys `model.*` = the CLIP ViT-B/32 image tower,
`temporal_transformer.*`), read with `weights_only=True`. A folder may carry an
`avbench-davis.json` that says which DAVIS variant it holds, for example
`{"objective": "flow", "steps": 2}` for DAVIS-Flow; without it the folder is
taken to be the DAVIS (diffusion) MUSIC model, the only one released.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from avbench.checkpoints import file_sha256, load_state_dict, map_keys
from avbench.errors import CheckpointError

from .separator import PAPER_MUSIC, DavisConfig, DavisSeparator

WEIGHTS_DIR = Path(__file__).with_name("weights")
SYNTH_FILE = "davis_synth.safetensors"
SYNTH_SHA256 = "cbc4a7fed41404c9b8daf9be0ffd8db7c148959fa0d5b4d06a7c1c7b9dcc946c"
UNET_FILE, FRAME_FILE, VARIANT_FILE = "unet_best.pth", "frame_best.pth", "avbench-davis.json"
_VARIANT_KEYS = {"objective": str, "steps": int, "eta": (int, float), "silence_mask": bool, "sample_rate": int}


def load_synth(path: Path, config: DavisConfig, expected_sha256: str | None) -> tuple[DavisSeparator, str]:
    """A separator from avbench's own safetensors layout (`net.*`, `cue.*`)."""
    state = load_state_dict(path, expected_sha256=expected_sha256)
    separator = DavisSeparator(config)
    expected = set(separator.state_dict())
    separator.load_state_dict(map_keys(state, lambda k: k, expected, f"davis weights {path}"), strict=True)
    return separator, expected_sha256 or file_sha256(Path(path))


def paper_config(folder: Path) -> DavisConfig:
    """PAPER_MUSIC, changed by the folder's avbench-davis.json if there is one."""
    variant_path = folder / VARIANT_FILE
    if not variant_path.is_file():
        return PAPER_MUSIC
    try:
        variant = json.loads(variant_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{variant_path}: not valid JSON ({exc})") from None
    if not isinstance(variant, dict):
        raise CheckpointError(f"{variant_path}: expected a JSON object")
    for key, value in variant.items():
        kind = _VARIANT_KEYS.get(key)
        if kind is None:
            raise CheckpointError(f"{variant_path}: unknown field {key!r}; known: {', '.join(_VARIANT_KEYS)}")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise CheckpointError(f"{variant_path}: field {key!r} has the wrong type ({type(value).__name__})")
    if variant.get("objective", "diffusion") not in ("diffusion", "flow"):
        raise CheckpointError(f"{variant_path}: objective must be 'diffusion' or 'flow'")
    config = replace(PAPER_MUSIC, **{k: v for k, v in variant.items() if k in ("objective", "steps", "eta", "silence_mask")})
    if "sample_rate" in variant:
        config = replace(config, spec=replace(config.spec, sample_rate=variant["sample_rate"]))
    return config


def _strip_module(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _frame_key(key: str, whole_clip: bool) -> str | None:
    """Frame-net keys; a file holding the whole CLIP (`model.visual.*`) keeps only its image tower."""
    key = _strip_module(key)
    if whole_clip and key.startswith("model."):
        return "model." + key[len("model.visual.") :] if key.startswith("model.visual.") else None
    return key


def load_paper(folder: str | Path, config: DavisConfig | None = None) -> tuple[DavisSeparator, dict[str, str]]:
    """A separator from DAVIS's released `unet_best.pth` + `frame_best.pth`; returns it and the files' sha256."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"davis: {folder} is not a folder; pass the folder holding {UNET_FILE} and {FRAME_FILE}")
    missing = [name for name in (UNET_FILE, FRAME_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"davis: {folder} lacks {', '.join(missing)} (DAVIS's released checkpoint files)")
    config = config or paper_config(folder)
    separator = DavisSeparator(config)
    unet_state = load_state_dict(folder / UNET_FILE)
    net_expected = set(separator.net.state_dict())
    separator.net.load_state_dict(map_keys(unet_state, _strip_module, net_expected, f"davis {folder / UNET_FILE}"), strict=True)
    frame_state = load_state_dict(folder / FRAME_FILE)
    whole_clip = any(_strip_module(k).startswith("model.visual.") for k in frame_state)
    cue_expected = set(separator.cue.state_dict())
    mapped = map_keys(frame_state, lambda k: _frame_key(k, whole_clip), cue_expected, f"davis {folder / FRAME_FILE}")
    separator.cue.load_state_dict(mapped, strict=True)
    hashes = {name: file_sha256(folder / name) for name in (UNET_FILE, FRAME_FILE)}
    return separator, hashes


def combined_sha256(hashes: dict[str, str]) -> str:
    """One identity for a multi-file checkpoint: sha256 over 'name:sha256' lines, sorted."""
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()

