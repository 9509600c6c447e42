"""Records of another schema version are refused by name; records of this one round-trip exactly."""

from __future__ import annotations

import json

import parser_samples
import pytest

from avbench.defaults import SCHEMA_VERSION
from avbench.errors import RecordError
from avbench.record import dumps, from_dict, load_record

pytestmark = pytest.mark.timeout(120)


def write_record(folder, obj) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "record.json").write_text(json.dumps(obj))


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1, 99, "1", 1.5, None])
def test_other_schema_versions_are_refused_naming_both_versions(version, tmp_path):
    obj = {**parser_samples.record().to_dict(), "schema_version": version}
    write_record(tmp_path / "run", obj)
    for read in (lambda: from_dict(obj), lambda: load_record(tmp_path / "run")):
        with pytest.raises(RecordError) as caught:
            read()
        message = str(caught.value)
        assert f"record schema version {version!r} cannot be read" in message
        assert f"reads schema version {SCHEMA_VERSION}" in message


def test_the_command_line_refuses_an_old_record_with_exit_2(fork_server, tmp_path):
    write_record(tmp_path / "old", {**parser_samples.record().to_dict(), "schema_version": 0})
    (result,) = fork_server.run({"args": ["show", str(tmp_path / "old")], "log": tmp_path / "show.log"})
    assert result.exit == 2
    assert (
        f"record schema version 0 cannot be read by this avbench, which reads schema version {SCHEMA_VERSION}"
        in " ".join(result.log.split())
    )
    assert "Traceback" not in result.log


def test_a_current_record_round_trips_exactly(tmp_path):
    record = parser_samples.record()
    text = dumps(record)
    (tmp_path / "record.json").write_text(text)
    loaded = load_record(tmp_path / "record.json")
    assert loaded == record
    assert dumps(loaded) == text
    assert from_dict(json.loads(text)) == record
    assert loaded.comparable() == record.comparable()


def test_a_record_missing_an_optional_field_loads_with_its_default(tmp_path):
    """Fields added with a default in this schema version may be absent from files written before them."""
    obj = parser_samples.record().to_dict()
    del obj["calls"], obj["failures"]
    loaded = from_dict(obj)
    assert loaded.calls == {} and loaded.failures == []
