"""Pinned weight files: a validated registry, verified on every load.

No library avbench builds on checks the hash of every file it loads, and a
silently corrupt or substituted file changes every number. So each file is
named here with its sha256 (or the hash prefix its publisher embeds in the
URL or file name), and `resolve` refuses any file that does not match.
Downloaded files live in `$AVBENCH_HOME/weights`; files shipped inside the
package (`package_file`) are verified by their full sha256 just the same.
Further entries come from `register_weights` or, for installed packages,
from the `avbench.weights` entry-point group.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
import threading
import urllib.request
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path

from .cache import avbench_home
from .errors import WeightsError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")
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


def _validate(entry: WeightsEntry) -> None:
    where = f"weights entry {entry.name!r}"
    if not isinstance(entry.name, str) or not _NAME.match(entry.name):
        raise WeightsError(f"invalid weights name {entry.name!r}: use letters, digits and . _ + - (no paths)")
    if not _FILE.match(entry.file_name or "") or ".." in entry.file_name:
        raise WeightsError(f"{where}: file name {entry.file_name!r} must be a plain file name, not a path")
    for field_name, value, lengths in (("sha256", entry.sha256, (64,)), ("sha256_prefix", entry.sha256_prefix, range(8, 64))):
        if value is not None and (not _HEX.match(value) or len(value) not in lengths):
            raise WeightsError(f"{where}: {field_name} {value!r} is not lower-case hex of the right length")
    if entry.package_file is not None:
        parts = Path(entry.package_file).parts
        if Path(entry.package_file).is_absolute() or ".." in parts or not parts:
            raise WeightsError(f"{where}: package_file {entry.package_file!r} must be a relative path inside the package")
        if entry.sha256 is None:
            raise WeightsError(f"{where}: a file shipped in the package must be pinned by its full sha256")
    if entry.url is not None and not entry.url.startswith("https://"):
        raise WeightsError(f"{where}: url {entry.url!r} must be https")


_ENTRIES: dict[str, WeightsEntry] = {}
_LOCK = threading.RLock()
_SCANNED = False
GROUP = "avbench.weights"  # entry points naming WeightsEntry objects, e.g. a plugin's shipped files


def _scan() -> None:
    """Register the entries that installed packages declare, once, on first lookup."""
    global _SCANNED
    with _LOCK:
        if _SCANNED:
            return
        _SCANNED = True
        for point in entry_points(group=GROUP):
            try:
                item = point.load()
            except (ImportError, AttributeError) as exc:
                raise WeightsError(f"weights entry point {point.name!r} ({point.value}) could not be loaded: {exc}") from exc
            if not isinstance(item, WeightsEntry) or item.name != point.name:
                raise WeightsError(f"weights entry point {point.name!r} ({point.value}) is not a WeightsEntry named {point.name!r}")
            register_weights(item)


def register_weights(entry: WeightsEntry, *, replace: bool = False) -> None:
    """Add an entry (validated); a name is registered once unless `replace`."""
    _validate(entry)
    with _LOCK:
        if entry.name in _ENTRIES and not replace and _ENTRIES[entry.name] != entry:
            raise WeightsError(f"weights {entry.name!r} are already registered with different facts")
        _ENTRIES[entry.name] = entry


def entry(name: str) -> WeightsEntry:
    """The registered entry called `name`; path-like or unknown names are refused."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise WeightsError(f"invalid weights name {name!r}: a weights name is a registered token, not a path")
    _scan()
    with _LOCK:
        if name in _ENTRIES:
            return _ENTRIES[name]
        known = sorted(_ENTRIES)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise WeightsError(f"unknown weights {name!r}.{hint} Known: {', '.join(known)}.")


def names() -> list[str]:
    _scan()
    with _LOCK:
        return sorted(_ENTRIES)


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


def _unpinned_message(item: WeightsEntry) -> str:
    return (
        f"weights {item.name!r} have no published hash, so avbench cannot verify them; pass the file explicitly "
        f"(e.g. `avbench fidelity ... --weights FILE`), which records it as unverified. Source: {item.url or 'unknown'}"
    )


