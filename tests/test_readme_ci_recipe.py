"""The README's CI recipe, run verbatim: its `run:` lines against the committed baseline record.

`mymodel` is registered here as a model that takes a checkpoint: a safetensors
file whose `first_source_only` flag turns the oracle into oracle-one. The
committed baseline (tests/fixtures/ci-recipe/synth-mixed2.record.json and its
synth-mixed2.items.csv, copied to the recipe's baselines/) is this recipe's own run with the flag off:
`python tests/test_readme_ci_recipe.py` writes it again.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from avbench.checkpoints import file_sha256
from avbench.cli import invoke
from avbench.models.sanity import OracleModel, OracleOneModel

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "fixtures" / "ci-recipe" / "synth-mixed2.record.json"


class GateModel(OracleModel):
    """The oracle, or oracle-one when its checkpoint says so: a candidate that can regress."""

    name = "mymodel"

    @classmethod
    def from_checkpoint(cls, path=None, *, device="cpu", suite=None, **_):
        model = cls(device=device)
        model.first_source_only = bool(load_file(str(path))["first_source_only"].item())
        model.checkpoint_sha256 = file_sha256(Path(path))
        return model

    def generate(self, batch):
        return OracleOneModel.generate(self, batch) if self.first_source_only else super().generate(batch)

    def generate_per_source(self, batch):
        worse = OracleOneModel.generate_per_source
        return worse(self, batch) if self.first_source_only else super().generate_per_source(batch)


def recipe_commands() -> list[list[str]]:
    """The `run:` lines of the README's CI job that call avbench, as argument lists."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Regression gate for CI", 1)[1].split("\n## ", 1)[0]
    job = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    lines = [m.group(1) for m in re.finditer(r"^\s*- run: (.*)$", job, re.M)]
    return [shlex.split(line) for line in lines if line.startswith("avbench ")]


def run_recipe(folder: Path, first_source_only: bool) -> list[int]:
    """Each avbench command of the recipe in `folder`; their exit codes."""
    (folder / "ckpt").mkdir(parents=True, exist_ok=True)
    save_file(
        {"first_source_only": torch.tensor(int(first_source_only))}, str(folder / "ckpt" / "candidate.safetensors")
    )
    shutil.rmtree(folder / "runs", ignore_errors=True)
    return [invoke(command[1:]) for command in recipe_commands()]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A checkout holding the committed baseline, with mymodel registered and a cache of its own."""
    import avbench
    from avbench.registry import models

    (tmp_path / "baselines").mkdir()
    for path in (BASELINE, BASELINE.with_name("synth-mixed2.items.csv")):
        shutil.copy(path, tmp_path / "baselines" / path.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AVBENCH_HOME", str(tmp_path / "home"))
    avbench.register_model(GateModel.name, GateModel, replace=True)
    yield tmp_path
    models.unregister(GateModel.name)


def test_the_recipe_passes_an_equal_candidate_and_fails_a_regressed_one(project):
    assert len(recipe_commands()) == 2
    assert run_recipe(project, first_source_only=False) == [0, 0]
    assert run_recipe(project, first_source_only=True) == [0, 1]


def write_baseline(folder: Path) -> None:
    """Run the recipe with the equal checkpoint in `folder`; commit its record and table as the baseline."""
    import os

    import avbench

    avbench.register_model(GateModel.name, GateModel, replace=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    run_recipe(folder, first_source_only=False)
    shutil.copy(folder / "runs" / "candidate" / "record.json", BASELINE)
    shutil.copy(folder / "runs" / "candidate" / "items.csv", BASELINE.with_name("synth-mixed2.items.csv"))


if __name__ == "__main__":
    from test_readme_ci_recipe import write_baseline as write  # this file as a module, so records name it so

    write(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ci-recipe-baseline").resolve())
