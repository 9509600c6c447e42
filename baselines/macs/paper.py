"""MACS's released configuration: official files, LAION-CLAP and Stable Diffusion v1.4.

A checkpoint folder holds MACS's files, `separator_FSD50K_full.pt`,
`{Dataset}_mlp.pt` and `{Dataset}_unet.pt` (Dataset: Landscape, LLP or
AudioSet), LAION-CLAP's `630k-audioset-best.pt` (what the official
`Separator.load_clap()` loads) and the diffusers folder of Stable Diffusion
v1.4 as `stable-diffusion-v1-4/` (or `sd/`). The separator and MLP load
without any optional dependency; the UNet and scheduler need diffusers;
generating also needs transformers and laion-clap: the extra `avbench[macs]`,
imported only here and only when used.
Generation follows MACS (alxzzhou/MACS) and its official `StableDiffusion.infer`
(custom.py:243-291): 8 s at 16 kHz, 6 slots, CLAP on 48 kHz slots, empty
prompt, classifier-free guidance 7.5 against zeroed audio tokens, DPM-Solver
multistep, 20 steps, 512x512.

Loading order: the MACS files, the UNet (SD's UNet config + `{Dataset}_unet.pt`)
and the scheduler are loaded by `PaperMACS`; SD's VAE, tokenizer and text
encoder and LAION-CLAP are not MACS files and are loaded at the first
`generate` (a real run checks their presence up front, model.py).

`architecture` (conformance only, the fixture's `tiny/config.json` format):
reduced separator length / width / SE ratio and MLP widths; the UNet's come,
as always, from `sd/unet/config.json`, which the architecture may only confirm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from avbench.checkpoints import bounded_int, file_sha256, load_checked, load_state_dict, map_keys
from avbench.errors import CheckpointError

from ..common.checkpoint_io import architecture_value
from .adapter import SlotMLP, decoupled_attention
from .separator import MaskSeparator, SeparatorConfig

SEPARATOR_FILE = "separator_FSD50K_full.pt"
CLAP_FILE = "630k-audioset-best.pt"  # laion_clap's load_ckpt() default for enable_fusion=False (model id 1)
SD_FOLDERS = ("stable-diffusion-v1-4", "sd")
PAPER_SEPARATOR = SeparatorConfig(slots=6, sample_rate=16000, seconds=8.0, width=64)
TEXT_TOKENS, GUIDANCE, STEPS, IMAGE_SIZE, LATENT_SCALE = 77, 7.5, 20, 512, 0.18215
CLAP_RATE = 48000
INSTALL_HINT = "pip install 'avbench[macs]'"
# Keys of the official separator file that are not part of the separator network: CLAP's copy under `clap.`
# and `model.clap.` (never used at inference: the official loader replaces it with LAION's checkpoint,
# custom.py:186), the MixIT temperature, torchaudio's window buffers, the MixIT un-permutation table.
_DROPPED_PREFIXES = ("model.clap.", "model.tau2", "model.stft.", "model.istft.", "model.resample.", "unperm")


@dataclass(frozen=True)
class MLPConfig:
    in_dim: int = 512  # CLAP embedding
    hidden: int = 2048
    out_dim: int = 768  # SD's cross-attention width


PAPER_MLP = MLPConfig()


@dataclass(frozen=True)
class PaperArchitecture:
    separator: SeparatorConfig = PAPER_SEPARATOR
    mlp: MLPConfig = PAPER_MLP
    unet: Mapping | None = None  # values the SD UNet config must have (conformance), or None


PAPER_ARCHITECTURE = PaperArchitecture()


def _int(section: Mapping, name: str, low: int, high: int, where: str) -> int:
    return bounded_int({name: architecture_value(section, name, where)}, name, low, high, where)


def architecture_from_json(architecture: Mapping) -> PaperArchitecture:
    """A reduced MACS from the fixture's config.json format; every size bounded before anything is built."""
    where = "architecture config"
    separator = architecture.get("separator")
    seconds = _int(separator, "L seconds", 1, 60, f"{where} 'separator'")
    width = _int(separator, "NC", 1, 256, f"{where} 'separator'")
    ratio = _int(separator, "SE ratio", 1, 256, f"{where} 'separator'")
    unchanged = separator.get("unchanged", {}) if isinstance(separator, Mapping) else {}
    slots = bounded_int(unchanged, "M", 1, 16, f"{where} 'separator.unchanged'", PAPER_SEPARATOR.slots)
    if width % ratio:
        raise CheckpointError(
            f"{where} 'separator': NC {width} is not divisible by the SE ratio {ratio} "
            "(the official SEBlock asserts it)"
        )
    mlp_key = next((k for k in architecture if k == "mlp" or k.startswith("mlp (")), None)
    mlp = architecture.get(mlp_key) if mlp_key else None
    dims = MLPConfig(
        in_dim=_int(mlp, "input (CLAP embedding) dim", 1, 4096, f"{where} 'mlp'"),
        hidden=_int(mlp, "hidden", 1, 16384, f"{where} 'mlp'"),
        out_dim=_int(mlp, "output (cross-attention) dim", 1, 4096, f"{where} 'mlp'"),
    )
    unet_key = next((k for k in architecture if k == "unet" or k.startswith("unet (")), None)
    unet = None
    if unet_key:
        section = architecture[unet_key]
        unet = {name: architecture_value(section, name, f"{where} 'unet'") for name in section if name != "unchanged"}
    return PaperArchitecture(
        replace(PAPER_SEPARATOR, seconds=float(seconds), width=width, se_ratio=ratio, slots=slots), dims, unet
    )


