"""The background output writer: bounded, in order, and a failed write loses nothing else."""

from __future__ import annotations

import errno
import threading

import numpy as np
import pytest

from avbench.outputs import OutputStore, OutputWriter, WriteFailed, png_bytes

pytestmark = pytest.mark.timeout(60)


def image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, dtype=np.uint8)


def test_every_submitted_item_is_written_and_a_failure_names_its_item(tmp_path, monkeypatch):
    store = OutputStore(tmp_path)
    write = store.write

    def full_disk_on_b(task, item, files):
        if item == "b":
            raise OSError(errno.ENOSPC, "No space left on device")
        write(task, item, files)

    monkeypatch.setattr(store, "write", full_disk_on_b)
    writer = OutputWriter(store, depth=8)
    for k, item in enumerate("abcd"):
        writer.submit("generate", item, {f"{item}.png": (png_bytes, image(k))})
    with pytest.raises(WriteFailed) as caught:
        writer.wait()
    writer.shutdown()
    assert caught.value.item == "b" and caught.value.error.errno == errno.ENOSPC
    assert [item for item in "abcd" if store.done("generate", item) is not None] == ["a", "c", "d"]
    np.testing.assert_array_equal(store.image("generate", "c.png"), image(2))


def test_at_most_depth_items_wait(tmp_path, monkeypatch):
    store = OutputStore(tmp_path)
    release = threading.Event()
    write = store.write
    monkeypatch.setattr(store, "write", lambda *args: release.wait() and write(*args))
    writer = OutputWriter(store, depth=2)
    for item in "ab":
        writer.submit("generate", item, {f"{item}.png": (png_bytes, image(0))})
    blocked = threading.Thread(target=writer.submit, args=("generate", "c", {"c.png": (png_bytes, image(0))}))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # a third item waits for room
    release.set()
    blocked.join(10)
    writer.wait()
    writer.shutdown()
    assert all(store.done("generate", item) is not None for item in "abc")
