"""Two processes run the same model and suite into the same --out and --cache-dir at once.

Both wait for each other at their first model call, so both have found every
item still to do and generate, score and write the same files side by side.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from run_integrity import assert_complete
from run_variants import run_args, variants

from avbench.record import load_record


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["synth-sep", "toy-mixed2"])
def test_two_processes_on_one_run_directory_agree_with_one(name, fork_server, toy_suite, tmp_path):
    variant = variants(toy_suite)[name]
    shared, cache, meeting = tmp_path / "shared", tmp_path / "cache", tmp_path / "meeting"
    meeting.mkdir()
    first, second = fork_server.run(
        *(
            {
                "args": run_args(variant, shared, cache),
                "log": tmp_path / f"{who}.log",
                "events": tmp_path / f"{who}.events",
                "rendezvous": [str(meeting), 2],
            }
            for who in ("first", "second")
        )
    )
    assert first.exit == 0, first.log
    assert second.exit == 0, second.log
    (alone,) = fork_server.run(
        {"args": run_args(variant, tmp_path / "alone", tmp_path / "alone-cache"), "log": tmp_path / "alone.log"}
    )
    assert alone.exit == 0, alone.log

    assert load_record(shared).comparable() == load_record(tmp_path / "alone").comparable()
    assert (shared / "items.csv").read_bytes() == (tmp_path / "alone" / "items.csv").read_bytes()
    assert_complete(shared, cache, variant.tasks, variant.limit)
    assert "corrupt" not in first.log + second.log
    calls = variant.limit // variant.batch_size * len(variant.tasks)
    assert first.events.count("m") == second.events.count("m") == calls  # each did the whole run


def test_only_temporaries_of_dead_writers_on_this_host_are_swept(tmp_path):
    """What makes sweeping safe beside a live writer: its temporary file is left alone."""
    from avbench.cache import _HOST, atomic_write

    finished = subprocess.Popen(["true"])
    finished.wait()
    folder = tmp_path / "shared"
    folder.mkdir()
    dead = folder / f".record.json.{_HOST}-{finished.pid}.abcd1234.tmp"
    alive = folder / f".record.json.{_HOST}-{os.getppid()}.abcd1234.tmp"
    other_host = "0" * 8 if _HOST != "0" * 8 else "1" * 8
    elsewhere = folder / f".record.json.{other_host}-{finished.pid}.abcd1234.tmp"
    unrelated = folder / ".notes.tmp"
    for path in (dead, alive, elsewhere, unrelated):
        path.write_bytes(b"partial")
    atomic_write(folder / "record.json", b"whole")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["record.json", alive.name, elsewhere.name, unrelated.name]
    )


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_open_would_give_under_the_umask(umask, mode, tmp_path):
    """Shared caches need group/other read where the user's umask allows it; a private umask keeps them private."""
    from avbench.cache import atomic_write

    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "record.json", b"whole")
        atomic_write(tmp_path / "record.json", b"again")  # a replacement too, not only a first write
    finally:
        os.umask(previous)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