def missing_dependencies(modules=("diffusers", "transformers", "laion_clap")) -> list[str]:
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def require_paper_dependencies(modules=("diffusers", "transformers", "laion_clap")) -> None:
    missing = missing_dependencies(modules)
    if missing:
        raise CheckpointError(
            f"macs: the paper configuration needs {', '.join(missing)}, which are not installed; "
            f"install the optional dependencies with: {INSTALL_HINT}"
        )


def datasets_in(folder: Path) -> list[str]:
    """Datasets with both `{D}_mlp.pt` and `{D}_unet.pt` in the folder."""
    names = (p.name[: -len("_mlp.pt")] for p in folder.glob("*_mlp.pt"))
    return sorted(n for n in names if (folder / f"{n}_unet.pt").is_file())


def sd_folder(folder: Path) -> Path | None:
    return next((folder / name for name in SD_FOLDERS if (folder / name).is_dir()), None)


def _separator_key(key: str) -> str | None:
    if key.startswith(_DROPPED_PREFIXES):
        return None
    return "unet." + key[len("model.unet.") :] if key.startswith("model.unet.") else key


def load_separator(
    path: str | Path, config: SeparatorConfig = PAPER_SEPARATOR
) -> tuple[MaskSeparator, dict[str, torch.Tensor]]:
    """The separator network from `separator_FSD50K_full.pt`, and the file's CLAP copy (prefix `clap.` removed).

    The CLAP copy is returned only for inspection: the official loader replaces it (custom.py:186).
    """
    state = load_state_dict(path)
    clap_state = {k[len("clap.") :]: v for k, v in state.items() if k.startswith("clap.")}
    if not clap_state:
        raise CheckpointError(
            f"macs separator {path}: no CLAP sub-module keys (clap.*); is this MACS's separator_FSD50K_full.pt?"
        )
    network = {k: v for k, v in state.items() if not k.startswith("clap.")}
    separator = MaskSeparator(config)
    expected = set(separator.state_dict())
    load_checked(
        separator, map_keys(network, _separator_key, expected, f"macs separator {path}"), f"macs separator {path}"
    )
    return separator.eval(), clap_state


