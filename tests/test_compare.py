"""The regression gate: exit codes, tolerances and the paired bootstrap."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from metric_entries import metric_entry
from scipy.stats import norm

from avbench.compare import compare, drop_p_value, format_comparison
from avbench.defaults import SCHEMA_VERSION
from avbench.errors import RecordError
from avbench.record import Counts, MetricEntry, ModelInfo, Record, SuiteInfo, dumps, items_path, load_items, parse_items

SDR, FID = "SDR[bss-v3]", "FID[inception-v3-compat]"
N = 60


def entry(name: str, value: float | None, higher: bool) -> MetricEntry:
    return metric_entry(name, value, higher, task="separate_audio", n=N)


def record(
    sdr: float | None,
    fid: float = 20.0,
    manifest: str = "a" * 64,
    failed: int = 0,
    run: str = "1" * 64,
    spec: str = "c" * 64,
) -> Record:
    return Record(
        schema_version=SCHEMA_VERSION,
        avbench_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        run_key=run,
        model=ModelInfo("davis", "1", "m:M", None, None, False),
        suite=SuiteInfo("music-2mix", "1", 1, "music-2mix.jsonl", manifest, "b" * 64, "data", spec),
        tasks=["separate_audio"],
        seed=0,
        n=Counts(original=N, effective=N, failed=failed),
        metrics=[entry(SDR, sdr, True), entry(FID, fid, False)],
        item_scores_sha256="d" * 64,
        bootstrap={},
        device="cpu",
        batch_size=8,
    )


def items(scores: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item": [f"m{i:03d}" for i in range(len(scores))],
            "task": "separate_audio",
            "status": "ok",
            "reason": "",
            SDR: scores,
        }
    )


@pytest.fixture
def base_scores() -> np.ndarray:
    return np.random.default_rng(1).normal(6.0, 2.0, N)


def verdicts(result) -> dict[str, str]:
    return dict(zip(result.table()["metric"], result.table()["verdict"], strict=False))


def test_record_against_itself_passes(base_scores):
    base = record(base_scores.mean())
    result = compare(base, base, items(base_scores), items(base_scores), {}, strict=True)
    assert result.exit_code == 0 and result.reason == ""
    assert set(verdicts(result).values()) == {"same"}
    assert result.table().set_index("metric").loc[SDR, "p_value"] == 1.0  # no resample shows a drop


def test_clearly_worse_candidate_fails_in_either_direction():
    result = compare(record(6.0), record(3.0), None, None, {}, strict=False)
    assert result.exit_code == 1 and verdicts(result)[SDR] == "regressed"
    assert result.table().set_index("metric").loc[SDR, "delta"] == -3.0
    worse_fid = compare(record(6.0), record(6.0, fid=25.0), None, None, {}, strict=False)
    assert worse_fid.exit_code == 1 and verdicts(worse_fid) == {SDR: "same", FID: "regressed", "failed items": "same"}
    better = compare(record(6.0), record(7.0, fid=15.0), None, None, {}, strict=False)
    assert better.exit_code == 0 and verdicts(better)[FID] == "better"
    assert "REGRESSION" in format_comparison(result) and "exit 1" in format_comparison(result)


def test_tolerance_lets_a_small_drop_pass():
    assert compare(record(6.0), record(5.8), None, None, {"SDR": 0.5}, strict=False).exit_code == 0
    assert compare(record(6.0), record(5.8), None, None, {SDR: 0.1, "SDR": 0.5}, strict=False).exit_code == 1
    with pytest.raises(RecordError, match="matches no metric"):
        compare(record(6.0), record(5.8), None, None, {"SIR": 0.5}, strict=False)


def test_strict_bootstrap_flags_a_consistent_small_drop(base_scores):
    cand_scores = base_scores - 0.05  # every item a little worse
    base, cand = record(base_scores.mean()), record(cand_scores.mean())
    loose = compare(base, cand, items(base_scores), items(cand_scores), {"SDR": 0.1}, strict=False)
    assert loose.exit_code == 0 and verdicts(loose)[SDR] == "worse, within tolerance"
    strict = compare(base, cand, items(base_scores), items(cand_scores), {"SDR": 0.1}, strict=True)
    assert strict.exit_code == 1 and verdicts(strict)[SDR] == "significant drop"
    assert strict.changes[0].p_value == pytest.approx(1 / 1001) and strict.changes[0].n_paired == N


def test_strict_bootstrap_passes_noise_without_a_drop(base_scores):
    cand_scores = base_scores + np.where(np.arange(N) % 2, 0.3, -0.3)  # mean gain exactly 0 up to rounding
    cand_scores[0] -= 0.01  # a tiny net drop that noise explains
    base, cand = record(base_scores.mean()), record(cand_scores.mean())
    result = compare(base, cand, items(base_scores), items(cand_scores), {"SDR": 0.1}, strict=True)
    assert result.exit_code == 0 and result.changes[0].p_value > 0.2


def test_items_are_matched_by_id_not_order(base_scores):
    cand_items = items(base_scores - 0.05).iloc[::-1].reset_index(drop=True)
    cand_items.loc[0, SDR] = np.nan  # a degenerate item is left out of the pairing
    result = compare(record(6.0), record(6.0), items(base_scores), cand_items, {}, strict=True)
    assert result.changes[0].n_paired == N - 1 and result.changes[0].p_value == pytest.approx(1 / 1001)


def test_p_value_matches_the_normal_approximation():
    gain = np.random.default_rng(7).normal(-0.05, 1.0, 400)
    p = drop_p_value(np.zeros(400), gain, higher_is_better=True, resamples=4000, seed=3)
    # P(bootstrap mean >= 0) ~ 1 - Phi(-mean / se), se with the population std
    expected = norm.sf(-gain.mean() / (gain.std() / math.sqrt(len(gain))))
    assert abs(p - expected) < 0.03
    assert p == drop_p_value(np.zeros(400), gain, True, resamples=4000, seed=3)  # seeded


def test_records_that_cannot_be_compared_exit_2():
    result = compare(record(6.0), record(6.0, manifest="c" * 64), None, None, {}, strict=False)
    assert result.exit_code == 2 and "manifest" in result.reason and "aaaaaaaaaaaa" in result.reason
    other = record(6.0)
    other.suite = dataclasses.replace(other.suite, name="ave-2mix", items_sha256="d" * 64)
    result = compare(record(6.0), other, None, None, {}, strict=False)
    assert result.exit_code == 2 and "suite: base music-2mix vs candidate ave-2mix" in result.reason
    assert "evaluated items" in result.reason
    assert "CANNOT COMPARE" in format_comparison(result)
    no_items = compare(record(6.0), record(6.0), None, None, {}, strict=True)
    assert no_items.exit_code == 2 and "items.csv" in no_items.reason


def test_lost_metrics_and_more_failures_regress():
    base, cand = record(6.0), record(6.0)
    cand.metrics = cand.metrics[1:]
    assert verdicts(compare(base, cand, None, None, {}, strict=False))[SDR] == "missing"
    assert verdicts(compare(base, record(None), None, None, {}, strict=False))[SDR] == "lost"
    assert compare(record(None), record(None), None, None, {}, strict=False).exit_code == 1  # no value never passes
    more_failed = compare(base, record(6.0, failed=2), None, None, {}, strict=False)
    assert more_failed.exit_code == 1 and verdicts(more_failed)["failed items"] == "regressed"
    assert compare(base, record(6.0, failed=2), None, None, {"failed": 2}, strict=False).exit_code == 0


def test_parse_items_types_and_checks_the_table():
    table = parse_items(
        f"item,task,status,reason,{SDR}\n007,separate_audio,ok,,5.5\n008,separate_audio,failed,timeout,\n".encode(),
        Path("items.csv"),
    )
    assert list(table["item"]) == ["007", "008"]  # ids stay strings
    assert table[SDR].iloc[0] == 5.5 and math.isnan(table[SDR].iloc[1])
    with pytest.raises(RecordError, match="status 'done'"):
        parse_items(f"item,task,status,reason,{SDR}\n1,t,done,,5\n".encode(), Path("items.csv"))
    with pytest.raises(RecordError, match="not a number"):
        parse_items(f"item,task,status,reason,{SDR}\n1,t,ok,,five\n".encode(), Path("items.csv"))


@pytest.mark.parametrize(
    "name, table",
    [("record.json", "items.csv"), ("random.record.json", "random.items.csv"), ("base.json", "base.items.csv")],
)
def test_a_record_file_names_its_own_table(tmp_path, name, table):
    assert items_path(tmp_path / name) == tmp_path / table
    assert items_path(tmp_path) == tmp_path / "items.csv"  # a run directory


def test_a_table_of_another_run_is_refused_not_paired(tmp_path):
    text = f"item,task,status,reason,{SDR}\n1,separate_audio,ok,,5\n"
    mine = dataclasses.replace(record(6.0), item_scores_sha256=hashlib.sha256(text.encode()).hexdigest())
    (tmp_path / "random.record.json").write_text(dumps(mine))
    assert load_items(tmp_path / "random.record.json", mine) is None  # no random.items.csv: nothing is guessed
    (tmp_path / "random.items.csv").write_text(text)
    assert list(load_items(tmp_path / "random.record.json", mine)[SDR]) == [5.0]
    (tmp_path / "random.items.csv").write_text(text.replace(",5", ",9"))
    with pytest.raises(RecordError, match="is not the per-item table of"):
        load_items(tmp_path / "random.record.json", mine)
