import json
import re
from importlib import resources

import pytest

from avbench import builtins, registry
from avbench.errors import SuiteError
from avbench.suites.spec import load_suite, read_suite_file


def test_synthetic_suites_load_and_match_their_pinned_hash():
    for name in ("synth-single", "synth-mixed2", "synth-sep"):
        suite = load_suite(name)
        card = suite.card()
        assert card["items"] == len(suite.items) > 0
        assert card["classes"] == 10
    mixed = load_suite("synth-mixed2")
    assert all(len(item.labels) == 2 and item.labels[0] != item.labels[1] for item in mixed.items)


def test_unknown_suite_suggests():
    with pytest.raises(SuiteError, match="Did you mean 'synth-mixed2'"):
        load_suite("synth-mixd2")


def test_tampered_manifest_is_refused(tmp_path):
    suite = load_suite("synth-sep")
    data = suite.manifest_bytes().replace(b"synth-sep-00000", b"synth-sep-99999", 1)
    raw = json.loads((resources.files("avbench.suites") / "specs" / "synth-sep.json").read_text())
    raw["name"] = "tampered"
    raw["manifest"] = "tampered.jsonl"
    (tmp_path / "tampered.jsonl").write_bytes(data)
    (tmp_path / "tampered.json").write_text(json.dumps(raw))
    with pytest.raises(SuiteError, match="was modified"):
        _ = read_suite_file(tmp_path / "tampered.json").items


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tasks": ["draw"]}, "field 'tasks'"),
        ({"protocol": 2}, "protocol 2 is not supported"),
        ({"manifest": "../x.jsonl"}, "bare file name"),
        ({"classes": ["a", "a"]}, "field 'classes'"),
        ({"metrics": [{"metric": "separation", "task": "generate"}]}, "not one of the suite's tasks"),
    ],
)
def test_bad_suite_specs_are_refused(tmp_path, change, message):
    raw = json.loads((resources.files("avbench.suites") / "specs" / "synth-sep.json").read_text())
    raw.update(change)
    (tmp_path / "s.json").write_text(json.dumps(raw))
    with pytest.raises(SuiteError, match=message):
        read_suite_file(tmp_path / "s.json")


def test_builtin_names_include_the_synthetic_suites():
    assert {"synth-single", "synth-mixed2", "synth-sep"} <= set(registry.suites.names())


@pytest.mark.parametrize("name", sorted(builtins.SUITES))
def test_every_builtin_suite_resolves_every_metric_option_and_backbone(name):
    suite = load_suite(name)
    for spec in suite.metrics:
        metric = registry.metrics.get(spec.metric)
        assert spec.task in metric.tasks
        for option in set(spec.options) & metric.backbone_options:
            assert registry.backbones.get(spec.options[option]).name == spec.options[option]


def _spec_with_metric(tmp_path, metric: dict):
    raw = json.loads((resources.files("avbench.suites") / "specs" / "synth-mixed2.json").read_text())
    raw["metrics"] = [metric]
    (tmp_path / "s.json").write_text(json.dumps(raw))
    (tmp_path / raw["manifest"]).write_bytes(load_suite("synth-mixed2").manifest_bytes())
    return str(tmp_path / "s.json")


@pytest.mark.parametrize(
    "metric, message",
    [
        ({"metric": "clip-retreival", "task": "generate"}, "Did you mean 'clip-retrieval'"),
        (
            {"metric": "clip-retrieval", "task": "generate", "options": {"backbone": "clip-synt"}},
            "option 'backbone': unknown backbone 'clip-synt'. Did you mean 'clip-synth'",
        ),
        (
            {"metric": "clip-retrieval", "task": "generate", "options": {"templtes": ["a {c}"]}},
            "unknown option 'templtes'. Did you mean 'templates'",
        ),
        (
            {"metric": "fidelity", "task": "generate", "options": {"kid_subset_size": "100"}},
            "option 'kid_subset_size' has the wrong type",
        ),
        ({"metric": "separation", "task": "generate"}, "does not score task 'generate'"),
    ],
)
def test_a_spec_naming_what_does_not_exist_is_refused_when_it_loads(tmp_path, metric, message):
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_suite(_spec_with_metric(tmp_path, metric))
