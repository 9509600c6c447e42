"""Pinned weights: import, verify and resolve against a temporary registered entry (no network)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avbench import registry, weights
from avbench.cli import weights as weights_cli
from avbench.errors import WeightsError

NAME = "test-weights"
FILE_NAME = "test-weights-0001.bin"
URL = "https://example.org/weights/test-weights-0001.bin"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A temporary $AVBENCH_HOME; entries a test registers are forgotten after it."""
    monkeypatch.setenv("AVBENCH_HOME", str(tmp_path / "home"))
    before = set(weights.names())
    yield tmp_path / "home" / "weights"
    for name in set(weights.names()) - before:
        registry.weights.unregister(name)


@pytest.fixture
def blob(tmp_path, home):
    """A 3 MB file (several hash chunks) registered under NAME by its sha256."""
    data = os.urandom(3 * (1 << 20) + 17)
    path = tmp_path / "download" / FILE_NAME
    path.parent.mkdir()
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    weights.register_weights(
        weights.WeightsEntry(name=NAME, file_name=FILE_NAME, url=URL, licence="CC0", sha256=sha, size=len(data))
    )
    return path, sha


def flipped_copy(path: Path, where: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    where.write_bytes(bytes(data))
    return where


def test_hash_file_is_sha256(blob):
    path, sha = blob
    assert weights.hash_file(path) == sha


def test_missing_file_names_the_import_line_dir_and_source(blob, home):
    with pytest.raises(WeightsError) as err:
        weights.resolve(NAME)
    message = str(err.value)
    assert f"avbench weights import FILE --name {NAME}" in message
    assert FILE_NAME in message and str(home) in message and URL in message
    assert weights.status(NAME)["status"] == "missing"


def test_import_then_resolve_and_verify(blob, home):
    path, sha = blob
    target = weights.import_file(path, NAME)
    assert target == home / FILE_NAME and target.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in home.iterdir()) == [FILE_NAME]  # no temporary file left behind
    assert weights.resolve(NAME) == target
    [row] = weights.verify(NAME)
    assert row["status"] == "present" and row["actual_sha256"] == sha
    assert {r["name"]: r["status"] for r in weights.list_entries()}[NAME] == "present"


def test_one_changed_byte_is_refused_on_import_with_both_hashes(blob, home, tmp_path):
    path, sha = blob
    bad = flipped_copy(path, tmp_path / "bad.bin")
    with pytest.raises(WeightsError) as err:
        weights.import_file(bad, NAME)
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert sha in str(err.value) and actual in str(err.value)
    assert not home.exists() or list(home.iterdir()) == []  # nothing installed, no temp file left


def test_one_changed_byte_in_the_installed_file_is_refused_on_load(blob, home, tmp_path):
    path, sha = blob
    target = weights.import_file(path, NAME)
    assert weights.resolve(NAME) == target
    flipped_copy(path, target)
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new version even on coarse clocks
    actual = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(WeightsError) as err:
        weights.resolve(NAME)
    assert sha in str(err.value) and actual in str(err.value)
    [row] = weights.verify(NAME)
    assert row["status"] == "corrupt"
    result = CliRunner().invoke(weights_cli.app, ["verify", NAME])
    assert isinstance(result.exception, WeightsError) and actual in str(result.exception)


def test_verification_is_cached_per_path_size_and_mtime(blob, monkeypatch):
    path, sha = blob
    assert weights.file_sha256(path) == sha

    def boom(_):
        raise AssertionError("re-hashed")

    monkeypatch.setattr(weights, "hash_file", boom)
    assert weights.file_sha256(path) == sha  # served from the in-process cache
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(AssertionError, match="re-hashed"):
        weights.file_sha256(path)


@pytest.mark.parametrize("bad_name", ["../../x", "a/b", "..", "/etc/passwd", "x\\y"])
def test_path_like_names_are_refused(blob, home, tmp_path, bad_name):
    path, _ = blob
    result = CliRunner().invoke(weights_cli.app, ["import", str(path), "--name", bad_name])
    assert isinstance(result.exception, WeightsError)
    assert "not a path" in str(result.exception)
    assert not home.exists() and not (tmp_path / "x").exists()


def test_unknown_name_suggests_close_matches(home):
    with pytest.raises(WeightsError, match="Did you mean 'inception-v3-compat'"):
        weights.resolve("inception-v3-compt")


