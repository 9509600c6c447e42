"""Fuzzing the three readers of untrusted files: manifests, suite specs and records.

Whatever the input, a reader either returns a value or raises one of avbench's
documented errors (an AvbenchError subclass) that names what is wrong; any
other exception is a crash. Inputs: random bytes, random JSON values, and
valid inputs with a few values replaced, deleted or retyped, or bytes flipped.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import parser_samples
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avbench.defaults import SCHEMA_VERSION
from avbench.errors import AvbenchError, ManifestError, RecordError, SuiteError
from avbench.record import from_dict, load_record
from avbench.suites.manifest import parse_manifest
from avbench.suites.spec import parse_suite, read_suite_file

pytestmark = pytest.mark.timeout(300)
FUZZ = settings(max_examples=500, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)

VALID_LINES = parser_samples.manifest_lines()
VALID_SPEC = parser_samples.suite_spec()
VALID_RECORD = parser_samples.record().to_dict()


def places(obj):
    """Every (container, key) pair inside a JSON value."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield obj, key
        yield from places(value)


@st.composite
def mutated(draw, valid):
    """`valid` with one to three values replaced by random JSON, deleted, or given a random new key."""
    obj = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        spots = list(places(obj))
        if not spots:
            break
        container, key = draw(st.sampled_from(spots))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            container[key] = draw(json_values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(max_size=10))] = draw(json_values)
        else:
            container.insert(key, draw(json_values))
    return obj


@st.composite
def flipped(draw, data: bytes):
    """`data` with a few bytes overwritten, cut or inserted."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


def lines(values) -> bytes:
    return "".join(json.dumps(v, allow_nan=True) + "\n" for v in values).encode("utf-8")


def survives(read, error: type[AvbenchError], *args) -> None:
    """Run a reader: a result or its documented error are fine; anything else propagates and fails the test."""
    try:
        read(*args)
    except error as exc:
        assert str(exc), "an error must say what is wrong"


# -- manifests -----------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
def test_manifest_parser_on_random_bytes(data):
    survives(parse_manifest, ManifestError, data, "m.jsonl")


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=3))
def test_manifest_parser_on_random_json_lines(values):
    survives(parse_manifest, ManifestError, lines(values), "m.jsonl")


@FUZZ
@given(st.sampled_from(VALID_LINES).flatmap(lambda line: mutated(json.loads(line))))
def test_manifest_parser_on_mutated_valid_items(item):
    survives(parse_manifest, ManifestError, lines([item]), "m.jsonl")


@FUZZ
@given(st.sampled_from(VALID_LINES).flatmap(lambda line: flipped(line.encode("utf-8"))))
def test_manifest_parser_on_corrupted_valid_lines(data):
    survives(parse_manifest, ManifestError, data, "m.jsonl")


# -- suite specs ---------------------------------------------------------------


@FUZZ
@given(json_values)
def test_suite_parser_on_random_json(obj):
    survives(parse_suite, SuiteError, obj, "s.json", "/nonexistent")


@FUZZ
@given(mutated(VALID_SPEC))
def test_suite_parser_on_mutated_valid_specs(obj):
    survives(parse_suite, SuiteError, obj, "s.json", "/nonexistent")


@FUZZ
@given(flipped(json.dumps(VALID_SPEC).encode("utf-8")))
def test_suite_reader_on_corrupted_spec_files(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.json"
        path.write_bytes(data)
        survives(read_suite_file, SuiteError, path)


# -- records -------------------------------------------------------------------


@FUZZ
@given(
    json_values
    | st.dictionaries(st.sampled_from(sorted(VALID_RECORD)), json_values).map(
        lambda d: {**d, "schema_version": SCHEMA_VERSION}
    )
)
def test_record_loader_on_random_json(obj):
    survives(from_dict, RecordError, obj)


@FUZZ
@given(mutated(VALID_RECORD))
def test_record_loader_on_mutated_valid_records(obj):
    survives(from_dict, RecordError, obj)


@FUZZ
@given(flipped(json.dumps(VALID_RECORD).encode("utf-8")))
def test_record_reader_on_corrupted_record_files(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "record.json"
        path.write_bytes(data)
        survives(load_record, RecordError, path)


def test_the_valid_samples_parse():
    """The mutation seeds are themselves valid, so mutations explore near the valid region."""
    assert len(parse_manifest("\n".join(VALID_LINES).encode(), "m.jsonl")) == 3
    assert parse_suite(VALID_SPEC, "s.json", "/nonexistent").name == "synth-mixed2"
    assert from_dict(VALID_RECORD).to_dict() == VALID_RECORD


# -- inputs the fuzzer's strategies rarely reach, found by reading the parsers ---------

HUGE_INT = "1" * 5000  # beyond Python's int-from-string limit: json.loads raises a bare ValueError
HUGE_FLOAT_INT = "1" * 400  # parses as an int too large for float()


@pytest.mark.parametrize(
    "read, error, make",
    [
        pytest.param(
            parse_manifest,
            ManifestError,
            lambda folder: (f'{{"id": "a", "seed": {HUGE_INT}}}\n'.encode(), "m.jsonl"),
            id="manifest-huge-int",
        ),
        pytest.param(
            parse_manifest,
            ManifestError,
            lambda folder: (line_with_source_field("gain_db", HUGE_FLOAT_INT), "m.jsonl"),
            id="manifest-huge-gain",
        ),
        pytest.param(
            parse_manifest,
            ManifestError,
            lambda folder: (line_with_source_field("start", HUGE_FLOAT_INT), "m.jsonl"),
            id="manifest-huge-start",
        ),
        pytest.param(
            parse_suite,
            SuiteError,
            lambda folder: ({**VALID_SPEC, "clip_seconds": int(HUGE_FLOAT_INT)}, "s.json", "/x"),
            id="suite-huge-clip-seconds",
        ),
        pytest.param(
            read_suite_file,
            SuiteError,
            lambda folder: (write(folder, "s.json", f'{{"a": {HUGE_INT}}}'),),
            id="suite-file-huge-int",
        ),
        pytest.param(
            from_dict, RecordError, lambda folder: (record_with_value(int(HUGE_FLOAT_INT)),), id="record-huge-number"
        ),
        pytest.param(
            load_record,
            RecordError,
            lambda folder: (write(folder, "record.json", f'{{"a": {HUGE_INT}}}'),),
            id="record-file-huge-int",
        ),
    ],
)
def test_huge_numbers_are_documented_errors(read, error, make, tmp_path):
    survives(read, error, *make(tmp_path))


def write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


def line_with_source_field(field: str, number: str) -> bytes:
    item = json.loads(VALID_LINES[0])
    item["sources"][0][field] = 0
    return json.dumps(item).replace(f'"{field}": 0', f'"{field}": {number}').encode() + b"\n"


def record_with_value(value) -> dict:
    obj = copy.deepcopy(VALID_RECORD)
    obj["metrics"][0]["value"] = value
    return obj
