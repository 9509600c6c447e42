"""Contrastive losses shared by the baselines' training scripts.

`info_nce_l2` is the loss of Sound2Scene's released train.py (kaist-ami/Sound2Scene):
both sides L2-normalised, logits = -tau * Euclidean distance, symmetric
cross-entropy over the batch (tau stays at 1 there). AV-GAS's A2A / A2V terms
are InfoNCE losses as well; `pit_min` makes any per-slot loss
permutation-invariant by taking, per mixture, the cheaper slot order.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F


def info_nce_l2(queries: torch.Tensor, keys: torch.Tensor, tau: float = 1.0, reduce: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE with negative-distance logits; row i of each side is a positive pair."""
    q, k = F.normalize(queries, dim=1), F.normalize(keys, dim=1)
    logits = -tau * torch.cdist(q, k)
    target = torch.arange(q.shape[0], device=q.device)
    loss = 0.5 * (
        F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.t(), target, reduction="none")
    )
    return loss.mean() if reduce else loss


def info_nce_rows(queries: torch.Tensor, keys: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-query InfoNCE [B, B]: entry (i, j) is the loss of query i if key j were its positive."""
    q, k = F.normalize(queries, dim=1), F.normalize(keys, dim=1)
    logits = -tau * torch.cdist(q, k)
    return torch.logsumexp(logits, dim=1, keepdim=True) - logits


def pit_min(per_order: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over items of the smallest loss over orders, chosen order index per item)."""
    stacked = torch.stack(per_order, dim=1)  # [B, orders]
    best, index = stacked.min(dim=1)
    return best.mean(), index


def slot_orders(slots: int) -> list[tuple[int, ...]]:
    return list(itertools.permutations(range(slots)))
