"""Helpers shared by the bench scripts: machine load, fresh child processes, medians.

The scripts share two cores with other work, so every figure is a ratio of
two measurements taken in the same run, and each script prints the load it
ran under. Runs that must start cold (imports, caches, peak memory) happen
in a fresh child process of the same script (`--child`); the parent reads
the child's wall time, CPU time and peak RSS from `os.wait4`.
"""

from __future__ import annotations

import json
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

REPO = Path(__file__).resolve().parent.parent


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
