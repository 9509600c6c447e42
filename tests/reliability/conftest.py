"""Fixtures of the reliability suite: toy plugins, the warm fork server, registered test models."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import toy_plugins
from fork_server import ForkServer


@contextmanager
def registered(registry, name: str, target):
    """`name` is registered for the duration of a block."""
    registry.register(name, target, replace=True)
    try:
        yield
    finally:
        registry.unregister(name)


@pytest.fixture(scope="module")
def toy_plugins_registered():
    """`toy-clip` and `event-oracle` in this process, for one test module."""
    from avbench.registry import backbones, models

    with (
        registered(backbones, toy_plugins.TOY_BACKBONE.name, toy_plugins.TOY_BACKBONE),
        registered(models, toy_plugins.EventOracle.name, toy_plugins.EventOracle),
    ):
        yield


@pytest.fixture(scope="session")
def toy_suite(tmp_path_factory) -> Path:
    return toy_plugins.write_toy_suite(tmp_path_factory.mktemp("toy-suite"))


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory):
    env = dict(os.environ)
    env["AVBENCH_HOME"] = str(tmp_path_factory.mktemp("fork-home"))
    env["AVBENCH_TEST_SLOW"] = "0.05"
    server = ForkServer(env)
    yield server
    server.close()


@pytest.fixture
def register_model():
    """register_model(name, cls): avbench.register_model, undone after the test."""
    import avbench
    from avbench.registry import models

    names = []

    def add(name: str, cls) -> None:
        avbench.register_model(name, cls, replace=True)
        names.append(name)

    yield add
    for name in names:
        models.unregister(name)
