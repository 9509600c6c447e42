"""DAVIS's separation U-Net (WikiChao/DAVIS `modules/unet.py` `Unet`), written from its structure.

Module names follow the official ones, so `unet_best.pth` loads key for key
under the `net_unet.` prefix. What the network computes:

* input `cat(mixture, noisy)` (the official `x_self_cond` is the mixture),
  a 1x1 `init_conv`, and a sinusoidal time MLP;
* per level: a ResNet block, a linear attention and an attention over time
  frames (`TimeAttention`), each modulated by the time embedding, then a
  space-to-depth downsampling (a 3x3 conv at the last level);
* the bottleneck concatenates the frame-averaged visual feature in front of
  the channels; its blocks get no time embedding (as officially: their
  time MLPs exist in the checkpoint but are never called);
* the mirrored up path, a final ResNet block over `cat(x, init_conv(x))`.

`TimeAttention`'s norms have one parameter per frequency row, so the
frequency axis must be exactly `freq_bins` (256 officially) and halves per level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    dim: int = 64
    dim_mults: tuple[int, ...] = (1, 2, 4, 4, 8)
    visual_dim: int = 512
    freq_bins: int = 256
    groups: int = 8
    attn_heads: int = 4
    attn_dim_head: int = 32
    time_heads: int = 4
    time_qk_dim: int = 512

    @property
    def levels(self) -> int:
        return len(self.dim_mults)

    @property
    def time_multiple(self) -> int:
        """The frame count must be a multiple of this (one halving per level but the last)."""
        return 2 ** (self.levels - 1)


def _modulate(x: torch.Tensor, mlp: nn.Module | None, time_emb: torch.Tensor | None) -> torch.Tensor:
    if mlp is None or time_emb is None:
        return x
    scale, shift = mlp(time_emb)[:, :, None, None].chunk(2, dim=1)
    return x * (scale + 1) + shift


def _time_mlp(time_dim: int, channels: int) -> nn.Sequential:
    return nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * channels))


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        angles = t[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class WeightStandardizedConv2d(nn.Conv2d):
    """A conv whose kernel is standardised per output channel at every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        w = (w - mean) * (var + 1e-5).rsqrt()
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ChannelLayerNorm(nn.Module):
    """Normalises over channels at each cell; a gain `g` only."""

    def __init__(self, channels: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - x.mean(dim=1, keepdim=True)) * (var + 1e-5).rsqrt() * self.g


class ChannelFreqLayerNorm(nn.Module):
    """Normalises over (channels, frequency) per frame; gain and bias per channel and frequency."""

    def __init__(self, channels: int, freqs: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, freqs))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, freqs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 3), keepdim=True)
        std = torch.sqrt(x.var(dim=(1, 3), unbiased=False, keepdim=True) + 1e-5)
        return (x - mean) / std * self.gamma + self.beta


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(x, **kwargs) + x


class PreNorm(nn.Module):
    def __init__(self, channels: int, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(channels)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.proj = WeightStandardizedConv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, c_out)

    def forward(self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            x = x * (scale_shift[0] + 1) + scale_shift[1]
        return F.silu(x)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int):
        super().__init__()
        self.mlp = _time_mlp(time_dim, c_out)
        self.block1 = Block(c_in, c_out, groups)
        self.block2 = Block(c_out, c_out, groups)
        self.res_conv = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor | None) -> torch.Tensor:
        scale_shift = None if time_emb is None else self.mlp(time_emb)[:, :, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, scale_shift)) + self.res_conv(x)


class LinearAttention(nn.Module):
    """Softmax-kernel linear attention over all cells."""

    def __init__(self, channels: int, time_dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(channels, 3 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, channels, 1), ChannelLayerNorm(channels))
        self.mlp = _time_mlp(time_dim, channels)

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor | None = None) -> torch.Tensor:
        x = _modulate(x, self.mlp, time_emb)
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / (h * w)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class Attention(nn.Module):
    """Full softmax attention over the bottleneck's cells."""

    def __init__(self, channels: int, time_dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(channels, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, channels, 1)
        self.mlp = _time_mlp(time_dim, channels)  # in the checkpoint; the bottleneck passes no time embedding

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor | None = None) -> torch.Tensor:
        x = _modulate(x, self.mlp, time_emb)
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w).transpose(-1, -2) for t in self.to_qkv(x).chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(-1, -2).reshape(b, -1, h, w))


def _conv_act_norm(c_in: int, c_out: int, freqs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.PReLU(), ChannelFreqLayerNorm(c_out, freqs))


