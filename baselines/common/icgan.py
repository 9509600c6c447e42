"""Locating and configuring an official IC-GAN BigGAN generator directory.

IC-GAN's own loader (Sound2Scene's `inference/utils.py:289-308`) tries
`state_dict_best0.pth` then `state_dict_best1.pth`, keeps the one whose
`best_FID` is strictly lower (so a tie keeps best0; other `best*` names are
never looked at), rebuilds the generator from the `config` stored in it and
loads `G_ema_<that name>.pth`. This module does the same, without executing any
pickled code (an allow-list of the classes the trainer writes), bounds every
size in the stored config before anything is built, and falls back to the
published res128 config when only a single `G_ema_best*` file is present.
"""

from __future__ import annotations

from pathlib import Path

from avbench.checkpoints import bounded_int
from avbench.errors import CheckpointError

from .biggan import CHANNEL_PLAN, PAPER_GENERATOR, GeneratorConfig
from .checkpoint_io import load_training_state, one_file

G_EMA_PATTERNS = ("G_ema_best*.pth", "G_ema_best*.safetensors")
OFFICIAL_BEST_NAMES = ("best0", "best1")  # the only names IC-GAN's loader tries, in this order
# Sizes a stored config may ask for (the paper: G_ch 96, dim_z 120, shared_dim_feat 512).
CONFIG_BOUNDS = {"G_ch": (1, 128), "dim_z": (6, 256), "shared_dim_feat": (1, 2048)}


def generator_config_from_biggan(config: dict, where: str) -> GeneratorConfig:
    """Our GeneratorConfig from a BigGAN training config, refusing variants we do not build."""

    def field(name):
        if name not in config:
            raise CheckpointError(f"{where}: its config has no '{name}'")
        return config[name]

    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: its 'config' is not a dictionary")
    checks = {"instance_cond": True, "class_cond": False, "hier": True, "G_shared_feat": True, "G_param": "SN"}
    for name, wanted in checks.items():
        if config.get(name, wanted) != wanted:
            raise CheckpointError(
                f"{where}: {name}={config[name]!r} is not supported "
                f"(only IC-GAN's instance-conditioned BigGAN with {name}={wanted!r})"
            )
    field("resolution")
    resolution = bounded_int(config, "resolution", min(CHANNEL_PLAN), max(CHANNEL_PLAN), where)
    if resolution not in CHANNEL_PLAN:
        raise CheckpointError(f"{where}: resolution {resolution} is not supported ({sorted(CHANNEL_PLAN)})")
    sizes = {name: bounded_int(config, name, low, high, where) for name, (low, high) in CONFIG_BOUNDS.items()}
    try:
        attention = tuple(int(a) for a in str(config.get("G_attn", "64")).split("_") if int(a) > 0)
    except ValueError:
        raise CheckpointError(
            f"{where}: config field 'G_attn' = {config.get('G_attn')!r} is not like '64' or '32_64'"
        ) from None
    if any(a > resolution for a in attention):
        raise CheckpointError(
            f"{where}: config field 'G_attn' = {config.get('G_attn')!r} exceeds the resolution {resolution}"
        )
    try:
        bn_eps, sn_eps = (
            float(config.get("BN_eps", PAPER_GENERATOR.bn_eps)),
            float(config.get("SN_eps", PAPER_GENERATOR.sn_eps)),
        )
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: config fields 'BN_eps'/'SN_eps' are not numbers") from None
    return GeneratorConfig(
        resolution=resolution,
        ch=sizes["G_ch"],
        dim_z=sizes["dim_z"],
        feature_dim=PAPER_GENERATOR.feature_dim,  # a literal 2048 in IC-GAN (BigGAN.py:236)
        shared_dim_feat=sizes["shared_dim_feat"],
        attention=attention,
        spectral_norm=True,
        bn_eps=bn_eps,
        sn_eps=sn_eps,
    )


def select_best(directory: Path) -> tuple[Path, dict] | None:
    """IC-GAN's choice among `state_dict_best0/1.pth` (strictly lower best_FID wins, best0 first), or None.

    Files are looked for in `directory` and one folder down (the official
    `icgan_biggan_imagenet_res128/` experiment folder); a folder holding
    several experiment folders is ambiguous and refused.
    """
    folders = sorted(
        {
            p.parent
            for name in OFFICIAL_BEST_NAMES
            for p in list(directory.glob(f"state_dict_{name}.pth")) + list(directory.glob(f"*/state_dict_{name}.pth"))
        }
    )
    if not folders:
        return None
    if len(folders) > 1:
        raise CheckpointError(
            f"{directory} holds several IC-GAN experiment folders ({', '.join(map(str, folders))}); keep one"
        )
    best_fid, chosen = 1e5, None  # the official loader's starting value
    for name in OFFICIAL_BEST_NAMES:
        path = folders[0] / f"state_dict_{name}.pth"
        if not path.is_file():
            continue
        state = load_training_state(path)
        if "best_FID" not in state or "config" not in state:
            raise CheckpointError(f"{path}: expected 'best_FID' and 'config' in a BigGAN training state")
        try:
            fid = float(state["best_FID"])
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: 'best_FID' = {state['best_FID']!r} is not a number") from None
        if fid < best_fid:
            best_fid, chosen = fid, (path, state["config"])
    if chosen is None:
        raise CheckpointError(
            f"{folders[0]}: no state_dict_best0/1.pth has a best_FID below {best_fid:g}, "
            "so IC-GAN's loader would select none"
        )
    return chosen


def find_generator(directory: Path) -> tuple[Path, GeneratorConfig]:
    """(the G_ema weights file, its generator config) inside an IC-GAN experiment directory."""
    selected = select_best(directory)
    if selected is None:
        return one_file(directory, G_EMA_PATTERNS, "IC-GAN generator (G_ema_best*.pth)"), PAPER_GENERATOR
    path, config = selected
    config_ = generator_config_from_biggan(config, str(path))
    suffix = path.stem[len("state_dict_") :]
    for extension in (".pth", ".safetensors"):
        weights = path.with_name(f"G_ema_{suffix}{extension}")
        if weights.is_file():
            return weights, config_
    raise CheckpointError(f"{path} has the lowest best_FID, but {path.with_name(f'G_ema_{suffix}.pth')} does not exist")
