"""MACS's released configuration: official files, LAION-CLAP and Stable Diffusion v1.4.

A checkpoint folder holds MACS's files, `separator_FSD50K_full.pt`,
`{Dataset}_mlp.pt` and `{Dataset}_unet.pt` (Dataset: Landscape, LLP or
AudioSet), plus the diffusers folder of Stable Diffusion v1.4 as
`stable-diffusion-v1-4/`. The separator and MLP load without any optional
dependency; generating needs diffusers, transformers and laion-clap, the
extra `avbench[macs]`, which are imported only here and only when used.
Generation follows papers.md 3.2: 8 s at 16 kHz, 6 slots, CLAP on 48 kHz
slots, empty prompt, classifier-free guidance 7.5 against zeroed audio
tokens, DPM-Solver multistep, 20 steps, 512x512.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr
import torch
from torch import nn

from avbench.checkpoints import file_sha256, load_state_dict, map_keys
from avbench.errors import CheckpointError

from .adapter import SlotMLP, decoupled_attention
from .separator import MaskSeparator, SeparatorConfig

SEPARATOR_FILE = "separator_FSD50K_full.pt"
SD_FOLDER = "stable-diffusion-v1-4"
PAPER_SEPARATOR = SeparatorConfig(slots=6, sample_rate=16000, seconds=8.0, width=64)
TEXT_TOKENS, GUIDANCE, STEPS, IMAGE_SIZE, LATENT_SCALE = 77, 7.5, 20, 512, 0.18215
INSTALL_HINT = "pip install 'avbench[macs]'"
# Keys of the official separator file that are not part of the separator network:
# CLAP's duplicate under model.clap, the training temperature, torchaudio's buffers.
_DROPPED_PREFIXES = ("model.clap.", "model.tau2", "model.stft.", "model.istft.", "model.resample.", "unperm")


def require_paper_dependencies() -> None:
    missing = []
    for module in ("diffusers", "transformers", "laion_clap"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise CheckpointError(
            f"macs: the paper configuration needs {', '.join(missing)}, which are not installed; "
            f"install the optional dependencies with: {INSTALL_HINT}"
        )


def datasets_in(folder: Path) -> list[str]:
    """Datasets with both `{D}_mlp.pt` and `{D}_unet.pt` in the folder."""
    return sorted(p.name[: -len("_mlp.pt")] for p in folder.glob("*_mlp.pt") if (folder / (p.name[: -len("_mlp.pt")] + "_unet.pt")).is_file())


def _separator_key(key: str) -> str | None:
    if key.startswith(_DROPPED_PREFIXES):
        return None
    return "unet." + key[len("model.unet.") :] if key.startswith("model.unet.") else key


def load_separator(path: str | Path, config: SeparatorConfig = PAPER_SEPARATOR) -> tuple[MaskSeparator, dict[str, torch.Tensor]]:
    """The separator network from `separator_FSD50K_full.pt`, and its CLAP sub-module state (prefix `clap.` removed)."""
    state = load_state_dict(path)
    clap_state = {k[len("clap.") :]: v for k, v in state.items() if k.startswith("clap.")}
    if not clap_state:
        raise CheckpointError(f"macs separator {path}: no CLAP sub-module keys (clap.*); is this MACS's separator_FSD50K_full.pt?")
    network = {k: v for k, v in state.items() if not k.startswith("clap.")}
    separator = MaskSeparator(config)
    expected = set(separator.state_dict())
    separator.load_state_dict(map_keys(network, _separator_key, expected, f"macs separator {path}"), strict=True)
    return separator.eval(), clap_state


def load_mlp(path: str | Path, slots: int = PAPER_SEPARATOR.slots) -> SlotMLP:
    """`{Dataset}_mlp.pt`: keys `pe` and `adapter.*` (512 -> 2048 -> 768)."""
    mlp = SlotMLP(slots)
    mlp.load_state_dict(map_keys(load_state_dict(path), lambda k: k, set(mlp.state_dict()), f"macs MLP {path}"), strict=True)
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


def adapted_unet(sd_folder: Path):
    """SD's UNet (config from `sd_folder/unet`) with a decoupled processor on every cross-attention."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(sd_folder), subfolder="unet"))
    processors = {}
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            processors[name] = DecoupledAttnProcessor(_attn_width(unet, name), unet.config.cross_attention_dim)
        else:
            processors[name] = AttnProcessor2_0()
    unet.set_attn_processor(processors)
    return unet


def build_unet(sd_folder: Path, unet_file: Path):
    """The adapted UNet with MACS's `{Dataset}_unet.pt` (the full state dict, adapter projections included)."""
    unet = adapted_unet(sd_folder)
    expected = set(unet.state_dict())
    unet.load_state_dict(map_keys(load_state_dict(unet_file), lambda k: k, expected, f"macs UNet {unet_file}"), strict=True)
    return unet.eval()


