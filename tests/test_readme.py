"""The README's promises: its quick start is what CI runs, and its Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def _blocks(text: str, language: str) -> list[str]:
    return [b.strip() for b in re.findall(rf"```{language}\n(.*?)```", text, re.S)]


def test_quick_start_has_exactly_two_commands_and_ci_runs_them():
    commands = _blocks(_section("Quick start"), "bash")
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    for number, command in enumerate(commands, start=1):
        assert f"QUICKSTART_{number}='{command}'" in ci


@pytest.mark.timeout(600)
def test_python_example_runs_as_written(tmp_path, monkeypatch):
    (example,) = _blocks(_section("Python API"), "python")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    assert (tmp_path / "runs" / "api-oracle" / "record.json").is_file()
    assert (tmp_path / "runs" / "api-halves" / "items.csv").is_file()
