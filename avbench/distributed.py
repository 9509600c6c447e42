"""Data-parallel runs under torchrun (or `srun torchrun`).

Each rank generates its share of the items and extracts features for its
share of every image set; features are gathered so that every rank holds
the full, ordered arrays and rank 0 writes one record. Without torchrun's
environment everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, seq: list) -> list:
        """This rank's items: every size-th one, starting at rank."""
        return seq[self.rank :: self.size]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        if self.size == 1:
            return [obj]
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, obj)
        return gathered

    def close(self) -> None:
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def all_true(self, flag: bool) -> bool:
        """True only if `flag` holds on every rank (keeps collective decisions in step)."""
        return all(self.all_gather(bool(flag)))


def init_from_env(device: str) -> tuple[World, str]:
    """Join the process group torchrun set up; returns the world and this rank's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    elif device == "auto":
        device = "cpu"
    return World(rank=rank, size=size, local_rank=local_rank), device
