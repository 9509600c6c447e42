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
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:  # KeyError: a text file
        reason = str(exc) or f"{type(exc).__name__}: the file is empty or truncated"
        raise CheckpointError(f"checkpoint {path} cannot be read ({reason})") from None


def torch_load_allowlisted(path: Path, allowed: list, advice: str) -> object:
    """`torch.load(weights_only=True)` that also accepts the classes in `allowed`, and only those.

    `allowed` holds classes or functions, or (object, "module.qualified.name")
    pairs for globals pickled under another name. The allow-list is scoped to
    this call; any other global is refused before anything of the file runs.
    """
    from torch.serialization import safe_globals

    with safe_globals(list(allowed)):
        return torch_load_plain(path, advice)


def bounded_int(config: Mapping, name: str, low: int, high: int, where: str, default: int | None = None) -> int:
    """An integer hyper-parameter of a checkpoint's config, refused outside [low, high] before anything is built."""
    if name not in config:
        if default is None:
            raise CheckpointError(f"{where}: its config has no '{name}'")
        return default
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CheckpointError(f"{where}: config field '{name}' = {value!r} is not an integer")
    try:
        number = float(value)
    except ValueError:
        raise CheckpointError(f"{where}: config field '{name}' = {value!r} is not an integer") from None
    if not number.is_integer():
        raise CheckpointError(f"{where}: config field '{name}' = {value!r} is not an integer")
    if not low <= number <= high:
        raise CheckpointError(
            f"{where}: config field '{name}' = {value!r} is outside the supported range [{low}, {high}]; "
            "refused before building anything"
        )
    return int(number)


def load_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch checkpoint, never executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if expected_sha256 is not None:
        actual = file_sha256(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"checkpoint {path} has sha256 {actual}, expected {expected_sha256}; "
                "the file is corrupt or was replaced"
            )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} is not a valid safetensors file ({exc})") from None
    obj = torch_load_plain(path, "Convert it to safetensors on a trusted machine.")
    for key in ("state_dict", "model", "module"):
        if (
            isinstance(obj, Mapping)
            and isinstance(obj.get(key), Mapping)
            and not any(isinstance(v, torch.Tensor) for v in obj.values())
        ):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict of tensors")
    return dict(obj)


def map_keys(
    state: Mapping[str, torch.Tensor], rename: Callable[[str], str | None], expected: set[str], what: str
) -> dict[str, torch.Tensor]:
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
            parts.append(
                f"missing keys: {', '.join(missing[:10])}"
                + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
            )
        if unexpected:
            parts.append(
                f"unexpected keys: {', '.join(sorted(unexpected)[:10])}"
                + (f" (+{len(unexpected) - 10} more)" if len(unexpected) > 10 else "")
            )
        raise CheckpointError(f"{what}: the checkpoint does not fit the model; {'; '.join(parts)}")
    return mapped


def load_checked(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """load_state_dict (strict) after naming every missing or unexpected key and every shape that differs.

    Nothing is copied until all of it fits. A module built on the meta device
    (a layout check that allocates nothing) takes the tensors by assignment.
    """
    own = module.state_dict()
    state = map_keys(state, lambda k: k, set(own), where)
    wrong = [
        f"{k} {tuple(v.shape)} (model: {tuple(own[k].shape)})" for k, v in state.items() if v.shape != own[k].shape
    ]
    if wrong:
        raise CheckpointError(
            f"{where}: the checkpoint does not fit the model; shapes differ: {', '.join(wrong[:10])}"
            + (f" (+{len(wrong) - 10} more)" if len(wrong) > 10 else "")
        )
    module.load_state_dict(state, strict=True, assign=any(t.is_meta for t in own.values()))
