"""Shared fixtures: an isolated AVBENCH_HOME and no network for any test."""

from __future__ import annotations

import socket

import pytest


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
