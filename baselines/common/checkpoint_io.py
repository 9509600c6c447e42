"""Reading and writing the baselines' checkpoints.

Official checkpoints are read only through `avbench.checkpoints`
(safetensors, or torch.load with weights_only=True), so a hostile pickle is
refused before any of its code runs. avbench-format checkpoints are single
safetensors files whose metadata names the model and its architecture config,
so a file always rebuilds the network it was saved from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from avbench.checkpoints import torch_load_plain
from avbench.errors import CheckpointError

MODEL_KEY = "avbench.model"
CONFIG_KEY = "avbench.config"


def config_to_json(config: Any) -> str:
    """A config dataclass (or plain dict) as canonical JSON."""
    return json.dumps(asdict(config) if is_dataclass(config) else config, sort_keys=True)


def config_from_dict(cls: type, values: Mapping[str, Any], where: str, nested: Mapping[str, Any] | None = None):
    """Rebuild a frozen config dataclass.

    `nested` maps a field that is a config itself to its class, or to
    (class, its own `nested`) when that config nests further.
    """
    nested = nested or {}
    names = {f.name for f in fields(cls)}
    if not isinstance(values, Mapping) or set(values) != names:
        given = set(values) if isinstance(values, Mapping) else set()
        raise CheckpointError(f"{where}: config fields {sorted(given)} do not match {cls.__name__} {sorted(names)}")
    kwargs = {}
    for name, value in values.items():
        if name in nested:
            inner, inner_nested = nested[name] if isinstance(nested[name], tuple) else (nested[name], None)
            value = config_from_dict(inner, value, f"{where}.{name}", inner_nested)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def save_weights(state: Mapping[str, torch.Tensor], path: Path, model: str, config: Any) -> None:
    """Write an avbench-format checkpoint (safetensors with model name and config)."""
    from safetensors.torch import save_file

    tensors = {key: value.detach().cpu().contiguous() for key, value in state.items()}
    save_file(tensors, str(path), metadata={MODEL_KEY: model, CONFIG_KEY: config_to_json(config)})
    Path(path).chmod(0o644)  # shipped files are read by everyone


def read_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata ({} for other files or none)."""
    if Path(path).suffix != ".safetensors":
        return {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is not a valid safetensors file ({exc})") from None


def load_training_state(path: Path) -> dict:
    """A BigGAN `state_dict_best*.pth` (counters, best FID, config) read without running code."""
    obj = torch_load_plain(path, "Remove it to use the paper's generator config.")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a training-state dictionary")
    return obj


def one_file(directory: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The single file in `directory` (or one level below) matching any pattern."""
    found = sorted({p for pattern in patterns for p in list(directory.glob(pattern)) + list(directory.glob(f"*/{pattern}"))})
    if not found:
        raise CheckpointError(f"{directory} holds no {what} (looked for {', '.join(patterns)}, also one folder down)")
    if len(found) > 1:
        raise CheckpointError(f"{directory} holds several {what} files ({', '.join(str(p) for p in found)}); keep exactly one")
    return found[0]


def single_file_config(path: Path, model: str, cls: type, nested: Mapping[str, Any], default: Any):
    """The architecture config of a one-file checkpoint: from its metadata, else `default` (the paper's)."""
    metadata = read_metadata(path)
    named = metadata.get(MODEL_KEY)
    if named is not None and named != model:
        raise CheckpointError(f"{path} is a {named!r} checkpoint, not a {model!r} one")
    if CONFIG_KEY not in metadata:
        return default
    try:
        values = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata {CONFIG_KEY!r} is not JSON ({exc})") from None
    return config_from_dict(cls, values, f"{path} config", nested)
