"""Shared fixtures: an isolated AVBENCH_HOME, no network for any test, the leaderboards' runs, and helpers several
test modules use (a separation suite writer, the builders' byte-for-byte check)."""

from __future__ import annotations

import importlib.util
import json
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
            self._records[suite] = {
                model: self.build.run(model, suite, self.root) for model in self.build.runnable(suite)
            }
        return self._records[suite]


@pytest.fixture(scope="session")
def leaderboard_runs(tmp_path_factory) -> LeaderboardRuns:
    return LeaderboardRuns(tmp_path_factory.mktemp("leaderboard-runs"))


def write_separation_suite(folder: Path, name: str, manifest: bytes) -> Path:
    """Write `manifest` and a two-class, 1 s separation spec pinning it as `folder/{name}.json`: many tests need one."""
    from avbench.suites.manifest import sha256_bytes  # here, so that loading conftest imports no avbench

    spec = {
        "name": name,
        "version": "1",
        "protocol": 1,
        "tasks": ["separate_audio"],
        "sample_rate": 16000,
        "clip_seconds": 1.0,
        "classes": ["dog barking", "siren wailing"],
        "manifest": f"{name}.jsonl",
        "manifest_sha256": sha256_bytes(manifest),
        "data": "files",
        "dataset": "test",
        "metrics": [{"metric": "separation", "task": "separate_audio"}],
    }
    (folder / f"{name}.jsonl").write_bytes(manifest)
    (folder / f"{name}.json").write_text(json.dumps(spec))
    return folder / f"{name}.json"


@pytest.fixture(scope="session", name="write_separation_suite")
def _write_separation_suite():
    """`write_separation_suite`, for test modules (conftest itself is not importable from them)."""
    return write_separation_suite


def assert_builds_committed_files(name: str, annotations: Path) -> None:
    """Suite `name` built from `annotations` is its committed manifest and spec, byte for byte, and the shipped ones."""
    from avbench.suites import builders

    data, spec = builders.build(name, annotations)
    assert data == (ROOT / "data_manifests" / f"{name}.jsonl").read_bytes()
    assert builders.spec_text(spec) == (ROOT / "avbench" / "suites" / "specs" / f"{name}.json").read_text("utf-8")
    assert builders.shipped_differences(data, spec) == []


@pytest.fixture(scope="session", name="assert_builds_committed_files")
def _assert_builds_committed_files():
    """`assert_builds_committed_files`, for test modules (conftest itself is not importable from them)."""
    return assert_builds_committed_files
