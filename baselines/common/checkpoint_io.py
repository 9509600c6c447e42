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

from avbench.checkpoints import bounded_int, torch_load_allowlisted
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


def training_state_allowlist() -> list:
    """Exactly the globals IC-GAN's trainer pickles into `state_dict_best*.pth` besides plain data.

    `config['G_activation']`/`['D_activation']` are `torch.nn.ReLU` objects,
    `best_IS` a numpy.float64 (numpy 1.x writes its reconstructor as
    `numpy.core.multiarray.scalar`, numpy 2 as `numpy._core.multiarray.scalar`,
    with a `numpy.dtype` -> `Float64DType` for its dtype), and the dict an OrderedDict.
    """
    import collections

    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    return [
        torch.nn.ReLU,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        type(np.dtype(np.float64)),
        collections.OrderedDict,
    ]


def load_training_state(path: Path) -> dict:
    """A BigGAN `state_dict_best*.pth` (counters, best FID, config), read with torch.load(weights_only=True)
    and an allow-list of exactly the classes the official trainer writes; anything else is refused unrun."""
    obj = torch_load_allowlisted(path, training_state_allowlist(), "Remove it to use the paper's generator config.")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a training-state dictionary")
    return obj


def one_file(directory: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The single file in `directory` (or one level below) matching any pattern."""
    found = sorted(
        {p for pattern in patterns for p in list(directory.glob(pattern)) + list(directory.glob(f"*/{pattern}"))}
    )
    if not found:
        raise CheckpointError(f"{directory} holds no {what} (looked for {', '.join(patterns)}, also one folder down)")
    if len(found) > 1:
        raise CheckpointError(
            f"{directory} holds several {what} files ({', '.join(str(p) for p in found)}); keep exactly one"
        )
    return found[0]


def check_limits(config: Any, limits: Mapping[str, tuple[int, int]], where: str) -> None:
    """Refuse a config whose sizes leave `limits` ({"audio.widths": (low, high), ...}, dotted field paths;
    a tuple field is checked element by element) before anything is built from it."""
    values = asdict(config) if is_dataclass(config) else dict(config)
    for dotted, (low, high) in limits.items():
        value: Any = values
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            bounded_int({dotted: item}, dotted, low, high, where)


def architecture_value(section: Mapping, name: str, where: str):
    """Key `name` or `name (citation...)` of an architecture JSON section, one reader for every baseline's fixture
    format: a {"full", "tiny"} pair gives its "tiny" value, any other value is taken as is."""
    if not isinstance(section, Mapping):
        raise CheckpointError(f"{where} must be a JSON object")
    for key, value in section.items():
        if key == name or key.startswith(f"{name} ("):
            return value["tiny"] if isinstance(value, Mapping) and "tiny" in value else value
    raise CheckpointError(f"{where} has no '{name}'")


def single_file_config(
    path: Path,
    model: str,
    cls: type,
    nested: Mapping[str, Any],
    default: Any,
    limits: Mapping[str, tuple[int, int]] | None = None,
):
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
    if limits is not None:  # sizes first: nothing is built from a config that asks for too much
        check_limits(values, limits, f"{path} metadata {CONFIG_KEY!r}")
    return config_from_dict(cls, values, f"{path} config", nested)
