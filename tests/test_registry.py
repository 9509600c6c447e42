import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from avbench import builtins
from avbench.errors import RegistryError
from avbench.models.base import Model
from avbench.registry import Registry, models

REPO = Path(__file__).resolve().parents[1]


def _fresh_python(code: str, cwd: Path, path: list[Path]) -> dict:
    """Run `code` in a new interpreter whose sys.path starts with `path`; it prints one JSON object."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path)), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_builtin_models_load_and_are_models():
    assert set(builtins.MODELS) <= set(models.names())
    assert issubclass(models.get("oracle"), Model)


def test_unknown_name_suggests_close_names():
    with pytest.raises(RegistryError, match=r"Did you mean 'oracle'"):
        models.get("oracel")


def test_a_loaded_target_is_checked_against_its_kind():
    registry = Registry("thing", "avbench.test-nothing", {}, check=lambda name, obj: f"{obj!r} is not a thing")
    registry.register("not-a-thing", "collections:OrderedDict")
    with pytest.raises(RegistryError, match="is not a thing"):
        registry.get("not-a-thing")


@pytest.mark.parametrize("name", ["../x", "a/b", "", " x", "os:system"])
def test_path_like_names_are_refused(name):
    with pytest.raises(RegistryError):
        Registry("thing", "avbench.test-nothing", {}).register(name, "os:getcwd")


def test_unregistered_names_are_never_imported():
    """A name that looks like a module path is looked up, not imported."""
    with pytest.raises(RegistryError, match="unknown model"):
        models.get("os:system")
    with pytest.raises(RegistryError, match="unknown model"):
        models.get("tests.plugin.avbench_echo")


def test_malformed_target_is_refused():
    with pytest.raises(RegistryError, match="module:attr"):
        Registry("thing", "avbench.test-nothing", {}).register("ok", "no colon here")


LIST_EVERY_KIND = """
    import json, sys
    import avbench
    from avbench import registry
    kinds = {r.kind: r.names() for r in (registry.models, registry.metrics, registry.backbones,
                                          registry.weights, registry.suites, registry.manifest_builders)}
    loaded = {r.kind: [type(r.get(n)).__name__ for n in r.names()]
              for r in (registry.models, registry.backbones, registry.weights, registry.suites)}
    print(json.dumps({"file": avbench.__file__, "kinds": kinds, "loaded": loaded}))
"""


def test_a_source_export_without_install_metadata_lists_and_loads_every_builtin(tmp_path):
    """`git archive` of the tree, put on sys.path: no *.dist-info, no entry points, every built-in found."""
    export = tmp_path / "export"
    export.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, archive.decode().split("\0")):
        source = REPO / name
        target = export / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    result = _fresh_python(LIST_EVERY_KIND, cwd=tmp_path, path=[export])
    assert result["file"] == str(export / "avbench" / "__init__.py")
    expected = {
        "model": builtins.MODELS,
        "metric": builtins.METRICS,
        "backbone": builtins.BACKBONES,
        "weights": builtins.WEIGHTS,
        "suite": builtins.SUITES,
        "manifest builder": builtins.MANIFEST_BUILDERS,
    }
    for kind, table in expected.items():
        assert set(table) <= set(result["kinds"][kind]), kind
    assert set(result["loaded"]["suite"]) == {"Suite"}
    assert set(result["loaded"]["weights"]) == {"WeightsEntry"}


LAZY = """
    import json, sys
    before = set(sys.modules)
    import avbench
    from avbench import registry
    names = {r.kind: r.names() for r in (registry.models, registry.metrics, registry.backbones,
                                          registry.weights, registry.manifest_builders)}
    listed = sorted(m for m in set(sys.modules) - before if m.startswith(("avbench.", "torch", "numpy")))
    registry.models.get("oracle")
    after_get = sorted(m for m in set(sys.modules) - before if m.startswith("avbench."))
    print(json.dumps({"listed": listed, "after_get": after_get}))
"""


def test_listing_imports_no_plugin_and_a_get_imports_only_its_module(tmp_path):
    result = _fresh_python(LAZY, cwd=tmp_path, path=[REPO])
    assert result["listed"] == ["avbench.builtins", "avbench.defaults", "avbench.errors", "avbench.registry"]
    assert "avbench.models.sanity" in result["after_get"]
    assert not [m for m in result["after_get"] if m.startswith(("avbench.baselines", "avbench.metrics"))]


PLUGIN = """
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from avbench import registry
        names = registry.models.names()
        oracle = registry.models.get("oracle")
    print(json.dumps({"names": names, "oracle": oracle.__module__, "warnings": [str(w.message) for w in caught]}))
"""


def test_a_third_party_name_never_shadows_a_builtin(tmp_path):
    site = tmp_path / "site"
    dist = site / "shadow-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[avbench.models]\noracle = shadow:Evil\nextra = shadow:Extra\n")
    result = _fresh_python(PLUGIN, cwd=tmp_path, path=[site, REPO])
    assert "extra" in result["names"]
    assert result["oracle"] == "avbench.models.sanity"
    assert any("'oracle' from shadow is ignored" in w for w in result["warnings"])


@pytest.mark.timeout(300)
def test_third_party_plugin_installs_and_runs(tmp_path):
    """A package in tests/plugin registers a model by entry point; avbench runs it unchanged."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(Path(__file__).parent / "plugin"),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    listing = subprocess.run(
        [sys.executable, "-m", "avbench", "list", "models", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"echo-sep"' in listing.stdout
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "avbench",
            "run",
            "--model",
            "echo-sep",
            "--suite",
            "synth-sep",
            "--limit",
            "6",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    from avbench.record import load_record

    record = load_record(out)
    assert record.model.name == "echo-sep" and record.n.effective == 6
    # Equal shares of the mixture: each estimate is half of s1 + s2, a poor but finite separation.
    assert record.metric("SDR[bss-v3]").value < 10
