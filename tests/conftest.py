"""Shared fixtures: an isolated AVBENCH_HOME, no network for any test, and the leaderboards' runs."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Caches and weights go to a per-session temp home, never the user's."""
    home = tmp_path_factory.getbasetemp() / "avbench-home"
    monkeypatch.setenv("AVBENCH_HOME", str(home))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open an internet socket fails the test."""

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            return real_connect(self, address)
        raise RuntimeError(f"test tried to reach the network: {address}")

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


class LeaderboardRuns:
    """The committed leaderboards' runs, each made once per session, on first use."""

    def __init__(self, root: Path):
        spec = importlib.util.spec_from_file_location("leaderboard_build", ROOT / "leaderboards" / "build.py")
        self.build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.build)
        self.root = root
        self._records: dict[str, dict] = {}

    def records(self, suite: str) -> dict:
        """Model name -> record of every leaderboard model on `suite`, in table order."""
        if suite not in self._records:
            self._records[suite] = {model: self.build.run(model, suite, self.root) for model in self.build.runnable(suite)}
        return self._records[suite]


@pytest.fixture(scope="session")
def leaderboard_runs(tmp_path_factory) -> LeaderboardRuns:
    return LeaderboardRuns(tmp_path_factory.mktemp("leaderboard-runs"))
