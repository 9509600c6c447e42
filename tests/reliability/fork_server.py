"""Run `avbench` commands in forked children of one warm process.

Importing torch, open_clip and avbench takes seconds; killing and resuming a run
ten times would spend most of the test importing. The server imports once, then
forks a child per command, so every child is a fresh `avbench` process that
starts instantly. A child can be SIGKILLed by the server after a delay, or by
itself at a chosen step (see toy_plugins.arm). Children of one request run at the same
time, which is how concurrent runs are tested.

Protocol: one JSON list of jobs per stdin line; one JSON list of results per
stdout line. A job is {"args", "log", "events"?, "kill_on"?, "rendezvous"?, "kill_after"?};
a result is {"exit" (negative: killed by that signal), "events", "seconds"}:
`events` is the child's step log (see toy_plugins.event).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    exit: int
    events: str
    seconds: float
    log: str

    @property
    def killed(self) -> bool:
        return self.exit == -signal.SIGKILL


class ForkServer:
    """The test side: start the server, send jobs, read results."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"fork server did not start: {ready!r}")

    def run(self, *jobs: dict) -> list[Result]:
        self.process.stdin.write(
            json.dumps([{k: str(v) if isinstance(v, Path) else v for k, v in job.items()} for job in jobs]) + "\n"
        )
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("fork server died")
        return [
            Result(log=Path(job["log"]).read_text(errors="replace"), **answer)
            for job, answer in zip(jobs, json.loads(line), strict=False)
        ]

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _child(job: dict) -> None:
    """In the forked child: become `avbench ARGS`, with output to the job's log."""
    code = 1
    try:
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if job.get("events"):
            import toy_plugins

            toy_plugins.arm(Path(job["events"]), job.get("kill_on"), job.get("rendezvous"))
        from avbench.cli import main

        sys.argv = ["avbench", *job["args"]]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported in the log, exit 1
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int, kill_after: float | None) -> int:
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


WARM_IMPORTS = (
    "open_clip",
    "torch_fidelity",
    "avbench.cli",
    "avbench.runner",
    "avbench.items.files",
    "avbench.synth.world",
    "avbench.metrics.retrieval",
    "avbench.metrics.separation",
    "avbench.metrics.fidelity",
)


def serve() -> None:
    for module in WARM_IMPORTS:  # everything a run imports, so that children never import anything heavy
        importlib.import_module(module)
    import toy_plugins

    toy_plugins.register()
    reply = sys.stdout
    reply.write("ready\n")
    reply.flush()
    for line in sys.stdin:
        jobs = json.loads(line)
        started = time.monotonic()
        pids = []
        for job in jobs:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(job)
            pids.append(pid)
        answers = []
        for job, pid in zip(jobs, pids, strict=False):
            code = _wait(pid, job.get("kill_after"))
            events = Path(job["events"]).read_text() if job.get("events") and Path(job["events"]).exists() else ""
            answers.append({"exit": code, "events": events, "seconds": time.monotonic() - started})
        reply.write(json.dumps(answers) + "\n")
        reply.flush()


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
