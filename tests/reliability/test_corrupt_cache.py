"""Damaged outputs, feature-cache and score-cache files are detected, reported, recomputed, and change no number."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from run_integrity import assert_complete

import avbench
from avbench.record import load_record

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("toy_plugins_registered")]
LIMIT = 6
TASKS = ["generate", "generate_per_source"]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {"truncate": truncate, "flip": flip_byte}


@pytest.fixture(scope="module")
def clean(toy_plugins_registered, toy_suite, tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    record = avbench.evaluate(
        "oracle", str(toy_suite), out=root / "run", cache_dir=root / "cache", limit=LIMIT, batch_size=4, workers=0
    )
    return record, root


@pytest.mark.parametrize("png_damage, npz_damage, via", [("truncate", "flip", "api"), ("flip", "truncate", "cli")])
def test_damaged_files_are_reported_recomputed_and_change_nothing(
    png_damage, npz_damage, via, clean, toy_suite, fork_server, tmp_path, caplog
):
    record, root = clean
    shutil.copytree(root / "run", tmp_path / "run")
    shutil.copytree(root / "cache", tmp_path / "cache")
    png = sorted((tmp_path / "run" / "outputs" / "generate").glob("*.png"))[1]
    npz = sorted(p for p in (tmp_path / "cache").rglob("*.npz") if "scores" not in p.parts)[0]
    scores = sorted(
        (tmp_path / "cache" / "scores").rglob("*.npz")
    )  # all damaged, so every metric reads its features again
    marker = sorted((tmp_path / "run" / "outputs" / "generate_per_source").glob("*.done.json"))[2]
    original_png = png.read_bytes()
    DAMAGE[png_damage](png)
    DAMAGE[npz_damage](npz)
    for path in scores:
        DAMAGE[npz_damage](path)
    marker.write_text('{"status": "ok", "files": [[')  # a marker cut off mid-write by something other than avbench

    if via == "api":
        with caplog.at_level(logging.WARNING, logger="avbench"):
            again = avbench.evaluate(
                "oracle",
                str(toy_suite),
                out=tmp_path / "run",
                cache_dir=tmp_path / "cache",
                limit=LIMIT,
                batch_size=4,
                workers=0,
            )
        log = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING)
        assert f"avbench.outputs: output generate/{png.name} is corrupt" in log
        assert f"avbench.cache: cache file {npz} is corrupt" in log
        assert f"avbench.outputs: output marker {marker} is unreadable" in log
    else:
        args = [
            "run",
            "--model",
            "oracle",
            "--suite",
            str(toy_suite),
            "--out",
            str(tmp_path / "run"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--limit",
            str(LIMIT),
            "--batch-size",
            "4",
            "--workers",
            "0",
        ]
        (result,) = fork_server.run({"args": args, "log": tmp_path / "cli.log"})
        assert result.exit == 0, result.log
        flat = " ".join(result.log.split())  # rich may wrap long lines
        assert (
            f"output generate/{png.name} is corrupt" in flat
            and f"{npz.name} is corrupt" in flat
            and "is unreadable" in flat
        )
        again = load_record(tmp_path / "run")

    assert scores and again.calls["corrupt_cache_files"] == 3 + len(scores)
    assert again.calls["model_calls"] == 2  # the damaged png's item, and the item whose marker was cut off
    assert again.calls["feature_passes"] == 1  # only the damaged cache entry
    assert again.comparable() == record.comparable()
    assert png.read_bytes() == original_png
    assert_complete(tmp_path / "run", tmp_path / "cache", TASKS, LIMIT)


def test_a_run_answered_from_the_cache_records_the_same_record(clean, toy_suite, tmp_path):
    """Including `weights`: the backbone is never loaded, yet the record names the weights behind the scores."""
    record, root = clean
    warm = avbench.evaluate(
        "oracle", str(toy_suite), out=tmp_path / "run", cache_dir=root / "cache", limit=LIMIT, batch_size=4, workers=0
    )
    assert warm.calls["feature_passes"] == 0 and warm.calls["score_cache_hits"] > 0
    assert warm.weights == record.weights == {"toy-clip": {"sha256": None, "verified": True}}
    assert warm.comparable() == record.comparable()