def test_cli_import_list_and_verify(blob, home):
    path, sha = blob
    runner = CliRunner()
    assert runner.invoke(weights_cli.app, ["import", str(path), "--name", NAME]).exit_code == 0
    listed = runner.invoke(weights_cli.app, ["list", "--json"])
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[NAME]["status"] == "present" and rows[NAME]["actual_sha256"] == sha
    assert rows["inception-v3-compat"]["status"] == "missing"  # a fresh home holds nothing else
    assert runner.invoke(weights_cli.app, ["verify", NAME]).exit_code == 0
    assert runner.invoke(weights_cli.app, ["verify"]).exit_code == 0  # missing optional files are not failures


def test_prefix_pinned_entry(home, tmp_path):
    data = b"prefix-pinned weights"
    sha = hashlib.sha256(data).hexdigest()
    weights.register_weights(
        weights.WeightsEntry(name="prefixed", file_name=f"prefixed-{sha[:8]}.bin", sha256_prefix=sha[:8])
    )
    source = tmp_path / "p.bin"
    source.write_bytes(data)
    weights.import_file(source, "prefixed")
    assert weights.resolve("prefixed").read_bytes() == data
    assert weights.pinned_sha256("prefixed") == sha[:8]
    source.write_bytes(data + b"!")
    with pytest.raises(WeightsError, match=f"expected sha256 {sha[:8]}…"):
        weights.import_file(source, "prefixed")


def test_package_file_entries_are_verified_by_full_sha256(home):
    shipped = Path(weights.__file__).resolve().parent / "errors.py"
    sha = weights.hash_file(shipped)
    weights.register_weights(
        weights.WeightsEntry(name="shipped", file_name="errors.py", package_file="errors.py", sha256=sha)
    )
    assert weights.resolve("shipped") == shipped
    with pytest.raises(WeightsError, match="inside the avbench package"):
        weights.import_file(shipped, "shipped")
    weights.register_weights(
        weights.WeightsEntry(name="shipped-bad", file_name="errors.py", package_file="errors.py", sha256="0" * 64)
    )
    with pytest.raises(WeightsError, match=sha):
        weights.resolve("shipped-bad")


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(file_name="../evil.bin", sha256="0" * 64), "plain file name"),
        (dict(file_name="ok.bin", sha256="XYZ"), "hex"),
        (dict(file_name="ok.bin", sha256_prefix="abc"), "hex"),
        (dict(file_name="ok.bin", package_file="synth/w.safetensors", sha256_prefix="0" * 8), "full sha256"),
        (dict(file_name="ok.bin", package_file="../outside.bin", sha256="0" * 64), "inside the package"),
        (dict(file_name="ok.bin", sha256="0" * 64, url="http://insecure.example/x"), "https"),
    ],
)
def test_registration_is_validated(home, fields, message):
    with pytest.raises(WeightsError, match=message):
        weights.register_weights(weights.WeightsEntry(name="bad", **fields))


def test_conflicting_registration_is_refused(blob):
    with pytest.raises(WeightsError, match="already registered"):
        weights.register_weights(weights.WeightsEntry(name=NAME, file_name="other.bin", sha256="1" * 64))


def test_builtin_facts_and_unpinned_entries(home, tmp_path):
    assert (
        weights.pinned_sha256("inception-v3-compat")
        == "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
    )
    b32 = weights.entry("clip-vit-b32-openai")
    assert b32.url.split("/")[-2] == b32.sha256  # OpenAI embeds the full digest in the URL
    source = tmp_path / "vgg.pth"
    source.write_bytes(b"x")
    for call in (
        lambda: weights.resolve("inception-v3-vggsound"),
        lambda: weights.import_file(source, "inception-v3-vggsound"),
        lambda: weights.download("inception-v3-vggsound"),
    ):
        with pytest.raises(WeightsError, match="no published hash"):
            call()


def test_entries_declared_by_entry_points(home, tmp_path):
    """A plugin's weights entry point is found in a fresh process; one naming another entry is refused."""
    site = tmp_path / "site"
    (site / "plugin_weights.py").parent.mkdir(parents=True)
    (site / "plugin_weights.py").write_text(
        "from avbench.weights import WeightsEntry\n"
        "WEIGHTS = WeightsEntry(name='plugin-weights', file_name='plugin.bin', sha256='2' * 64)\n"
    )
    dist = site / "plugin_weights-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-weights\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[avbench.weights]\nplugin-weights = plugin_weights:WEIGHTS\nother-name = plugin_weights:WEIGHTS\n"
    )
    code = (
        "from avbench import weights\n"
        "print(weights.entry('plugin-weights').file_name, 'plugin-weights' in weights.names())\n"
        "try:\n    weights.entry('other-name')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "plugin.bin True"
    assert second.startswith("WeightsError") and "entry is named 'plugin-weights'" in second
