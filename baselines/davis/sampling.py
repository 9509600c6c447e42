"""The two generative objectives of DAVIS: diffusion (DDIM) and flow matching (Euler).

Both start from Gaussian noise in the compressed spectrogram domain and are
conditioned on the mixture and the cue. Every row draws its noise from its own
torch generator (on the CPU, then moved), so a source's estimate depends only
on its item's seed, never on batch composition or device.

* `Diffusion`: 1000 steps, sigmoid beta schedule, epsilon prediction, L1 loss;
  DDIM sampling with `steps` steps and stochasticity `eta` (DAVIS: 15, 1.0).
* `Flow`: conditional flow matching with sigma_min = 1e-4, velocity target plus
  a reconstruction term, L1 (DAVIS-Flow); Euler sampling (DAVIS-Flow: 2 steps).
  With `predicts="target"` the network outputs the clean target and the
  velocity of the straight path follows from it; the loss is then DAVIS-Flow's
  reconstruction term alone. The synthetic-world model uses this form: its
  denoiser need not carry the input noise through to its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, t in 0..1000) -> prediction
SILENCE_LEVEL = 2e-3  # DAVIS's silence-mask threshold on the compressed mixture


def row_noise(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
    """[B, *shape] standard normal, row b drawn from generators[b]."""
    rows = [torch.randn(tuple(shape), generator=gen) for gen in generators]
    return torch.stack(rows).to(device)


def sigmoid_alpha_bar(steps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """Cumulative signal level of the sigmoid beta schedule, [steps] (float64)."""
    t = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    curve = (-torch.sigmoid((t * (end - start) + start) / tau) + v_end) / (v_end - v_start)
    curve = curve / curve[0]
    betas = (1.0 - curve[1:] / curve[:-1]).clamp(0.0, 0.999)
    return torch.cumprod(1.0 - betas, dim=0)


@dataclass(frozen=True)
class Diffusion:
    timesteps: int = 1000
    steps: int = 15
    eta: float = 1.0

    def alpha_bar(self, device: torch.device) -> torch.Tensor:
        return sigmoid_alpha_bar(self.timesteps).float().to(device)

    def loss(self, denoise: Denoiser, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = target.shape[0]
        t = torch.randint(0, self.timesteps, (b,), generator=generator).to(target.device)
        noise = torch.randn(target.shape, generator=generator).to(target.device)
        ab = self.alpha_bar(target.device)[t].view(b, 1, 1, 1)
        noisy = ab.sqrt() * target + (1 - ab).sqrt() * noise
        return (denoise(noisy, t.float()) - noise).abs().mean()

    @torch.no_grad()
    def sample(self, denoise: Denoiser, shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
        alpha_bar = self.alpha_bar(device)
        times = torch.linspace(-1, self.timesteps - 1, self.steps + 1).long().flip(0).tolist()
        x = row_noise(shape, generators, device)
        for now, nxt in zip(times[:-1], times[1:]):
            ab = alpha_bar[now]
            eps = denoise(x, torch.full((x.shape[0],), float(now), device=device))
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(0.0, 1.0)
            if nxt < 0:
                return x0
            ab_next = alpha_bar[nxt]
            sigma = self.eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).sqrt()
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            x = ab_next.sqrt() * x0 + (1 - ab_next - sigma**2).clamp_min(0).sqrt() * eps
            if self.eta > 0:
                x = x + sigma * row_noise(shape, generators, device)
        return x


@dataclass(frozen=True)
class Flow:
    steps: int = 2
    sigma_min: float = 1e-4
    predicts: str = "velocity"  # or "target"

    def loss(self, network: Denoiser, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = target.shape[0]
        t = torch.rand((b, 1, 1, 1), generator=generator).to(target.device)
        x0 = torch.randn(target.shape, generator=generator).to(target.device)
        keep = 1 - self.sigma_min
        noisy = t * target + (1 - keep * t) * x0
        predicted = network(noisy, 1000.0 * t.view(b))
        if self.predicts == "target":
            return (predicted - target).abs().mean()
        return (predicted - (target - keep * x0)).abs().mean() + (predicted + keep * x0 - target).abs().mean()

    def velocity(self, output: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
        """The straight path's velocity at (x, t), from the network's output."""
        if self.predicts == "velocity":
            return output
        keep = 1 - self.sigma_min
        start = (x - t * output) / (1 - keep * t)
        return output - keep * start

    @torch.no_grad()
    def sample(self, network: Denoiser, shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
        x = row_noise(shape, generators, device)
        grid = torch.linspace(0.0, 1.0, self.steps + 1).tolist()
        for now, nxt in zip(grid[:-1], grid[1:]):
            output = network(x, torch.full((x.shape[0],), 1000.0 * now, device=device))
            x = x + (nxt - now) * self.velocity(output, x, now)
        return x


def silence_masked(estimate: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """DAVIS's silence-mask rule: where the mixture is near silent, take the mixture's value."""
    return torch.where(mixture < SILENCE_LEVEL, mixture, estimate)
