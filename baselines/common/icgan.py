"""Locating and configuring an official IC-GAN BigGAN generator directory.

IC-GAN's own loader (Sound2Scene's `inference/utils.py`) reads
`state_dict_best0.pth` and `state_dict_best1.pth`, keeps the one with the lower
`best_FID`, rebuilds the generator from the `config` stored in it and loads
`G_ema_<that name>.pth`. This module does the same, without executing any
pickled code, and falls back to the published res128 config when only a single
`G_ema_best*` file is present.
"""

from __future__ import annotations

from pathlib import Path

from avbench.errors import CheckpointError

from .biggan import CHANNEL_PLAN, PAPER_GENERATOR, GeneratorConfig
from .checkpoint_io import load_training_state, one_file

G_EMA_PATTERNS = ("G_ema_best*.pth", "G_ema_best*.safetensors")


def generator_config_from_biggan(config: dict, where: str) -> GeneratorConfig:
    """Our GeneratorConfig from a BigGAN training config, refusing variants we do not build."""

    def field(name):
        if name not in config:
            raise CheckpointError(f"{where}: its config has no '{name}'")
        return config[name]

    checks = {"instance_cond": True, "class_cond": False, "hier": True, "G_shared_feat": True, "G_param": "SN"}
    for name, wanted in checks.items():
        if config.get(name, wanted) != wanted:
            raise CheckpointError(f"{where}: {name}={config[name]!r} is not supported (only IC-GAN's instance-conditioned BigGAN with {name}={wanted!r})")
    resolution = int(field("resolution"))
    if resolution not in CHANNEL_PLAN:
        raise CheckpointError(f"{where}: resolution {resolution} is not supported ({sorted(CHANNEL_PLAN)})")
    attention = tuple(int(a) for a in str(config.get("G_attn", "64")).split("_") if int(a) > 0)
    return GeneratorConfig(
        resolution=resolution,
        ch=int(field("G_ch")),
        dim_z=int(field("dim_z")),
        feature_dim=PAPER_GENERATOR.feature_dim,
        shared_dim_feat=int(field("shared_dim_feat")),
        attention=attention,
        spectral_norm=True,
        bn_eps=float(config.get("BN_eps", PAPER_GENERATOR.bn_eps)),
        sn_eps=float(config.get("SN_eps", PAPER_GENERATOR.sn_eps)),
    )


def find_generator(directory: Path) -> tuple[Path, GeneratorConfig]:
    """(the G_ema weights file, its generator config) inside an IC-GAN experiment directory."""
    states = sorted(set(directory.glob("state_dict_best*.pth")) | set(directory.glob("*/state_dict_best*.pth")))
    if not states:
        return one_file(directory, G_EMA_PATTERNS, "IC-GAN generator (G_ema_best*.pth)"), PAPER_GENERATOR
    scored = []
    for path in states:
        state = load_training_state(path)
        if "best_FID" not in state or "config" not in state:
            raise CheckpointError(f"{path}: expected 'best_FID' and 'config' in a BigGAN training state")
        scored.append((float(state["best_FID"]), path, state["config"]))
    _, path, config = min(scored, key=lambda entry: entry[0])
    suffix = path.stem[len("state_dict_"):]
    for extension in (".pth", ".safetensors"):
        weights = path.with_name(f"G_ema_{suffix}{extension}")
        if weights.is_file():
            return weights, generator_config_from_biggan(config, str(path))
    raise CheckpointError(f"{path} has the lowest best_FID, but {path.with_name(f'G_ema_{suffix}.pth')} does not exist")