class TimeAttention(nn.Module):
    """Multi-head attention across time frames; a head's query/key is its whole (channel x frequency) map."""

    def __init__(self, channels: int, freqs: int, time_dim: int, heads: int, qk_dim: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"TimeAttention: {channels} channels do not split into {heads} heads")
        self.heads = heads
        qk_channels = math.ceil(qk_dim / freqs)
        for i in range(heads):
            self.add_module(f"attn_conv_Q_{i}", _conv_act_norm(channels, qk_channels, freqs))
            self.add_module(f"attn_conv_K_{i}", _conv_act_norm(channels, qk_channels, freqs))
            self.add_module(f"attn_conv_V_{i}", _conv_act_norm(channels, channels // heads, freqs))
        self.attn_concat_proj = _conv_act_norm(channels, channels, freqs)
        self.mlp = _time_mlp(time_dim, channels)

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor | None = None) -> torch.Tensor:
        x = _modulate(x, self.mlp, time_emb).transpose(2, 3)  # [B, C, frames, freqs]
        b, _, frames, freqs = x.shape
        heads = range(self.heads)
        q = torch.cat([getattr(self, f"attn_conv_Q_{i}")(x) for i in heads]).transpose(1, 2).flatten(2)
        k = torch.cat([getattr(self, f"attn_conv_K_{i}")(x) for i in heads]).transpose(1, 2).flatten(2)
        v = torch.cat([getattr(self, f"attn_conv_V_{i}")(x) for i in heads]).transpose(1, 2)
        v_shape = v.shape
        weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=2)
        v = (weights @ v.flatten(2)).reshape(v_shape).transpose(1, 2)  # [heads*B, C/heads, frames, freqs]
        v = v.reshape(self.heads, b, -1, frames, freqs).transpose(0, 1).reshape(b, -1, frames, freqs)
        return self.attn_concat_proj(v).transpose(2, 3)


class Unet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        dim, groups, levels = config.dim, config.groups, config.levels
        time_dim = 4 * dim
        dims = [dim, *(dim * m for m in config.dim_mults)]
        pairs = list(zip(dims[:-1], dims[1:], strict=True))
        freqs = [config.freq_bins // 2**i for i in range(levels)]
        self.init_conv = nn.Conv2d(2, dim, 1)
        self.time_mlp = nn.Sequential(
            SinusoidalPosEmb(dim), nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim)
        )

        def stage(width: int, level: int, first: nn.Module, resample: nn.Module) -> nn.ModuleList:
            return nn.ModuleList(
                [
                    first,
                    Residual(PreNorm(width, LinearAttention(width, time_dim, config.attn_heads, config.attn_dim_head))),
                    Residual(TimeAttention(width, freqs[level], time_dim, config.time_heads, config.time_qk_dim)),
                    resample,
                ]
            )

        self.downs = nn.ModuleList()
        for level, (c_in, c_out) in enumerate(pairs):
            last = level == levels - 1
            down = (
                nn.Conv2d(c_in, c_out, 3, padding=1)
                if last
                else nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * c_in, c_out, 1))
            )
            self.downs.append(stage(c_in, level, ResnetBlock(c_in, c_in, time_dim, groups), down))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid + config.visual_dim, mid, time_dim, groups)
        self.mid_attn = Residual(PreNorm(mid, Attention(mid, time_dim, config.attn_heads, config.attn_dim_head)))
        self.mid_block2 = ResnetBlock(mid, mid, time_dim, groups)
        self.ups = nn.ModuleList()
        for step, (c_in, c_out) in enumerate(reversed(pairs)):
            level = levels - 1 - step
            up = (
                nn.Conv2d(c_out, c_in, 3, padding=1)
                if level == 0
                else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_out, c_in, 3, padding=1))
            )
            self.ups.append(stage(c_out, level, ResnetBlock(c_out + c_in, c_out, time_dim, groups), up))
        self.final_res_block = ResnetBlock(2 * dim, dim, time_dim, groups)
        self.final_conv = nn.Conv2d(dim, 1, 1)
        nn.init.kaiming_normal_(self.final_conv.weight)

    def forward(
        self, noisy: torch.Tensor, t: torch.Tensor, mixture: torch.Tensor, visual: torch.Tensor
    ) -> torch.Tensor:
        """noisy, mixture [B, 1, freq_bins, frames]; t [B]; visual [B, visual_dim, video frames] -> [B, 1, F, N]."""
        x = self.init_conv(torch.cat((mixture, noisy), dim=1))
        c = self.time_mlp(t)
        first = x.clone()
        skips = []
        for block, linear_attn, time_attn, down in self.downs:
            x = time_attn(linear_attn(block(x, c), time_emb=c), time_emb=c)
            skips.append(x)
            x = down(x)
        cue = visual.mean(dim=2)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        x = self.mid_block1(torch.cat([cue, x], dim=1), None)
        x = self.mid_block2(self.mid_attn(x), None)
        for block, linear_attn, time_attn, up in self.ups:
            x = block(torch.cat((x, skips.pop()), dim=1), c)
            x = up(time_attn(linear_attn(x, time_emb=c), time_emb=c))
        x = self.final_res_block(torch.cat((x, first), dim=1), c)
        return self.final_conv(x)


class AudioVisualNet(nn.Module):
    """The official `AudioVisualModel` minus its top-level `time_mlp`, which its forward never calls."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.net_unet = Unet(config)

    def forward(
        self, noisy: torch.Tensor, t: torch.Tensor, mixture: torch.Tensor, visual: torch.Tensor
    ) -> torch.Tensor:
        return self.net_unet(noisy, t, mixture, visual)
