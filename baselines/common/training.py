"""Small utilities shared by the baselines' training scripts."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch

from avbench.checkpoints import file_sha256


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG in reach; returns the generator that drives batch sampling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def batches(count: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, count, (size,), generator=gen)


def adam(params, lr: float, steps: int, weight_decay: float = 0.0):
    """Adam with a one-cycle schedule: the warm-up and anneal keep short runs stable."""
    optimiser = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return optimiser, torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps)


def step(optimiser, schedule, loss: torch.Tensor) -> None:
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    schedule.step()


class Log:
    """Timestamped progress lines on stdout."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.0f} s] {message}", flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def report_file(path: Path, log: Log) -> None:
    log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) sha256 {file_sha256(path)}")
