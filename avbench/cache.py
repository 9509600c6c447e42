"""Atomic files and the content-addressed cache.

Every file avbench writes goes through `atomic_write`: a temporary file in the
same directory, then `os.replace`. A crash leaves either the old file or the
new one, never half of one; records are also fsynced. A temporary file names
its writer (host and pid), so one left by a killed writer is removed by the
next write into its folder. Cached arrays carry a checksum so a
truncated or bit-flipped file is detected, reported and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from filelock import FileLock

from .errors import AvbenchError

log = logging.getLogger("avbench.cache")


def avbench_home() -> Path:
    """`$AVBENCH_HOME`, or the user cache directory."""
    env = os.environ.get("AVBENCH_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "avbench"


def stable_hash(obj: Any) -> str:
    """sha256 of a canonical JSON encoding."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()


def read_json(path: str | Path, error: type[AvbenchError], what: str) -> Any:
    """A JSON file's value; every way reading it can fail becomes one `error` naming the file, as users see it."""
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        # ValueError: bad UTF-8 or JSON, or a number past Python's int-from-string limit
        raise error(f"{path}: cannot read {what} ({exc})") from None


def array_hash(array: np.ndarray) -> str:
    """Content hash of an array's shape and bytes: how features and media name images and waveforms."""
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_SWEPT: set[tuple[int, str]] = set()


def _writer_is_gone(owner: str) -> bool:
    """True for `<host>-<pid>` of a process on this host that no longer runs."""
    host, _, pid = owner.partition("-")
    if host != _HOST or not pid.isdigit():
        return False  # another machine's writer (shared file system): not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete `.NAME.<host>-<pid>.XXXX.tmp` files whose writer died; once per folder and process."""
    if (os.getpid(), str(folder)) in _SWEPT:
        return
    _SWEPT.add((os.getpid(), str(folder)))
    for entry in os.scandir(folder):
        parts = entry.name.rsplit(".", 3)
        if len(parts) == 4 and parts[0].startswith(".") and parts[3] == "tmp" and _writer_is_gone(parts[1]):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


def _new_temporary(path: Path) -> tuple[int, str]:
    """An exclusive new `.NAME.<host>-<pid>.XXXX.tmp` beside `path`, created with mode 0666 less the umask as
    open() gives (mkstemp's 0600 would keep shared results from their readers)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path: Path, data: bytes, durable: bool = False) -> None:
    """Replace `path` with `data` in one step; `durable` also fsyncs (survives power loss, not just a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path.parent)
    fd, tmp = _new_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    atomic_write(path, text.encode("utf-8"), durable)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An inter-process lock on `path` (a sibling `.lock` file)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        yield


class JsonIndex:
    """A small JSON map in one file: read once, new entries merged back under a lock on save.

    For facts that are cheap to keep and dear to recompute (an item's media
    hashes, a model's identity); a lost or unreadable file only costs a recomputation.
    """

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self._entries = self._read()
        self._new: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        try:
            entries = json.loads(self.path.read_text("utf-8"))
            if not isinstance(entries, dict):
                raise ValueError("not a JSON object")
            return entries
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s %s is unreadable (%s); its entries will be recomputed", self.what, self.path, exc)
            return {}

    def get(self, key: str) -> Any:
        return self._entries.get(key)

    def put(self, key: str, value: Any) -> None:
        value = json.loads(json.dumps(value, default=str))  # as it will read back
        if self._entries.get(key) != value:
            self._entries[key] = self._new[key] = value

    def refresh(self) -> None:
        """Take in entries other processes (ranks, earlier stages) saved since this one was read."""
        self._entries = self._read() | self._entries

    def save(self) -> None:
        if not self._new:
            return
        try:
            with locked(self.path):
                atomic_write_text(self.path, json.dumps(self._read() | self._new, separators=(",", ":")))
        except OSError as exc:
            log.warning("cannot write the %s %s (%s); the next run recomputes its entries", self.what, self.path, exc)
            return
        self._new.clear()


class ArrayCache:
    """Named float arrays stored under content-addressed keys.

    A file holds the arrays and, in the same npz, the sha256 of their bytes.
    A file that fails to load or to match its checksum is reported, removed
    and treated as a miss.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files if k != "__checksum__"}
                stored = str(data["__checksum__"])
            if stored != _checksum(arrays):
                raise ValueError("checksum mismatch")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a corrupt cache entry
            log.warning("cache file %s is corrupt (%s); recomputing", path, exc)
            self.corrupt += 1
            self.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return arrays

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, __checksum__=np.array(_checksum(arrays)), **arrays)
        try:
            atomic_write(self.path(key), buffer.getvalue())
        except OSError as exc:
            raise AvbenchError(
                f"cannot write the feature cache file {self.path(key)} ({exc.strerror or exc}); "
                "every output and cache file "
                "written before is kept: free the space (or pass another --cache-dir) and run the same command again"
            ) from None


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
