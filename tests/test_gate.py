"""The CI gate (`avbench compare`) fed hostile candidates, and suites that reuse a built-in name."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

import avbench.leaderboards as lb
from avbench.cli import invoke
from avbench.defaults import SCHEMA_VERSION
from avbench.errors import RecordError
from avbench.record import Counts, MetricEntry, ModelInfo, Record, SuiteInfo, dumps, spec_sha256
from avbench.suites.spec import load_suite, read_suite_file

METRICS = [("CRS[clip-synth]", 0.8, True), ("R@2*[clip-synth]", 0.6, True), ("FD[clip-synth]", 52.9, False)]
ITEMS = 12


def table_text() -> str:
    rows = [f"i{k:02d},generate,ok,,{0.8 + k / 100},{0.6},{k}" for k in range(ITEMS)]
    return "item,task,status,reason," + ",".join(name for name, _, _ in METRICS) + "\n" + "\n".join(rows) + "\n"


def record(spec: str = "c" * 64) -> Record:
    return Record(
        schema_version=SCHEMA_VERSION,
        avbench_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        run_key="1" * 64,
        model=ModelInfo("avgas", "1", "m:M", None, None, False),
        suite=SuiteInfo("synth-mixed2", "1.0.0", 1, "synth-mixed2.jsonl", "a" * 64, "b" * 64, "synth", spec),
        tasks=["generate"],
        seed=0,
        n=Counts(original=ITEMS, effective=ITEMS),
        metrics=[
            MetricEntry(name, value, higher, "clip-synth", "test", "generate", 1, ITEMS)
            for name, value, higher in METRICS
        ],
        item_scores_sha256=hashlib.sha256(table_text().encode()).hexdigest(),
        bootstrap={},
        device="cpu",
        batch_size=8,
    )


def write_run(folder: Path, obj: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(obj))  # json.dumps writes NaN and Infinity as Python reads them
    (folder / "items.csv").write_text(table_text())
    return folder


HOSTILE = {
    "NaN": lambda entry: entry.update(value=float("nan")),
    "null": lambda entry: entry.update(value=None),
    "missing": lambda entry: entry.pop("value"),
    "infinite": lambda entry: entry.update(value=float("inf") if entry["higher_is_better"] else float("-inf")),
    "string": lambda entry: entry.update(value=str(entry["value"])),
}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("metric", [name for name, _, _ in METRICS])
def test_a_candidate_value_that_is_not_a_number_fails_the_gate_naming_the_metric(
    metric, kind, strict, tmp_path, capsys
):
    base = write_run(tmp_path / "base", record().to_dict())
    assert invoke(["compare", str(base), str(base)]) == 0
    candidate = record().to_dict()
    HOSTILE[kind](next(entry for entry in candidate["metrics"] if entry["name"] == metric))
    cand = write_run(tmp_path / "cand", candidate)
    capsys.readouterr()
    code = invoke(["compare", str(base), str(cand)] + (["--strict"] if strict else []))
    output = capsys.readouterr()
    assert code != 0
    assert metric in output.out + output.err
    assert "Traceback" not in output.out + output.err


def test_a_metric_missing_from_the_candidate_fails_the_gate(tmp_path, capsys):
    base = write_run(tmp_path / "base", record().to_dict())
    candidate = record().to_dict()
    candidate["metrics"] = candidate["metrics"][1:]
    cand = write_run(tmp_path / "cand", candidate)
    assert invoke(["compare", str(base), str(cand)]) == 1
    assert f"{METRICS[0][0]}: missing" in capsys.readouterr().out


@pytest.fixture
def renamed_spec(tmp_path) -> Path:
    """synth-sep's spec, its name kept, its separation metric given other options."""
    spec = json.loads(Path(load_suite("synth-sep").spec_dir, "synth-sep.json").read_text("utf-8"))
    spec["metrics"][0]["options"] = {"permutation": True, "filter_length": 16}
    path = tmp_path / "synth-sep.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_spec_reusing_a_built_in_name_is_another_suite(renamed_spec, tmp_path, capsys):
    official, modified = spec_sha256(load_suite("synth-sep")), spec_sha256(read_suite_file(renamed_spec))
    assert read_suite_file(renamed_spec).name == "synth-sep" and official != modified
    base = write_run(tmp_path / "base", record(official).to_dict())
    cand = write_run(tmp_path / "cand", record(modified).to_dict())
    assert invoke(["compare", str(base), str(cand)]) == 2
    assert "different suite spec (sha256)" in capsys.readouterr().out
    with pytest.raises(RecordError, match="differ in suite, spec"):
        lb.leaderboard([record(official), dataclasses.replace(record(modified), run_key="2" * 64)])


def test_a_record_given_twice_is_one_row(tmp_path):
    run = write_run(tmp_path / "run", record().to_dict())
    assert len(lb.leaderboard([lb.load_record(run), lb.load_record(run / "record.json")])) == 1


def test_a_copied_record_reads_its_own_table_never_a_neighbours(tmp_path, capsys):
    folder = tmp_path / "baselines"
    write_run(folder, record().to_dict())  # another run's record.json and items.csv
    (folder / "items.csv").write_text(table_text().replace(",0.6,", ",0.1,"))
    (folder / "synth-mixed2.record.json").write_text(dumps(record()))
    assert (
        invoke(
            ["compare", str(folder / "synth-mixed2.record.json"), str(folder / "synth-mixed2.record.json"), "--strict"]
        )
        == 2
    )
    assert "synth-mixed2.items.csv" in capsys.readouterr().err
    (folder / "synth-mixed2.items.csv").write_text(table_text())
    assert (
        invoke(
            ["compare", str(folder / "synth-mixed2.record.json"), str(folder / "synth-mixed2.record.json"), "--strict"]
        )
        == 0
    )
