"""`davis`: visually guided separation by a diffusion model of the target spectrogram.

On synthetic suites (`suite.data == "synth"`) it loads the small model avbench
trains with `python -m avbench.baselines.davis.train` (shipped, pinned by sha256).
On real suites it needs DAVIS's official checkpoint folder (`unet_best.pth` +
`frame_best.pth`, see checkpoint.py). A model whose rate differs from the
suite's (DAVIS runs at 11,025 Hz) returns its estimates resampled to the
suite's rate, since references are compared at the suite's rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np
import soxr
import torch

from avbench.errors import CheckpointError
from avbench.models.base import Batch, Model

from .checkpoint import SYNTH_FILE, SYNTH_SHA256, WEIGHTS_DIR, combined_sha256, load_paper, load_synth
from .separator import PAPER, SYNTH, DavisSeparator, from_architecture


class DAVIS(Model):
    name: ClassVar[str] = "davis"
    version: ClassVar[str] = "2"
    tasks: ClassVar[frozenset[str]] = frozenset({"separate_audio"})
    # Case keys of the official conformance fixture that are fed in, not compared.
    conformance_inputs: ClassVar[frozenset[str]] = frozenset(
        {"mixture_mag", "frames_uint8", "sample_noise", "unet_x_noisy", "unet_t", "ddim_pred_noise"}
    )
    # The fixture README's suggested acceptance; exact where it observed bit-identical values.
    conformance_tolerances: ClassVar[Mapping[str, float]] = {
        "mixture_logwarp": 1e-5,
        "log_mag_mix": 1e-5,
        "frames": 1e-5,
        "visual_feature": 1e-4,
        "schedule_betas": 0.0,
        "schedule_alphas_cumprod": 0.0,
        "ddim_times": 0,
        "ddim_t": 0,
        "unet_out": 1e-4,
        "ddim_states": 5e-4,
        "sample_out": 1e-2,
    }
    # mixture_logwarp: "rtol 1e-5 or atol 1e-5" (its values reach the hundreds).
    conformance_rtol: ClassVar[Mapping[str, float]] = {"mixture_logwarp": 1e-5}

    def __init__(
        self, separator: DavisSeparator, *, device="cpu", configuration: str = "synth", output_rate: int | None = None
    ):
        super().__init__(device=device)
        self.separator = separator.eval().to(self.device)
        self.configuration = configuration
        self.sample_rate = separator.config.spec.sample_rate
        self.output_rate = output_rate or self.sample_rate
        self.checkpoint_files: dict[str, str] = {}

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, *, device: str = "cpu", suite=None, architecture: dict | None = None
    ) -> "DAVIS":
        """`architecture`: a conformance fixture's config.json; the paper network is built at its reduced size."""
        output_rate = suite.sample_rate if suite is not None else None
        if path is None:
            if architecture is not None:
                raise CheckpointError("davis: an architecture config needs --checkpoint, the official files' folder")
            if suite is not None and suite.data != "synth":
                raise CheckpointError(
                    f"davis has no shipped weights for real-data suite {suite.name!r}: pass --checkpoint FOLDER, "
                    "the folder of DAVIS's unet_best.pth and frame_best.pth (github.com/WikiChao/DAVIS, Model Zoo)"
                )
            separator, digest = load_synth(WEIGHTS_DIR / SYNTH_FILE, SYNTH, SYNTH_SHA256)
            model = cls(separator, device=device, configuration="synth", output_rate=output_rate)
            model.checkpoint_sha256 = digest
            return model
        path = Path(path)
        if path.suffix == ".safetensors":  # a model trained by avbench.baselines.davis.train
            separator, digest = load_synth(path, SYNTH, None)
            model = cls(separator, device=device, configuration="synth", output_rate=output_rate)
            model.checkpoint_sha256 = digest
            return model
        config = PAPER if architecture is None else from_architecture(architecture)
        separator, hashes = load_paper(path, config)
        model = cls(separator, device=device, configuration="paper", output_rate=output_rate)
        model.checkpoint_files = hashes
        model.checkpoint_sha256 = combined_sha256(hashes)
        return model

    def separate_audio(self, batch: Batch) -> list[np.ndarray]:
        if batch.cues is None:
            raise ValueError("davis needs one visual cue per source (batch.cues)")
        cues = [list(item_cues)[:n] for item_cues, n in zip(batch.cues, batch.num_sources, strict=True)]
        if any(len(c) != n for c, n in zip(cues, batch.num_sources, strict=True)):
            raise ValueError("davis needs one visual cue per source; some item has fewer cues than sources")
        generators = [batch.generator(i) for i in range(len(batch))]
        audio = batch.audio.to(self.device, torch.float32)
        estimates = self.separator.separate(audio, cues, generators)
        if self.output_rate == self.sample_rate:
            return estimates
        return [self._to_output_rate(e) for e in estimates]

    def _to_output_rate(self, waves: np.ndarray) -> np.ndarray:
        resampled = [soxr.resample(w, self.sample_rate, self.output_rate, quality="HQ") for w in waves]
        length = min(min(len(r) for r in resampled), waves.shape[1] * self.output_rate // self.sample_rate)
        return np.stack([r[:length] for r in resampled]).astype(np.float32)

    @torch.no_grad()
    def conformance(self, cases: Mapping[str, torch.Tensor], meta: Mapping) -> dict[str, torch.Tensor]:
        """The official stages on recorded inputs: warp, frames, visual features, schedule, one U-Net call,
        DDIM steps fed the official predicted noise, and free-running DDIM with the recorded noise draws."""
        sep, device = self.separator, self.device
        out: dict[str, torch.Tensor] = {}
        warped, condition = sep.condition(cases["mixture_mag"][None].to(device))
        out["mixture_logwarp"], out["log_mag_mix"] = warped[0], condition[0, 0]
        clips = torch.stack(
            [
                torch.stack([sep.cue.preprocess(frame.numpy()) for frame in source], dim=1)
                for source in cases["frames_uint8"]
            ]
        ).to(device)
        out["frames"] = clips[0]
        visual = sep.cue(clips)
        out["visual_feature"] = visual
        process = sep.process
        out["schedule_betas"], out["schedule_alphas_cumprod"] = process.betas, process.alphas_cumprod
        times = process.sampling_times()
        out["ddim_times"], out["ddim_t"] = torch.tensor(times), torch.tensor(times[:-1])
        noisy = cases["unet_x_noisy"][None, None].to(device)
        out["unet_out"] = sep.net(noisy, cases["unet_t"].to(device), condition, visual[:1])[0, 0]

        steps = len(times) - 1
        draws = cases["sample_noise"][:, None, None].to(device)  # [2S, 1, 1, F, N], in the official order
        replay = iter(draws[1:steps])
        state, states = draws[0], []
        for i, (time, time_next) in enumerate(zip(times[:-1], times[1:], strict=True)):
            official_noise = cases["ddim_pred_noise"][i][None, None].to(device)
            state = process.ddim_step(state, time, time_next, official_noise, condition, lambda: next(replay))
            states.append(state[0, 0])
        out["ddim_states"] = torch.stack(states[:-1])

        estimates = []
        for source in range(visual.shape[0]):
            replay_source = iter(draws[source * steps : (source + 1) * steps])
            estimate = process.sample(
                sep.denoiser(condition, visual[source : source + 1]), condition, lambda it=replay_source: next(it)
            )
            estimates.append(estimate[0, 0])
        out["sample_out"] = torch.stack(estimates)
        return out

    def set_steps(self, steps: int) -> "DAVIS":
        """Use `steps` DDIM steps; the record's model identity changes with it."""
        if int(steps) < 1:
            raise ValueError(f"davis: steps must be >= 1, got {steps}")
        self.separator.set_steps(int(steps))
        return self

    def describe(self) -> dict:
        config = self.separator.config
        return {
            **super().describe(),
            "configuration": self.configuration,
            "objective": config.diffusion.objective,
            "steps": config.diffusion.steps,
            "sample_rate": self.sample_rate,
            "checkpoint_files": dict(self.checkpoint_files),
        }
