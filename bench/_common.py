"""Helpers shared by the bench scripts: machine load, fresh child processes, medians.

The scripts share two cores with other work, so every figure is a ratio of
two measurements taken in the same run, and each script prints the load it
ran under. Runs that must start cold (imports, caches, peak memory) happen
in a fresh child process of the same script (`--child`); the parent reads
the child's wall time, CPU time and peak RSS from `os.wait4`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
# The real-size backbones the scripts can give random, pinned weights to.
BACKBONES = {"inception": "inception-v3-compat", "clip": "clip-vit-b32-openai"}


def machine_note() -> str:
    """Cores, load averages and torch threads, for the header of every report."""
    import torch

    one, five, fifteen = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@contextmanager
def avbench_home(parent: str | Path | None = None) -> Iterator[Path]:
    """A throw-away $AVBENCH_HOME, so no run touches the user's caches or weights."""
    with tempfile.TemporaryDirectory(prefix="avbench-bench-", dir=parent) as home:
        old = os.environ.get("AVBENCH_HOME")
        os.environ["AVBENCH_HOME"] = home
        try:
            yield Path(home)
        finally:
            if old is None:
                os.environ.pop("AVBENCH_HOME", None)
            else:
                os.environ["AVBENCH_HOME"] = old


@dataclass
class ChildResult:
    """What one child process cost, and the JSON it printed last."""

    wall: float  # seconds, from spawn to exit (interpreter start and imports included)
    cpu: float  # user + system seconds of the child
    max_rss_mb: float  # peak resident set size of the child
    report: dict

    def describe(self) -> str:
        return f"process wall {self.wall:7.2f} s, cpu {self.cpu:7.2f} s, peak RSS {self.max_rss_mb:7.1f} MB"


def run_child(script: str | Path, args: list[str], env: dict[str, str] | None = None) -> ChildResult:
    """Run `python script --child ...` fresh; its last stdout line must be a JSON object.

    stderr passes through, so progress bars and errors stay visible.
    """
    command = [sys.executable, str(script), "--child", *args]
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), child_env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, env=child_env, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = out.read().strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = "\n".join(lines[-20:])
        raise SystemExit(f"child {' '.join(command)} failed with exit code {process.returncode}\n{tail}")
    return ChildResult(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, json.loads(lines[-1]))


def emit(report: dict) -> None:
    """A child's last line: its report, for `run_child`."""
    print(json.dumps(report), flush=True)


def print_profile(profile, limit: int = 25, only: str | None = None) -> None:
    """Top functions by cumulative time (optionally only paths containing `only`)."""
    import pstats

    stats = pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative")
    if only:
        stats.print_stats(only, limit)
    else:
        stats.print_stats(limit)


def random_inception_file(folder: Path) -> Path:
    """torch-fidelity's InceptionV3 state dict with its random initial weights (no download)."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    cls = tf_inception.FeatureExtractorInceptionV3
    with (
        mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: None),
        mock.patch.object(cls, "load_state_dict", lambda self, state: None),
    ):
        module = cls("inception-v3-compat", ["2048"])
    path = folder / "inception-random.pth"
    torch.save(module.state_dict(), path)
    return path


def random_clip_file(folder: Path) -> Path:
    """open_clip ViT-B-32-quickgelu's state dict with its random initial weights."""
    import open_clip
    import torch

    path = folder / "vit-b-32-random.pt"
    logging.disable(logging.WARNING)  # open_clip warns that it built the model without pretrained weights: wanted here
    try:
        torch.save(open_clip.create_model("ViT-B-32-quickgelu").state_dict(), path)
    finally:
        logging.disable(logging.NOTSET)
    return path


def pin_weights(name: str, file_name: str, sha256: str) -> None:
    """Register `file_name` (in $AVBENCH_HOME/weights) as weights entry `name`, replacing the built-in entry."""
    from avbench.weights import WeightsEntry, register_weights

    register_weights(WeightsEntry(name=name, file_name=file_name, sha256=sha256), replace=True)


def install_random_weights(extractor: str, folder: Path) -> tuple[str, str, str]:
    """Random weights for `extractor`, pinned under its backbone's weights name and imported into $AVBENCH_HOME.

    Returns (weights name, file name, sha256), what a child process needs for `pin_weights`.
    """
    from avbench.weights import import_file

    path = random_inception_file(folder) if extractor == "inception" else random_clip_file(folder)
    name = BACKBONES[extractor]  # each built-in backbone's weights entry has the backbone's name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    pin_weights(name, f"bench-{path.name}", digest)
    import_file(path, name)
    return name, f"bench-{path.name}", digest