def load_mlp(path: str | Path, slots: int = PAPER_SEPARATOR.slots, dims: MLPConfig = PAPER_MLP) -> SlotMLP:
    """`{Dataset}_mlp.pt`: keys `pe` and `adapter.*` (512 -> 2048 -> 768 in the paper)."""
    mlp = SlotMLP(slots, dims.in_dim, dims.hidden, dims.out_dim)
    load_checked(
        mlp, map_keys(load_state_dict(path), lambda k: k, set(mlp.state_dict()), f"macs MLP {path}"), f"macs MLP {path}"
    )
    return mlp.eval()


class DecoupledAttnProcessor(nn.Module):
    """A diffusers attention processor for `attn2`: text tokens via the UNet's own to_k/to_v,
    audio tokens (after the first 77) via this module's `to_k_ip`/`to_v_ip`."""

    def __init__(self, hidden_size: int, cross_attention_dim: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.to_k_ip = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_v_ip = nn.Linear(cross_attention_dim, hidden_size, bias=False)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        residual = hidden_states
        text, audio = encoder_hidden_states[:, :TEXT_TOKENS], encoder_hidden_states[:, TEXT_TOKENS:]
        query = attn.to_q(hidden_states)
        out = decoupled_attention(
            query, attn.to_k(text), attn.to_v(text), self.to_k_ip(audio), self.to_v_ip(audio), attn.heads, self.scale
        )
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _attn_width(unet, name: str) -> int:
    widths = list(unet.config.block_out_channels)
    if name.startswith("mid_block"):
        return widths[-1]
    block = int(name.split(".")[1])
    return list(reversed(widths))[block] if name.startswith("up_blocks") else widths[block]


def adapted_unet(sd: Path, expected: Mapping | None = None):
    """SD's UNet (config from `sd/unet`) with a decoupled processor on every cross-attention."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    config = UNet2DConditionModel.load_config(str(sd), subfolder="unet")
    for name, wanted in (expected or {}).items():
        actual = config.get(name)
        if (list(actual) if isinstance(actual, (list, tuple)) else actual) != wanted:
            raise CheckpointError(
                f"macs: {sd}/unet/config.json has {name}={actual!r}, the architecture says {wanted!r}"
            )
    unet = UNet2DConditionModel.from_config(config)
    processors = {}
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            processors[name] = DecoupledAttnProcessor(_attn_width(unet, name), unet.config.cross_attention_dim)
        else:
            processors[name] = AttnProcessor2_0()
    unet.set_attn_processor(processors)
    return unet


def build_unet(sd: Path, unet_file: Path, expected: Mapping | None = None):
    """The adapted UNet with MACS's `{Dataset}_unet.pt` (the full state dict, adapter projections included)."""
    unet = adapted_unet(sd, expected)
    keys = set(unet.state_dict())
    load_checked(
        unet,
        map_keys(load_state_dict(unet_file), lambda k: k, keys, f"macs UNet {unet_file}"),
        f"macs UNet {unet_file}",
    )
    return unet.eval()


def build_clap(clap_file: Path, device: torch.device):
    """LAION-CLAP (HTSAT-tiny, no fusion) with LAION's own checkpoint, as the official `load_clap()` does.

    The CLAP copy inside the separator file is never used (the official loader discards it too).
    """
    import laion_clap

    if not clap_file.is_file():
        raise CheckpointError(
            f"macs: put LAION-CLAP's {CLAP_FILE} (the official load_clap() checkpoint) at {clap_file}"
        )
    try:
        clap = laion_clap.CLAP_Module(enable_fusion=False, device=device)
    except OSError as exc:
        raise CheckpointError(
            f"macs: LAION-CLAP could not be built offline ({exc}); "
            "it needs the roberta-base tokenizer in the Hugging Face cache"
        ) from None
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in load_state_dict(clap_file).items()}

    def keep(key: str) -> str | None:
        return None if key.endswith("position_ids") else key  # a transformers-version buffer

    expected = {k for k in clap.model.state_dict() if not k.endswith("position_ids")}
    clap.model.load_state_dict(map_keys(state, keep, expected, f"macs CLAP {clap_file}"), strict=False)
    return clap.eval()