def _missing_message(item: WeightsEntry, path: Path) -> str:
    if item.package_file is not None:
        return f"weights {item.name!r}: {path} ships with avbench but is missing; reinstall the package"
    return (
        f"weights {item.name!r} not found: put {item.file_name} in {path.parent} "
        f"(source: {item.url or 'see the entry description'}), or run `{_import_line(item)}`"
    )


def _mismatch_message(item: WeightsEntry, path: Path, actual: str) -> str:
    return f"weights {item.name!r}: {path} fails its hash check: expected sha256 {item.expected}, got {actual}"


def resolve(name: str) -> Path:
    """The verified local file of entry `name`; raises WeightsError if missing or mismatching."""
    item = entry(name)
    if not item.pinned:
        raise WeightsError(_unpinned_message(item))
    path = location(name)
    if not path.is_file():
        raise WeightsError(_missing_message(item, path))
    actual = file_sha256(path)
    if not item.matches(actual):
        raise WeightsError(_mismatch_message(item, path, actual))
    return path


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
            raise WeightsError(f"weights {item.name!r}: {origin} fails its hash check: expected sha256 {item.expected}, got {actual}")
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


def import_file(path: str | Path, name: str) -> Path:
    """Verify `path` against entry `name` and copy it atomically into the weights home."""
    item = _installable(name)
    source = Path(path)
    if not source.is_file():
        raise WeightsError(f"cannot import weights {name!r}: {source} is not a file")
    with open(source, "rb") as handle:
        return _copy_hashing(handle, weights_dir(), item, str(source))


def download(name: str, timeout: float = 60.0) -> Path:
    """Fetch entry `name` from its URL into the weights home (verified, atomic)."""
    item = _installable(name)
    if not item.url:
        raise WeightsError(f"weights {name!r} have no download URL; {_import_line(item)} instead")
    try:
        with urllib.request.urlopen(item.url, timeout=timeout) as response:  # noqa: S310 - https enforced by _validate
            return _copy_hashing(response, weights_dir(), item, item.url)
    except OSError as exc:
        raise WeightsError(f"downloading weights {name!r} from {item.url} failed: {exc}") from exc


def status(name: str, *, rehash: bool = False) -> dict:
    """present / missing / corrupt / unpinned, with the facts behind it."""
    item = entry(name)
    path = location(name)
    row = {**asdict(item), "path": str(path), "status": "missing", "actual_sha256": None, "message": ""}
    if not path.is_file():
        row["message"] = _missing_message(item, path)
        return row
    if rehash:
        with _LOCK:
            for key in [k for k in _HASHES if k[0] == str(path.resolve())]:
                del _HASHES[key]
    actual = row["actual_sha256"] = file_sha256(path)
    if not item.pinned:
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


_BUILTIN = (
    WeightsEntry(
        name="inception-v3-compat",
        file_name="weights-inception-2015-12-05-6726825d.pth",
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        licence="Apache-2.0 (TensorFlow inception-2015-12-05, converted by torch-fidelity)",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        size=95_628_359,
        description="torch-fidelity's InceptionV3 state dict (the TF FID graph); same bytes as pytorch-fid's pt_inception file",
    ),
    WeightsEntry(
        name="clip-vit-b32-openai",
        file_name="ViT-B-32.pt",
        url="https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        licence="MIT (OpenAI CLIP)",
        sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        description="OpenAI CLIP ViT-B/32; the URL's path embeds the file's sha256 (open_clip checks it the same way)",
    ),
    WeightsEntry(
        name="clip-vit-l14-openai",
        file_name="ViT-L-14.pt",
        url="https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        licence="MIT (OpenAI CLIP)",
        sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
        description="OpenAI CLIP ViT-L/14; the URL's path embeds the file's sha256",
    ),
    WeightsEntry(
        name="inception-v3-vggsound",
        file_name="inception-v3-vggsound.pth",
        url="https://drive.google.com/file/d/1GbZ25SShTssQ-G5Ynhzsjwz6QkPWWQNm/view",
        licence="unknown (Sound2Scene authors)",
        description="Sound2Scene's Inception fine-tuned on VGGSound (README, 'Evaluating Sound2Scene'); no hash is published",
    ),
)

for _entry in _BUILTIN:
    register_weights(_entry)
