"""DAVIS's diffusion (`diffusion_utils/diffusion_pytorch.py` `GaussianDiffusion`), as DAVIS configures it.

1000 steps; sigmoid beta schedule with start 0, end 3, tau 1, computed in
float64 and kept as float32 tables; DDIM sampling with eta 1 on the times
`reversed(linspace(-1, 999, S + 1).int())`. Each DDIM step:

* x_start from the model output (`pred_noise`: from the predicted noise;
  `pred_x0`, the official code's other objective: the output itself), clamped
  to [-1, 1];
* where the compressed mixture is below 2e-3 (silence), x_start := mixture;
  then x_start is clamped to [0, 1];
* the next state is `x_start * sqrt(a') + c * noise_pred + sigma * z`, with the
  model's raw predicted noise for `pred_noise`.

`z` comes from a `noise` callable so each row can draw from its own
generator (or a recorded sequence can be replayed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (state, t long [B]) -> model output
NoiseSource = Callable[[], torch.Tensor]  # each call: the next standard-normal tensor of the state's shape
OBJECTIVES = ("pred_noise", "pred_x0")


def sigmoid_beta_schedule(timesteps: int, start: float = 0.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """float64 betas: alpha_bar follows a shifted sigmoid, renormalised to 1 at t = 0."""
    t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    v_start = torch.tensor(start / tau).sigmoid()
    v_end = torch.tensor(end / tau).sigmoid()
    alpha_bar = (-((t * (end - start) + start) / tau).sigmoid() + v_end) / (v_end - v_start)
    alpha_bar = alpha_bar / alpha_bar[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(0, 0.999)


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000
    steps: int = 15
    eta: float = 1.0
    objective: str = "pred_noise"
    silence_threshold: float = 2e-3


class Diffusion(nn.Module):
    def __init__(self, config: DiffusionConfig):
        super().__init__()
        if config.objective not in OBJECTIVES:
            raise ValueError(f"davis: objective must be one of {OBJECTIVES}, got {config.objective!r}")
        self.config = config
        betas = sigmoid_beta_schedule(config.timesteps)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        tables = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
            "sqrt_recip_alphas_cumprod": (1 / alphas_cumprod).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1 / alphas_cumprod - 1).sqrt(),
        }
        for name, table in tables.items():
            self.register_buffer(name, table.float(), persistent=False)

    def sampling_times(self) -> list[int]:
        """[T-1, ..., -1]: the S model timesteps, then -1 (done)."""
        times = torch.linspace(-1, self.config.timesteps - 1, self.config.steps + 1)
        return list(reversed(times.int().tolist()))

    def _at(self, table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return table[t].view(-1, 1, 1, 1)

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self._at(self.sqrt_alphas_cumprod, t) * x_start + self._at(self.sqrt_one_minus_alphas_cumprod, t) * noise

    def loss(
        self,
        denoise: Denoiser,
        target: torch.Tensor,
        generator: torch.Generator | None = None,
        first_timestep: int = 0,
    ) -> torch.Tensor:
        """The official L1 training loss: noise (pred_noise) or target (pred_x0) from q_sample(target, t).

        The official code draws t from all timesteps; `first_timestep` narrows the draw to the noisy end,
        the only times a sampler with few steps ever queries.
        """
        if not 0 <= first_timestep < self.config.timesteps:
            raise ValueError(f"davis: first_timestep must be in [0, {self.config.timesteps}), got {first_timestep}")
        t = torch.randint(first_timestep, self.config.timesteps, (target.shape[0],), generator=generator)
        t = t.to(target.device)
        noise = torch.randn(target.shape, generator=generator).to(target.device)
        output = denoise(self.q_sample(target, t, noise), t)
        wanted = noise if self.config.objective == "pred_noise" else target
        return (output - wanted).abs().mean()

    def predictions(
        self, state: torch.Tensor, t: torch.Tensor, output: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise, x_start clamped to [-1, 1]) from one model output."""
        recip, recipm1 = self._at(self.sqrt_recip_alphas_cumprod, t), self._at(self.sqrt_recipm1_alphas_cumprod, t)
        if self.config.objective == "pred_noise":
            return output, (recip * state - recipm1 * output).clamp(-1.0, 1.0)
        x_start = output.clamp(-1.0, 1.0)
        return (recip * state - x_start) / recipm1, x_start

    def ddim_step(self, state, time: int, time_next: int, output, mixture, noise: NoiseSource) -> torch.Tensor:
        """One DDIM step from the model's output at `time`; the silence mask is applied at every step."""
        t = torch.full((state.shape[0],), time, device=state.device, dtype=torch.long)
        pred_noise, x_start = self.predictions(state, t, output)
        silent = (mixture < self.config.silence_threshold).float()
        x_start = (mixture * silent + x_start * (1 - silent)).clamp(0.0, 1.0)
        if time_next < 0:
            return x_start
        alpha, alpha_next = self.alphas_cumprod[time], self.alphas_cumprod[time_next]
        sigma = self.config.eta * ((1 - alpha / alpha_next) * (1 - alpha_next) / (1 - alpha)).sqrt()
        c = (1 - alpha_next - sigma**2).sqrt()
        return x_start * alpha_next.sqrt() + c * pred_noise + sigma * noise()

    @torch.no_grad()
    def sample(self, denoise: Denoiser, mixture: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        """DDIM from `noise()` to the estimate, conditioned on the compressed mixture [B, 1, F, N]."""
        state = noise()
        times = self.sampling_times()
        for time, time_next in zip(times[:-1], times[1:], strict=True):
            t = torch.full((state.shape[0],), time, device=state.device, dtype=torch.long)
            state = self.ddim_step(state, time, time_next, denoise(state, t), mixture, noise)
        return state
