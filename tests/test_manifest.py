import json
import os

import pytest

from avbench.errors import DataError, ManifestError
from avbench.suites.manifest import dump_items, parse_manifest, resolve_inside


def _item(**overrides):
    item = {
        "id": "x-1",
        "seed": 3,
        "labels": ["dog barking", "siren wailing"],
        "mix": "equal-rms-mean",
        "sources": [
            {"clip": "a", "label": "dog barking", "path": "audio/a.wav"},
            {"clip": "b", "label": "siren wailing", "path": "audio/b.wav", "start": 1.5, "gain_db": -3.0},
        ],
    }
    item.update(overrides)
    return item


def _bytes(*items):
    return dump_items(list(items))


def test_valid_manifest_round_trips():
    (item,) = parse_manifest(_bytes(_item()), "m.jsonl")
    assert item.labels == ("dog barking", "siren wailing")
    assert item.sources[1].start == 1.5 and item.sources[1].gain_db == -3.0
    assert item.num_sources == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"id": "bad id!"}, "line 2: field 'id'"),
        ({"seed": -1}, "line 2: field 'seed'"),
        ({"seed": True}, "line 2: field 'seed'"),
        ({"labels": []}, "line 2: field 'labels'"),
        ({"labels": ["a", "a"]}, "line 2: field 'labels' repeats"),
        ({"mix": "loud"}, "line 2: field 'mix'"),
        ({"sources": [{"clip": "a", "label": "dog barking"}]}, "line 2: sources\\[0\\]: missing field 'path'"),
        ({"sources": [{"clip": "a", "label": "cat", "path": "a.wav"}]}, "sources\\[0\\]: field 'label'"),
        ({"sources": [{"clip": "a", "path": "a.wav", "start": -1}]}, "sources\\[0\\]: field 'start' must be >= 0"),
        (
            {"sources": [{"clip": "a", "path": "a.wav", "gain_db": float("nan")}]},
            "field 'gain_db' must be a finite number",
        ),
    ],
)
def test_bad_fields_name_the_line_and_field(overrides, message):
    data = _bytes(_item(id="ok-1"), _item(**overrides))
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data, "m.jsonl")


@pytest.mark.parametrize("path", ["../x.wav", "audio/../../x.wav", "/etc/passwd", "C:/x.wav", "a\\b.wav"])
def test_paths_must_stay_inside_the_root(path):
    item = _item(sources=[{"clip": "a", "label": "dog barking", "path": path}])
    with pytest.raises(ManifestError, match="line 1"):
        parse_manifest(_bytes(item), "m.jsonl")


def test_invalid_json_and_duplicates_name_the_line():
    with pytest.raises(ManifestError, match="m.jsonl line 2: invalid JSON"):
        parse_manifest(_bytes(_item()) + b"{not json\n", "m.jsonl")
    with pytest.raises(ManifestError, match="line 2: field 'id' = 'x-1' repeats line 1"):
        parse_manifest(_bytes(_item(), _item()), "m.jsonl")
    with pytest.raises(ManifestError, match="no items"):
        parse_manifest(b"\n", "m.jsonl")


def test_symlink_leaving_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "audio").mkdir(parents=True)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"x")
    os.symlink(outside, root / "audio" / "a.wav")
    with pytest.raises(DataError, match="outside the data root"):
        resolve_inside(root, "audio/a.wav", "item x")
    (root / "audio" / "b.wav").write_bytes(b"y")
    assert resolve_inside(root, "audio/b.wav", "item x").read_bytes() == b"y"


def test_dump_is_canonical():
    item = _item()
    shuffled = json.loads(json.dumps(item))
    assert _bytes(item) == _bytes(dict(reversed(list(shuffled.items()))))
