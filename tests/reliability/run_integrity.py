"""Checks that a run directory and a feature cache hold only whole, verifiable files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from avbench.cache import ArrayCache
from avbench.record import load_record


def temporaries(*roots: Path) -> list[Path]:
    """Temporary files an interrupted write could leave behind."""
    return sorted(
        p for root in roots if root.exists() for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")
    )


def assert_outputs_verify(run_dir: Path) -> dict[str, dict]:
    """Every `.done.json` parses and every file it lists has its sha256; returns the markers by path."""
    markers = {}
    for marker in sorted((run_dir / "outputs").glob("*/*.done.json")):
        meta = json.loads(marker.read_text("utf-8"))
        assert meta["status"] in ("ok", "failed"), marker
        for name, sha in meta["files"]:
            assert hashlib.sha256((marker.parent / name).read_bytes()).hexdigest() == sha, (
                f"{marker.parent / name} does not match its marker"
            )
        markers[str(marker.relative_to(run_dir))] = meta
    return markers


def assert_cache_verifies(cache_dir: Path) -> int:
    """Every cache file (features, and scores in `scores/`) loads and matches its checksum; returns their count."""
    files = sorted(cache_dir.rglob("*.npz")) if cache_dir.exists() else []
    for path in files:
        cache = ArrayCache(path.parent.parent)
        assert cache.get(path.stem) is not None, f"{path} does not load with its checksum"
        assert cache.corrupt == 0
    return len(files)


def assert_intact(run_dir: Path, cache_dir: Path) -> None:
    """What must hold at any instant, even right after a SIGKILL."""
    assert_outputs_verify(run_dir)
    assert_cache_verifies(cache_dir)
    if (run_dir / "record.json").exists():
        load_record(run_dir)


def assert_complete(run_dir: Path, cache_dir: Path, tasks: list[str], n_items: int) -> None:
    """A finished run: one marker per (task, item), no stray or half-written file anywhere."""
    markers = assert_outputs_verify(run_dir)
    assert_cache_verifies(cache_dir)
    for task in tasks:
        folder = run_dir / "outputs" / task
        task_markers = [m for k, m in markers.items() if k.startswith(f"outputs/{task}/")]
        assert len(task_markers) == n_items, f"{task}: {len(task_markers)} markers for {n_items} items"
        listed = {name for meta in task_markers for name, _ in meta["files"]}
        present = {p.name for p in folder.iterdir() if not p.name.endswith(".done.json")}
        assert present == listed, f"{task}: files not listed by any marker: {sorted(present - listed)}"
    left = temporaries(run_dir, cache_dir)
    assert not left, f"temporary files left behind: {[str(p) for p in left]}"
