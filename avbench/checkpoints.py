"""Safe checkpoint loading: safetensors, or torch.load with weights_only=True.

A checkpoint from the internet is untrusted. Pickles that would run code are
refused before any of their code runs, and key mismatches are named one by
one, so a wrong file fails loudly instead of loading half a model.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Callable, Mapping

import torch

from .errors import CheckpointError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def torch_load_plain(path: Path, advice: str) -> object:
    """`torch.load(weights_only=True)`: plain data only; anything that would run code is refused."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds pickled objects that are not plain data "
            f"(torch.load weights_only=True said: {str(exc).splitlines()[0]}). {advice}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc})") from None


def load_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch checkpoint, never executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if expected_sha256 is not None:
        actual = file_sha256(path)
        if actual != expected_sha256:
            raise CheckpointError(f"checkpoint {path} has sha256 {actual}, expected {expected_sha256}; the file is corrupt or was replaced")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} is not a valid safetensors file ({exc})") from None
    obj = torch_load_plain(path, "Convert it to safetensors on a trusted machine.")
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict of tensors")
    return dict(obj)


def map_keys(state: Mapping[str, torch.Tensor], rename: Callable[[str], str | None], expected: set[str], what: str) -> dict[str, torch.Tensor]:
    """Rename official keys to ours; name every missing or unexpected key.

    `rename` returns None for keys that are deliberately dropped.
    """
    mapped: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in state.items():
        new = rename(key)
        if new is None:
            continue
        if new not in expected:
            unexpected.append(key)
        mapped[new] = value
    missing = sorted(expected - set(mapped))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:10])}" + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else ""))
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(sorted(unexpected)[:10])}" + (f" (+{len(unexpected) - 10} more)" if len(unexpected) > 10 else ""))
        raise CheckpointError(f"{what}: the checkpoint does not fit the model; {'; '.join(parts)}")
    return mapped
