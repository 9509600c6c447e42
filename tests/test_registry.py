import sys
import subprocess
from pathlib import Path

import pytest

from avbench.errors import RegistryError
from avbench.models.base import Model
from avbench.registry import Registry, models


def test_builtin_models_come_from_entry_points():
    assert {"oracle", "oracle-one", "random", "mixture"} <= set(models.names())
    assert issubclass(models.get("oracle"), Model)


def test_unknown_name_suggests_close_names():
    with pytest.raises(RegistryError, match=r"Did you mean 'oracle'"):
        models.get("oracel")


def test_lazy_target_is_imported_only_on_get_and_base_is_checked():
    registry = Registry("thing", group=None, base=Model)
    registry.register("not-a-model", "collections:OrderedDict")
    assert "collections:OrderedDict" not in sys.modules.get("avbench.registry").__dict__.values()
    with pytest.raises(RegistryError, match="not a Model"):
        registry.get("not-a-model")


@pytest.mark.parametrize("name", ["../x", "a/b", "", " x", "os:system"])
def test_path_like_names_are_refused(name):
    with pytest.raises(RegistryError):
        Registry("thing", group=None).register(name, "os:getcwd")


def test_unregistered_names_are_never_imported():
    """A name that looks like a module path is looked up, not imported."""
    with pytest.raises(RegistryError, match="unknown model"):
        models.get("os:system")
    with pytest.raises(RegistryError, match="unknown model"):
        models.get("tests.plugin.avbench_echo")


def test_malformed_target_is_refused():
    with pytest.raises(RegistryError, match="module:attr"):
        Registry("thing", group=None).register("ok", "no colon here")


@pytest.mark.timeout(300)
def test_third_party_plugin_installs_and_runs(tmp_path):
    """A package in tests/plugin registers a model by entry point; avbench runs it unchanged."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(Path(__file__).parent / "plugin")],
        check=True,
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(target)}
    listing = subprocess.run([sys.executable, "-m", "avbench", "list", "models", "--json"], env=env, capture_output=True, text=True, check=True)
    assert '"echo-sep"' in listing.stdout
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "avbench", "run", "--model", "echo-sep", "--suite", "synth-sep", "--limit", "6", "--out", str(out)],
        env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    from avbench.record import load_record

    record = load_record(out)
    assert record.model.name == "echo-sep" and record.n.effective == 6
    # Equal shares of the mixture: each estimate is half of s1 + s2, a poor but finite separation.
    assert record.metric("SDR[bss-v3]").value < 10
