"""The wheel: built with the lowest setuptools pyproject.toml admits, installing only avbench,
finding every built-in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from avbench import builtins

REPO = Path(__file__).resolve().parents[1]


def _lowest_setuptools() -> str:
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    (spec,) = [r for r in requires if r.startswith("setuptools")]
    return re.fullmatch(r"setuptools>=([\d.]+)", spec).group(1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built in an isolated environment pinned to the lowest admitted setuptools (PyPI must be reachable)."""
    out = tmp_path_factory.mktemp("wheel")
    constraint = out / "constraint.txt"
    constraint.write_text(f"setuptools=={_lowest_setuptools()}\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        env={**os.environ, "PIP_CONSTRAINT": str(constraint)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("avbench-*.whl")
    return built


@pytest.mark.timeout(900)
def test_the_wheel_installs_one_top_level_package_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"avbench", wheel.name.split("-py3")[0] + ".dist-info"}
    for target in (*builtins.MODELS.values(), *builtins.METRICS.values(), *builtins.BACKBONES.values()):
        assert target.partition(":")[0].replace(".", "/") + ".py" in names, target
    for target in builtins.SUITES.values():
        package, _, file_name = target.partition(":")
        assert f"{package.replace('.', '/')}/{file_name}" in names, target
    shipped = {
        "avbench/manifests/SHA256SUMS",
        "avbench/reported/llp-multi.csv",
        "avbench/baselines/davis/weights/davis_synth.safetensors",
        "avbench/baselines/macs/weights/macs_synth.safetensors",
        "avbench/synth/weights/clip_synth.safetensors",
    }
    assert shipped <= set(names)


@pytest.mark.timeout(900)
def test_the_installed_wheel_lists_and_loads_every_builtin(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=600,
    )
    code = (
        "import json, avbench\n"
        "from avbench import registry\n"
        "specs = [registry.suites.get(n) for n in registry.suites.names()]\n"
        "print(json.dumps({'file': avbench.__file__, 'models': registry.models.names(),\n"
        "                  'suites': registry.suites.names(), 'model': registry.models.get('davis').__module__}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["file"].startswith(str(target))
    assert set(builtins.MODELS) <= set(result["models"]) and set(builtins.SUITES) <= set(result["suites"])
    assert result["model"] == "avbench.baselines.davis.model"
