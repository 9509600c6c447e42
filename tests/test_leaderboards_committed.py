"""The committed leaderboards (leaderboards/*.csv|md|tex) are what fresh runs of today's code produce.

This is `python leaderboards/build.py --check`, run on the session's shared
leaderboard runs; regenerate the tables with `python leaderboards/build.py`.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest


@pytest.mark.timeout(900)
@pytest.mark.parametrize("suite", ["synth-single", "synth-mixed2", "synth-sep"])
def test_committed_tables_match_fresh_records(leaderboard_runs, suite):
    build = leaderboard_runs.build
    records = leaderboard_runs.records(suite)
    assert {"oracle", "random"} <= set(records)  # the sanity models bracket every table
    fresh = build.tables(suite, list(records.values()))
    assert build.differences(fresh) == [], "run `python leaderboards/build.py` and commit the tables"


def test_check_tolerates_last_bit_noise_but_not_a_changed_number(leaderboard_runs):
    build = leaderboard_runs.build
    committed = (build.HERE / "synth-mixed2.csv").read_text("utf-8")
    table = pd.read_csv(io.StringIO(committed))

    def with_values(scale: float) -> str:
        changed = table.copy()
        changed["value"] = changed["value"] * scale
        return changed.to_csv(index=False)

    assert build._same_csv(committed, with_values(1 + 1e-9))
    assert not build._same_csv(committed, with_values(1 + 1e-3))
    assert not build._same_csv(committed, committed.replace("avgas", "avgas2"))
