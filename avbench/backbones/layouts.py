"""Layout checks for weights files imported without a matching hash (`avbench weights import --unverified`).

Each check reads the file the safe way (safetensors, or torch.load with weights_only=True, so no code
runs) and refuses it unless it holds exactly the tensors its backbone's loader reads, with their shapes:
a misnamed, truncated or other-architecture file is turned away at import, not at the first run.
The weights entry names its check (`WeightsEntry.layout`); each takes (path, entry).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import WeightsError


def read_tensors(path: Path, where: str) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} from a safetensors file or a plain torch state dict."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - any failure means the file is not safetensors
            raise WeightsError(f"{where}: not a readable safetensors file ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a TorchScript archive or a pickle with code lands here too
        raise WeightsError(f"{where}: not a plain tensor state dict (torch.load, weights_only=True: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{where}: holds a {type(state).__name__} that is not a flat {{name: tensor}} state dict")
    return state


def compare(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str, architecture: str) -> None:
    """Refuse `state` unless its keys are `expected`'s and every shape matches."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{where} is not in {architecture}'s layout: {len(missing)} key(s) missing "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}"
        )
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsError(
                f"{where}: {key} has shape {tuple(state[key].shape)}, {architecture}'s is {tuple(value.shape)}"
            )


def check_clip(path: Path, item) -> None:
    """The OpenAI CLIP state dict open_clip reads as a plain state dict (OpenAI's key names, open_clip's too).

    OpenAI's own `.pt` files are TorchScript archives, which do not load with weights_only=True (and whose
    scalars `input_resolution`, `context_length`, `vocab_size` open_clip drops only from a ScriptModule):
    save such a model's `state_dict()` without those three entries.
    """
    import logging

    import open_clip

    from .clip import open_clip_name

    where = f"weights {item.name!r} ({path})"
    state = read_tensors(Path(path), where)
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    model_name = open_clip_name(item.name)
    logging.disable(logging.WARNING)  # open_clip warns that the model has no pretrained weights: wanted here
    try:
        expected = open_clip.create_model(model_name).state_dict()
    finally:
        logging.disable(logging.NOTSET)
    compare(state, expected, where, f"open_clip {model_name}")


def check_inception(path: Path, item) -> None:
    """torch-fidelity's InceptionV3 state dict (the layout `load_inception` reads)."""
    from .inception import build_torch_fidelity_inception

    build_torch_fidelity_inception(Path(path), item.name)


def check_wav2clip(path: Path, item) -> None:
    """Wav2CLIP's checkpoint: `audio_encoder.*` and `audio_transform.*` as wav2clip 0.1.0 reads them."""
    from .wav2clip import read_state

    read_state(Path(path), f"weights {item.name!r}")
