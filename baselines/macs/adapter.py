"""MACS's stage-2 conditioning: slot embeddings -> audio tokens -> decoupled cross-attention.

`SlotMLP` is the file `{Dataset}_mlp.pt` (keys `pe`, `adapter.*`): a learned
per-slot position embedding added to the M slot embeddings, then LayerNorm,
Linear, GELU, Dropout(0.5), Linear, LayerNorm -> M audio tokens.
`DecoupledCrossAttention` is the IP-Adapter idea MACS uses: image features
attend to the text tokens and, separately, to the audio tokens through their
own key/value projections (`to_k_ip`, `to_v_ip`); the two results are added,
the audio one times `scale`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SlotMLP(nn.Module):
    def __init__(self, slots: int, in_dim: int = 512, hidden: int = 2048, out_dim: int = 768):
        super().__init__()
        self.pe = nn.Parameter(torch.randn(slots, in_dim) * 0.05)
        self.adapter = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.Dropout(0.5),
            nn.Linear(hidden, out_dim),
            nn.LayerNorm(out_dim),
        )

    def forward(self, slot_embeddings: torch.Tensor) -> torch.Tensor:
        """[B, M, in_dim] -> audio tokens [B, M, out_dim]."""
        return self.adapter(slot_embeddings + self.pe)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention on [B, L, C] projections."""
    b, lq, c = query.shape
    split = lambda x: x.view(b, x.shape[1], heads, c // heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(split(query), split(key), split(value))
    return out.transpose(1, 2).reshape(b, lq, c)


def decoupled_attention(query, text_key, text_value, audio_key, audio_value, heads: int, scale: float) -> torch.Tensor:
    """softmax(QK_text)V_text + scale * softmax(QK_audio)V_audio, per head."""
    return attend(query, text_key, text_value, heads) + scale * attend(query, audio_key, audio_value, heads)


class DecoupledCrossAttention(nn.Module):
    """Feature map [B, C, H, W] attends to text tokens and to audio tokens, separately."""

    def __init__(self, channels: int, context_dim: int, heads: int = 4, scale: float = 1.0):
        super().__init__()
        self.heads, self.scale = heads, scale
        self.norm = nn.GroupNorm(8, channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(context_dim, channels, bias=False)
        self.to_v = nn.Linear(context_dim, channels, bias=False)
        self.to_k_ip = nn.Linear(context_dim, channels, bias=False)
        self.to_v_ip = nn.Linear(context_dim, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, text_tokens: torch.Tensor, audio_tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.to_q(self.norm(x).flatten(2).transpose(1, 2))
        out = decoupled_attention(
            q,
            self.to_k(text_tokens),
            self.to_v(text_tokens),
            self.to_k_ip(audio_tokens),
            self.to_v_ip(audio_tokens),
            self.heads,
            self.scale,
        )
        return x + self.to_out(out).transpose(1, 2).reshape(b, c, h, w)
