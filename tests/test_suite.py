import json
from importlib import resources

import pytest

from avbench.data.suite import builtin_suite_names, load_suite, read_suite_file
from avbench.errors import SuiteError


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
    raw = json.loads((resources.files("avbench.data") / "suites" / "synth-sep.json").read_text())
    raw["name"] = "tampered"
    raw["manifest"] = "tampered.jsonl"
    (tmp_path / "tampered.jsonl").write_bytes(data)
    (tmp_path / "tampered.json").write_text(json.dumps(raw))
    with pytest.raises(SuiteError, match="was modified"):
        read_suite_file(tmp_path / "tampered.json").items


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
    raw = json.loads((resources.files("avbench.data") / "suites" / "synth-sep.json").read_text())
    raw.update(change)
    (tmp_path / "s.json").write_text(json.dumps(raw))
    with pytest.raises(SuiteError, match=message):
        read_suite_file(tmp_path / "s.json")


def test_builtin_names_include_the_synthetic_suites():
    assert {"synth-single", "synth-mixed2", "synth-sep"} <= set(builtin_suite_names())
