"""Pinned weight files: a validated registry, verified on every load.

No library avbench builds on checks the hash of every file it loads, and a
silently corrupt or substituted file changes every number. So each file is
named here with its sha256 (or the hash prefix its publisher embeds in the
URL or file name), and `resolve` refuses any file that does not match.
Downloaded files live in `$AVBENCH_HOME/weights`; files shipped inside the
package (`package_file`) are verified by their full sha256 just the same.

An explicit opt-in, `import_file(..., unverified=True)`, takes a file that does
not match the pin (a fine-tuned or re-hosted copy, or an entry no publisher
hashed) after checking its layout (format, keys, shapes) with the entry's
`layout` check. It lives in `$AVBENCH_HOME/weights/unverified/` beside a note of
its sha256 and origin, is hash-checked against that note on every load, keys
features by its own hash, and every record made with it says
"unverified weights: NAME". A verified import of the same entry replaces it.
Further entries come from `register_weights` or, for installed packages,
from the `avbench.weights` entry-point group.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from . import registry
from .cache import avbench_home
from .defaults import NAME_PATTERN
from .errors import RegistryError, WeightsError

_HEX = re.compile(r"^[0-9a-f]+$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file: where it comes from and what it must hash to."""

    name: str
    file_name: str
    url: str | None = None
    licence: str = "unknown"
    sha256: str | None = None  # full hex digest
    sha256_prefix: str | None = None  # when the publisher only embeds a prefix
    size: int | None = None  # bytes, if known
    package_file: str | None = None  # path relative to the avbench package, for shipped files
    description: str = ""
    layout: str | None = None  # "module:function"(path, where) raising WeightsError when the file's layout is wrong

    @property
    def pinned(self) -> bool:
        return bool(self.sha256 or self.sha256_prefix)

    @property
    def expected(self) -> str:
        """The hash shown to users: full digest, or `prefix…`."""
        return self.sha256 or (f"{self.sha256_prefix}…" if self.sha256_prefix else "(none published)")

    def matches(self, digest: str) -> bool:
        if self.sha256:
            return digest == self.sha256
        return bool(self.sha256_prefix) and digest.startswith(self.sha256_prefix)


def validate_entry(entry: WeightsEntry) -> None:
    """Refuse an entry whose facts could name a path, or a shipped file that is not fully pinned."""
    where = f"weights entry {entry.name!r}"
    if not isinstance(entry.name, str) or not NAME_PATTERN.match(entry.name):
        raise WeightsError(f"invalid weights name {entry.name!r}: use letters, digits and . _ + - (no paths)")
    if not NAME_PATTERN.match(entry.file_name or "") or ".." in entry.file_name:
        raise WeightsError(f"{where}: file name {entry.file_name!r} must be a plain file name, not a path")
    hashes = (("sha256", entry.sha256, (64,)), ("sha256_prefix", entry.sha256_prefix, range(8, 64)))
    for field_name, value, lengths in hashes:
        if value is not None and (not _HEX.match(value) or len(value) not in lengths):
            raise WeightsError(f"{where}: {field_name} {value!r} is not lower-case hex of the right length")
    if entry.package_file is not None:
        parts = Path(entry.package_file).parts
        if Path(entry.package_file).is_absolute() or ".." in parts or not parts:
            raise WeightsError(
                f"{where}: package_file {entry.package_file!r} must be a relative path inside the package"
            )
        if entry.sha256 is None:
            raise WeightsError(f"{where}: a file shipped in the package must be pinned by its full sha256")
    if entry.url is not None and not entry.url.startswith("https://"):
        raise WeightsError(f"{where}: url {entry.url!r} must be https")


def register_weights(item: WeightsEntry, *, replace: bool = False) -> None:
    """Add an entry (validated); a name is registered once unless `replace` or the facts are equal."""
    validate_entry(item)
    if item.name in registry.weights and not replace:
        if entry(item.name) == item:
            return
        raise WeightsError(f"weights {item.name!r} are already registered with different facts")
    registry.weights.register(item.name, item, replace=True)


def entry(name: str) -> WeightsEntry:
    """The registered entry called `name`; path-like or unknown names are refused."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise WeightsError(f"invalid weights name {name!r}: a weights name is a registered token, not a path")
    try:
        return registry.weights.get(name)
    except RegistryError as exc:
        raise WeightsError(str(exc)) from None


def names() -> list[str]:
    return registry.weights.names()


def weights_dir() -> Path:
    """Where downloaded and imported weight files live."""
    return avbench_home() / "weights"


def location(name: str) -> Path:
    """Where entry `name`'s file is expected (whether or not it exists)."""
    item = entry(name)
    if item.package_file is not None:
        return Path(__file__).resolve().parent / item.package_file
    return weights_dir() / item.file_name


