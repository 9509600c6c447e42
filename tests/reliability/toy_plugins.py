"""Plugins the reliability tests run: a cheap image/text backbone, its suite, and a crash hook.

`toy-clip` lets a run extract and cache features without trained weights: images
are pooled to a 4x4 colour grid, prompts hash to fixed random vectors. The
`toy-mixed2` suite is synth-mixed2's manifest scored with it. Everything here
is registered through avbench's public registries, as a third-party plugin would be.

`event(kind)` marks one step of a run: a model call (m), a feature batch (e), and
each side of every `os.replace` of an output (o), a cache file (c) or anything
else: run.json, items.csv, record.json (w). With `arm()`, the process SIGKILLs
itself at the k-th step of a kind, so a kill can land exactly between writing a
temporary file and renaming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch

from avbench.backbones.base import BackboneSpec
from avbench.models.sanity import OracleModel
from avbench.suites.spec import load_suite

EMBED = 48
TOY_BACKBONE = BackboneSpec(
    name="toy-clip",
    kind="clip",
    weights=None,
    preprocessing="toy: 4x4 mean-pooled RGB / 255; prompts hashed to N(0, 1) vectors",
    loader="toy_plugins:load_toy_clip",
    description="test-only stand-in for a CLIP backbone",
)
SUITE_OPTIONS = {"backbone": "toy-clip"}

KINDS = "moecw"  # the kinds of step, in the order a run first reaches them
_events = {"fd": None, "counts": {}, "kill_on": None, "rendezvous": None}
SLOW_SECONDS = float(os.environ.get("AVBENCH_TEST_SLOW", "0"))


def event(kind: str) -> None:
    """One step of a run; SIGKILLs this process at the armed step."""
    if _events["fd"] is None:
        return
    count = _events["counts"][kind] = _events["counts"].get(kind, 0) + 1
    os.write(_events["fd"], kind.encode())
    if kind == "m" and count == 1 and _events["rendezvous"]:
        _meet(*_events["rendezvous"])
    if _events["kill_on"] == [kind, count]:
        os.kill(os.getpid(), signal.SIGKILL)


def _meet(folder: str, parties: int) -> None:
    """Wait until `parties` processes have reached their first model call."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(os.listdir(folder)) < parties and time.monotonic() < deadline:
        time.sleep(0.01)


def arm(events_file: Path, kill_on: list | None = None, rendezvous: list | None = None) -> None:
    """Log steps into `events_file`, one letter each; die at step `kill_on` = [kind, k].

    With `rendezvous` = [folder, n], the first model call waits for n processes to reach theirs.
    """
    _events.update(
        fd=os.open(events_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND),
        counts={},
        kill_on=kill_on,
        rendezvous=rendezvous,
    )
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        name = str(dst)
        kind = "o" if f"{os.sep}outputs{os.sep}" in name else "c" if name.endswith(".npz") else "w"
        event(kind)
        real_replace(src, dst, **kwargs)
        event(kind)

    os.replace = replace


class ToyClip:
    """A deterministic `ClipExtractor` with no weights."""

    name = TOY_BACKBONE.name
    preprocessing = TOY_BACKBONE.preprocessing
    weights_sha256 = None
    logit_scale = 100.0

    def __init__(self, device):
        self.device = torch.device(device)

    def encode_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        event("e")
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255.0, 4)
        return {"embedding": pooled.flatten(1)}

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(int(hashlib.sha256(p.encode()).hexdigest()[:12], 16)).standard_normal(EMBED)
            for p in prompts
        ]
        return np.stack(rows)


def load_toy_clip(spec, weights_path, device) -> ToyClip:
    return ToyClip(device)


class EventOracle(OracleModel):
    """The oracle, marking each call as a step (and optionally slowed down)."""

    name = "event-oracle"

    def _step(self) -> None:
        event("m")
        if SLOW_SECONDS:
            time.sleep(SLOW_SECONDS)

    def generate(self, batch):
        self._step()
        return super().generate(batch)

    def generate_per_source(self, batch):
        self._step()
        return super().generate_per_source(batch)

    def separate_audio(self, batch):
        self._step()
        return super().separate_audio(batch)


def write_toy_suite(folder: Path) -> Path:
    """synth-mixed2's spec, scored by retrieval metrics on `toy-clip`; its manifest is the shipped one."""
    base = load_suite("synth-mixed2")
    spec = {
        "name": "toy-mixed2",
        "version": base.version,
        "protocol": base.protocol,
        "tasks": list(base.tasks),
        "sample_rate": base.sample_rate,
        "clip_seconds": base.clip_seconds,
        "classes": list(base.classes),
        "manifest": base.manifest,
        "manifest_sha256": base.manifest_sha256,
        "data": base.data,
        "dataset": base.dataset,
        "metrics": [
            {"metric": "clip-retrieval", "task": "generate", "options": SUITE_OPTIONS},
            {"metric": "clip-per-source", "task": "generate_per_source", "options": SUITE_OPTIONS},
        ],
    }
    path = Path(folder) / "toy-mixed2.json"
    path.write_text(json.dumps(spec))
    return path


def register() -> None:
    """Make `toy-clip` and `event-oracle` known (idempotent)."""
    from avbench.registry import backbones, models

    backbones.register(TOY_BACKBONE.name, TOY_BACKBONE, replace=True)
    models.register(EventOracle.name, EventOracle, replace=True)