def build_clap(clap_state: dict[str, torch.Tensor], device: torch.device):
    """LAION-CLAP (HTSAT-tiny, no fusion) with the separator file's CLAP weights."""
    import laion_clap

    try:
        clap = laion_clap.CLAP_Module(enable_fusion=False, device=device)
    except OSError as exc:
        raise CheckpointError(f"macs: LAION-CLAP could not be built offline ({exc}); it needs the roberta-base tokenizer in the Hugging Face cache") from None
    skip = lambda k: k if not k.endswith("position_ids") else None  # noqa: E731 - a transformers-version buffer
    expected = {k for k in clap.state_dict() if not k.endswith("position_ids")}
    clap.load_state_dict(map_keys(clap_state, skip, expected, "macs CLAP (separator file, clap.*)"), strict=False)
    return clap.eval()


class PaperMACS:
    """The full MACS generator, built from a checkpoint folder (needs `avbench[macs]`)."""

    def __init__(self, folder: str | Path, dataset: str | None, device: torch.device):
        require_paper_dependencies()
        from diffusers import AutoencoderKL, DPMSolverMultistepScheduler
        from transformers import CLIPTextModel, CLIPTokenizer

        folder = Path(folder)
        found = datasets_in(folder)
        if dataset is None:
            if len(found) != 1:
                raise CheckpointError(f"macs: {folder} must hold one dataset's *_mlp.pt and *_unet.pt pair, found {found or 'none'}")
            dataset = found[0]
        elif dataset not in found:
            raise CheckpointError(f"macs: {folder} lacks {dataset}_mlp.pt or {dataset}_unet.pt (found pairs: {found or 'none'})")
        sd = folder / SD_FOLDER
        if not sd.is_dir():
            raise CheckpointError(f"macs: put Stable Diffusion v1.4 (diffusers layout) in {sd}")
        self.device = device
        files = [folder / SEPARATOR_FILE, folder / f"{dataset}_mlp.pt", folder / f"{dataset}_unet.pt"]
        self.hashes = {f.name: file_sha256(f) for f in files}
        separator, clap_state = load_separator(files[0])
        self.separator = separator.to(device)
        self.clap = build_clap(clap_state, device)
        self.mlp = load_mlp(files[1]).to(device)
        self.unet = build_unet(sd, files[2]).to(device)
        self.vae = AutoencoderKL.from_pretrained(str(sd), subfolder="vae").to(device).eval()
        self.tokenizer = CLIPTokenizer.from_pretrained(str(sd), subfolder="tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(str(sd), subfolder="text_encoder").to(device).eval()
        self.scheduler = DPMSolverMultistepScheduler.from_pretrained(str(sd), subfolder="scheduler")
        self.dataset = dataset

    def slot_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, 128000] -> CLAP embeddings [B, 6, 512] in slot order (MACS's rank loss trains slot 1 as the most significant)."""
        slots = self.separator(audio).cpu().numpy()
        b, m, _ = slots.shape
        at_48k = np.stack([soxr.resample(s, 16000, 48000, quality="HQ") for s in slots.reshape(b * m, -1)])
        embedded = self.clap.get_audio_embedding_from_data(x=torch.from_numpy(at_48k).to(self.device), use_tensor=True)
        return embedded.view(b, m, -1).float()

    def text_tokens(self, batch: int) -> torch.Tensor:
        ids = self.tokenizer([""] * batch, max_length=TEXT_TOKENS, padding="max_length", truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(input_ids=ids.to(self.device)).last_hidden_state

    @torch.no_grad()
    def generate(self, audio: torch.Tensor, generators: list[torch.Generator]) -> list[np.ndarray]:
        embeddings = self.slot_embeddings(audio)
        text = self.text_tokens(audio.shape[0])
        conditional = torch.cat([text, self.mlp(embeddings)], dim=1)
        unconditional = torch.cat([text, self.mlp(torch.zeros_like(embeddings))], dim=1)
        shape = (self.unet.config.in_channels, IMAGE_SIZE // 8, IMAGE_SIZE // 8)
        latents = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(self.device)
        self.scheduler.set_timesteps(STEPS)
        latents = latents * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            both = self.scheduler.scale_model_input(torch.cat([latents, latents]), t)
            noise = self.unet(both, t, encoder_hidden_states=torch.cat([conditional, unconditional])).sample
            guided_on, guided_off = noise.chunk(2)
            latents = self.scheduler.step(guided_off + GUIDANCE * (guided_on - guided_off), t, latents).prev_sample
        images = (self.vae.decode(latents / LATENT_SCALE).sample / 2 + 0.5).clamp(0, 1)
        return [im for im in (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()]