def hash_file(path: str | Path) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """`hash_file`, memoised in-process per (path, size, mtime) so large files are hashed once."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        if key not in _HASHES:
            _HASHES[key] = hash_file(path)
        return _HASHES[key]


def pinned_sha256(name: str) -> str:
    """The hash a file must have (full, or the published prefix); part of every feature-cache key."""
    item = entry(name)
    if not item.pinned:
        raise WeightsError(_unpinned_message(item))
    return item.sha256 or item.sha256_prefix


def _import_line(item: WeightsEntry) -> str:
    return f"avbench weights import FILE --name {item.name}"


def _unverified_line(item: WeightsEntry) -> str:
    return f"avbench weights import FILE --name {item.name} --unverified"


def _unpinned_message(item: WeightsEntry) -> str:
    return (
        f"weights {item.name!r} have no published hash, so avbench cannot verify them; import your copy with "
        f"`{_unverified_line(item)}` (its layout is checked, and every record made with it says so). "
        f"Source: {item.url or 'unknown'}"
    )


def _missing_message(item: WeightsEntry, path: Path) -> str:
    if item.package_file is not None:
        return f"weights {item.name!r}: {path} ships with avbench but is missing; reinstall the package"
    return (
        f"weights {item.name!r} not found: put {item.file_name} in {path.parent} "
        f"(source: {item.url or 'see the entry description'}), or run `{_import_line(item)}` "
        f"(a copy that does not match the pin: `{_unverified_line(item)}`)"
    )


def _mismatch_message(item: WeightsEntry, path: Path, actual: str) -> str:
    return f"weights {item.name!r}: {path} fails its hash check: expected sha256 {item.expected}, got {actual}"


def unverified_dir() -> Path:
    """Where files imported with `unverified=True` live, each beside its note (`NAME.json`)."""
    return weights_dir() / "unverified"


def unverified_import(name: str) -> dict | None:
    """The note of entry `name`'s unverified copy ({name, file_name, sha256, size, origin}), if one was imported."""
    item = entry(name)
    note = unverified_dir() / f"{item.name}.json"
    if item.package_file is not None or not note.is_file():
        return None
    try:
        facts = json.loads(note.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(
            f"weights {name!r}: the note of its unverified copy, {note}, is unreadable ({exc})"
        ) from None
    if (
        not isinstance(facts, dict)
        or facts.get("file_name") != item.file_name
        or not _HEX.match(str(facts.get("sha256")))
    ):
        raise WeightsError(f"weights {name!r}: the note of its unverified copy, {note}, is malformed")
    return facts


def _verified_present(item: WeightsEntry) -> bool:
    return item.pinned and location(item.name).is_file()


def identity(name: str) -> tuple[str, bool]:
    """(hash that keys this entry's features, verified?) without reading the file.

    The pinned hash when a verified copy is present, or when no unverified copy was imported (loading then fails
    with the missing-file message); otherwise the unverified copy's own sha256.
    """
    item = entry(name)
    if not _verified_present(item):
        facts = unverified_import(name)
        if facts is not None:
            return facts["sha256"], False
    return pinned_sha256(name), True


def resolve(name: str) -> Path:
    """The local file of entry `name`, hash-checked; raises WeightsError if missing or mismatching.

    A verified copy (matching the pin) wins; without one, an unverified import is used, checked against the hash
    noted when it was imported.
    """
    item = entry(name)
    path = location(name)
    if not _verified_present(item):
        facts = unverified_import(name)
        if facts is not None:
            copy = unverified_dir() / item.file_name
            if not copy.is_file():
                raise WeightsError(
                    f"weights {name!r}: its unverified copy {copy} is missing; run `{_unverified_line(item)}`"
                )
            actual = file_sha256(copy)
            if actual != facts["sha256"]:
                raise WeightsError(
                    f"weights {name!r}: unverified copy {copy} fails its hash check: expected sha256 "
                    f"{facts['sha256']} (noted at import), got {actual}"
                )
            return copy
    if not item.pinned:
        raise WeightsError(_unpinned_message(item))
    if not path.is_file():
        raise WeightsError(_missing_message(item, path))
    actual = file_sha256(path)
    if not item.matches(actual):
        raise WeightsError(_mismatch_message(item, path, actual))
    return path


def unverified_note(used: dict[str, dict]) -> str | None:
    """ "unverified weights: a, b" for a record's `weights` map (backbone -> {entry, sha256, verified}), or None."""
    names = sorted({info.get("entry") or backbone for backbone, info in used.items() if not info.get("verified", True)})
    return f"unverified weights: {', '.join(names)}" if names else None


def _copy_hashing(source, destination_dir: Path, item: WeightsEntry, origin: str) -> Path:
    """Stream `source` into a temp file beside the target, hash the bytes written, verify, then rename."""
    destination_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{item.file_name}.", suffix=".tmp", dir=destination_dir)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if not item.matches(actual):
            raise WeightsError(
                f"weights {item.name!r}: {origin} fails its hash check: expected sha256 {item.expected}, got {actual}"
            )
        target = destination_dir / item.file_name
        os.replace(tmp, target)
        return target
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _installable(name: str) -> WeightsEntry:
    item = entry(name)
    if item.package_file is not None:
        raise WeightsError(f"weights {name!r} ship inside the avbench package; there is nothing to import or download")
    if not item.pinned:
        raise WeightsError(_unpinned_message(item))
    return item


def import_file(path: str | Path, name: str, *, unverified: bool = False) -> Path:
    """Verify `path` against entry `name` and copy it atomically into the weights home.

    With `unverified`, a file that does not match the pin (or an entry without one) is taken after its layout is
    checked; it is stored apart, with a note of its sha256 and origin. A verified import removes that copy.
    """
    source = Path(path)
    if unverified:
        return _import_unverified(source, name)
    item = _installable(name)
    if not source.is_file():
        raise WeightsError(f"cannot import weights {name!r}: {source} is not a file")
    with open(source, "rb") as handle:
        target = _copy_hashing(handle, weights_dir(), item, str(source))
    _drop_unverified(item)
    return target


def _drop_unverified(item: WeightsEntry) -> None:
    for stale in (unverified_dir() / f"{item.name}.json", unverified_dir() / item.file_name):
        stale.unlink(missing_ok=True)


def _import_unverified(source: Path, name: str) -> Path:
    from .registry import import_target

    item = entry(name)
    if item.package_file is not None:
        raise WeightsError(f"weights {name!r} ship inside the avbench package; there is nothing to import")
    if item.layout is None:
        raise WeightsError(f"weights {name!r} declare no layout check, so an unverified copy cannot be vetted")
    if not source.is_file():
        raise WeightsError(f"cannot import weights {name!r}: {source} is not a file")
    sha = hash_file(source)
    if item.pinned and item.matches(sha):
        return import_file(source, name)  # it is the published file after all: a verified import
    import_target(item.layout)(source, item)
    directory = unverified_dir()
    with open(source, "rb") as handle:
        noted = WeightsEntry(name=item.name, file_name=item.file_name, sha256=sha)
        copy = _copy_hashing(handle, directory, noted, str(source))
    facts = {
        "name": item.name,
        "file_name": item.file_name,
        "sha256": sha,
        "size": copy.stat().st_size,
        "origin": str(source.resolve()),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{item.name}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(facts, out, indent=2, sort_keys=True)
    os.replace(tmp, directory / f"{item.name}.json")
    return copy


def download(name: str, timeout: float = 60.0) -> Path:
    """Fetch entry `name` from its URL into the weights home (verified, atomic)."""
    item = _installable(name)
    if not item.url:
        raise WeightsError(f"weights {name!r} have no download URL; {_import_line(item)} instead")
    try:
        with urllib.request.urlopen(item.url, timeout=timeout) as response:  # noqa: S310 - https enforced by validate_entry
            return _copy_hashing(response, weights_dir(), item, item.url)
    except OSError as exc:
        raise WeightsError(f"downloading weights {name!r} from {item.url} failed: {exc}") from exc


def status(name: str, *, rehash: bool = False) -> dict:
    """present / unverified / missing / corrupt / unpinned, with the facts behind it."""
    item = entry(name)
    path = location(name)
    row = {**asdict(item), "path": str(path), "status": "missing", "actual_sha256": None, "message": ""}
    facts = None if _verified_present(item) else unverified_import(name)
    if facts is not None:
        path = unverified_dir() / item.file_name
        row["path"] = str(path)
    if not path.is_file():
        row["message"] = (
            _missing_message(item, path)
            if facts is None
            else (f"weights {name!r}: its unverified copy {path} is missing; run `{_unverified_line(item)}`")
        )
        return row
    if rehash:
        with _LOCK:
            for key in [k for k in _HASHES if k[0] == str(path.resolve())]:
                del _HASHES[key]
    actual = row["actual_sha256"] = file_sha256(path)
    if facts is not None:
        if actual == facts["sha256"]:
            row["status"] = "unverified"
            row["message"] = f"imported unverified from {facts.get('origin')}; records made with it say so"
        else:
            row["status"] = "corrupt"
            row["message"] = f"weights {name!r}: unverified copy {path} no longer has the sha256 noted at import"
    elif not item.pinned:
        row["status"], row["message"] = "unpinned", _unpinned_message(item)
    elif item.matches(actual):
        row["status"] = "present"
    else:
        row["status"], row["message"] = "corrupt", _mismatch_message(item, path, actual)
    return row


def list_entries() -> list[dict]:
    """Every entry with its status (files are hashed once per process)."""
    return [status(name) for name in names()]


def verify(name: str | None = None) -> list[dict]:
    """Re-hash one entry's file (or every entry's) and report its status."""
    return [status(n, rehash=True) for n in ([name] if name is not None else names())]