def sinc_resample_kernel(orig: int, new: int, width: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """The windowed-sinc (Hann) interpolation kernel of a torchaudio-style `Resample(orig, new)` with its
    defaults (lowpass_filter_width 6, rolloff 0.99), for rates already divided by their gcd: ([new, 1, K], pad)."""
    base = min(orig, new) * rolloff
    pad = math.ceil(width * orig / base)
    idx = torch.arange(-pad, pad + orig, dtype=torch.float64)[None, None] / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx) * base
    t = t.clamp(-width, width)
    window = torch.cos(t * math.pi / width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / orig)
    return kernel.float(), pad


def sinc_resample(audio: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """[N, T] at `orig` Hz -> [N, ceil(T * new / orig)] by the windowed sinc of `sinc_resample_kernel`."""
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    kernel, pad = sinc_resample_kernel(orig, new)
    length = audio.shape[-1]
    padded = torch.nn.functional.pad(audio[:, None], (pad, pad + orig))
    out = torch.nn.functional.conv1d(padded, kernel.to(audio), stride=orig)  # [N, new, frames]
    out = out.transpose(1, 2).reshape(audio.shape[0], -1)
    return out[:, : math.ceil(new * length / orig)]


class PaperMACS:
    """The full MACS generator, built from a checkpoint folder."""

    def __init__(
        self,
        folder: str | Path,
        dataset: str | None,
        device: torch.device,
        architecture: PaperArchitecture = PAPER_ARCHITECTURE,
    ):
        folder = Path(folder)
        found = datasets_in(folder)
        if dataset is None:
            if len(found) != 1:
                raise CheckpointError(
                    f"macs: {folder} must hold one dataset's *_mlp.pt and *_unet.pt pair, found {found or 'none'}"
                )
            dataset = found[0]
        elif dataset not in found:
            raise CheckpointError(
                f"macs: {folder} lacks {dataset}_mlp.pt or {dataset}_unet.pt (found pairs: {found or 'none'})"
            )
        self.folder, self.device, self.dataset, self.architecture = folder, device, dataset, architecture
        self.sd = sd_folder(folder)
        files = [folder / SEPARATOR_FILE, folder / f"{dataset}_mlp.pt", folder / f"{dataset}_unet.pt"]
        self.hashes = {f.name: file_sha256(f) for f in files if f.is_file()}
        separator, _ = load_separator(files[0], architecture.separator)
        self.separator = separator.to(device)
        self.mlp = load_mlp(files[1], architecture.separator.slots, architecture.mlp).to(device)
        self.unet = self.scheduler = None
        self.unet_unavailable = missing_dependencies(("diffusers",))
        if not self.unet_unavailable:
            if self.sd is None:
                raise CheckpointError(f"macs: put Stable Diffusion v1.4 (diffusers layout) in {folder / SD_FOLDERS[0]}")
            from diffusers import DPMSolverMultistepScheduler

            self.unet = build_unet(self.sd, files[2], architecture.unet).to(device)
            self.scheduler = DPMSolverMultistepScheduler.from_pretrained(str(self.sd), subfolder="scheduler")
        self._clap = self._vae = self._text = None

    # --- parts that are not MACS files: loaded at the first generate ---
    def check_generation_files(self) -> None:
        """What `generate` will load besides the MACS files: SD's VAE, tokenizer, text encoder and LAION-CLAP."""
        missing = [str(self.sd / sub) for sub in ("vae", "tokenizer", "text_encoder") if not (self.sd / sub).is_dir()]
        if not (self.folder / CLAP_FILE).is_file():
            missing.append(f"{self.folder / CLAP_FILE} (LAION-CLAP, what the official load_clap() loads)")
        if missing:
            raise CheckpointError(f"macs: generating needs {', '.join(missing)}")

    def _load_generation_parts(self) -> None:
        if self._vae is not None:
            return
        require_paper_dependencies()
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        self._clap = build_clap(self.folder / CLAP_FILE, self.device)
        self._vae = AutoencoderKL.from_pretrained(str(self.sd), subfolder="vae").to(self.device).eval()
        tokenizer = CLIPTokenizer.from_pretrained(str(self.sd), subfolder="tokenizer")
        encoder = CLIPTextModel.from_pretrained(str(self.sd), subfolder="text_encoder").to(self.device).eval()
        self._text = (tokenizer, encoder)

    def slot_embeddings(self, audio: torch.Tensor, resampler: str = "soxr") -> torch.Tensor:
        """[B, samples] -> CLAP embeddings [B, M, D] in slot order (slot 1 is trained as the most significant).

        `resampler`: "soxr" (avbench, soxr HQ) or "sinc" (the official torchaudio `Resample(16000, 48000)`
        windowed sinc, re-implemented here because torchaudio cannot be installed)."""
        slots = self.separator(audio)
        b, m, _ = slots.shape
        flat = slots.reshape(b * m, -1)
        if resampler == "sinc":
            at_48k = sinc_resample(flat, self.architecture.separator.sample_rate, CLAP_RATE)
        else:
            import soxr

            at_48k = torch.from_numpy(
                np.stack(
                    [
                        soxr.resample(s, self.architecture.separator.sample_rate, CLAP_RATE, quality="HQ")
                        for s in flat.cpu().numpy()
                    ]
                )
            )
        embedded = self._clap.get_audio_embedding_from_data(x=at_48k.to(self.device), use_tensor=True)
        return embedded.view(b, m, -1).float()

    def text_tokens(self, batch: int) -> torch.Tensor:
        tokenizer, encoder = self._text
        ids = tokenizer(
            [""] * batch, max_length=TEXT_TOKENS, padding="max_length", truncation=True, return_tensors="pt"
        ).input_ids
        return encoder(input_ids=ids.to(self.device)).last_hidden_state

    def latent_shape(self) -> tuple[int, int, int]:
        return (self.unet.config.in_channels, IMAGE_SIZE // 8, IMAGE_SIZE // 8)

    def sample(
        self,
        noise: torch.Tensor,
        conditional: torch.Tensor,
        unconditional: torch.Tensor,
        steps: int = STEPS,
        guidance: float = GUIDANCE,
    ) -> torch.Tensor:
        """The CFG DPM-Solver loop of custom.py:252-285: noise [B, 4, 64, 64] -> latent / 0.18215."""
        self.scheduler.set_timesteps(steps)
        latents = noise.to(self.device) * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            both = self.scheduler.scale_model_input(torch.cat([latents, latents]), t)
            noise_pred = self.unet(both, t, encoder_hidden_states=torch.cat([conditional, unconditional])).sample
            guided_on, guided_off = noise_pred.chunk(2)
            latents = self.scheduler.step(guided_off + guidance * (guided_on - guided_off), t, latents).prev_sample
        return latents / LATENT_SCALE

    @torch.no_grad()
    def generate(
        self, audio: torch.Tensor, generators: list[torch.Generator], resampler: str = "soxr", pixels: str = "round"
    ) -> list[np.ndarray]:
        if self.unet is None:
            require_paper_dependencies()
        self._load_generation_parts()
        embeddings = self.slot_embeddings(audio, resampler)
        text = self.text_tokens(audio.shape[0])
        conditional = torch.cat([text, self.mlp(embeddings)], dim=1)
        unconditional = torch.cat([text, self.mlp(torch.zeros_like(embeddings))], dim=1)
        noise = torch.stack([torch.randn(self.latent_shape(), generator=g) for g in generators])
        latents = self.sample(noise, conditional, unconditional)
        images = (self._vae.decode(latents).sample / 2 + 0.5).clamp(0, 1) * 255
        images = images.floor() if pixels == "truncate" else images.round()  # the official: astype(uint8)
        return list(images.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
