"""A full disk (ENOSPC) at any write stops the run with one clear error and loses nothing.

The fault is injected into `os.replace`, the last step of every avbench write,
at the N-th write of one kind in the clean run's order of writes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from run_integrity import assert_complete, assert_outputs_verify, temporaries

import avbench
from avbench.errors import AvbenchError
from avbench.record import load_record

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("toy_plugins_registered")]
LIMIT = 6
TASKS = ["generate", "generate_per_source"]


def kind_of(path: Path) -> str:
    if path.parent.parent.name == "outputs":
        return "marker" if path.name.endswith(".done.json") else "output"
    return "cache" if path.suffix == ".npz" else path.name


def evaluate(toy_suite: Path, root: Path):
    return avbench.evaluate(
        "oracle", str(toy_suite), out=root / "run", cache_dir=root / "cache", limit=LIMIT, batch_size=2, workers=0
    )


@pytest.fixture(scope="module")
def clean(toy_plugins_registered, toy_suite, tmp_path_factory):
    """The clean run and the kinds of its writes, in order."""
    root = tmp_path_factory.mktemp("clean")
    writes = []
    real_replace = os.replace

    def counting(src, dst, **kwargs):
        writes.append(kind_of(Path(dst)))
        real_replace(src, dst, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", counting)
        record = evaluate(toy_suite, root)
    return record, writes


@pytest.mark.parametrize(
    "kind, occurrence, names_item",
    [
        ("output", 5, True),
        ("marker", 3, True),
        ("cache", 1, False),
        ("cache", 2, False),
        pytest.param("run.json", 1, False),
        pytest.param("items.csv", 1, False),
        pytest.param("record.json", 1, False),
    ],
)
def test_enospc_stops_with_a_clear_error_and_a_rerun_completes(
    kind, occurrence, names_item, clean, toy_suite, tmp_path, monkeypatch
):
    record, writes = clean
    fault_at = [i for i, k in enumerate(writes) if k == kind][occurrence - 1]
    real_replace = os.replace
    count = 0
    failed = []

    def full_disk(src, dst, **kwargs):
        nonlocal count
        count += 1
        if count > fault_at:
            failed.append(Path(dst))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(AvbenchError) as caught:
        evaluate(toy_suite, tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)

    message = str(caught.value)
    assert "No space left on device" in message and "run the same command again" in message
    assert kind_of(failed[0]) == kind
    if names_item:
        assert f"item {failed[0].name.split('.')[0]}" in message
    assert temporaries(tmp_path) == []
    written = assert_outputs_verify(tmp_path / "run")  # everything written before the fault is whole
    assert len(written) == sum(1 for k in writes[:fault_at] if k == "marker")

    again = evaluate(toy_suite, tmp_path)
    assert again.comparable() == record.comparable()
    assert load_record(tmp_path / "run").comparable() == again.comparable()
    assert_complete(tmp_path / "run", tmp_path / "cache", TASKS, LIMIT)
