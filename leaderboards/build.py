"""Regenerate the committed leaderboards from fresh runs.

    python leaderboards/build.py            # runs every model on every synthetic suite it supports, writes the tables
    python leaderboards/build.py --check    # exits 1 if the committed tables differ from fresh ones

Each table is `avbench leaderboard` over the records of one suite, so it is a
pure function of those records (kept under --runs, where a second build
resumes them). The check compares the Markdown and LaTeX tables as text, and
the CSV's full-precision numbers to a relative 1e-4, because float sums
differ in their last bits from one CPU to another.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import avbench
from avbench.leaderboards import render
from avbench.record import Record
from avbench.registry import models
from avbench.suites.spec import load_suite

HERE = Path(__file__).resolve().parent
SUITES = ("synth-single", "synth-mixed2", "synth-sep")
MODELS = ("oracle", "oracle-one", "random", "mixture", "sound2scene", "avgas", "macs", "davis")
FORMATS = {"csv": "csv", "md": "markdown", "tex": "latex"}
CSV_RTOL = 1e-4


def runnable(suite: str) -> list[str]:
    """The leaderboard's models that have a task of `suite`, in table order."""
    tasks = set(load_suite(suite).tasks)
    return [name for name in MODELS if name in models.names() and tasks & set(models.get(name).tasks)]


def run(model: str, suite: str, runs: Path) -> Record:
    """One model's record on one suite (resumed from --runs, features from its shared cache)."""
    return avbench.evaluate(model, suite, out=runs / suite / model, cache_dir=runs / "cache")


def tables(suite: str, records: list[Record]) -> dict[str, str]:
    """File name -> text of the suite's committed tables."""
    caption = f"avbench on {suite} (protocol v1)"
    return {
        f"{suite}.{ext}": render(
            records,
            fmt,
            suite=suite,
            caption=caption if fmt != "csv" else None,
            label=f"tab:{suite}" if fmt == "latex" else None,
        )
        for ext, fmt in FORMATS.items()
    }


def _same_csv(committed: str, fresh: str) -> bool:
    old, new = (pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False) for text in (committed, fresh))
    if list(old.columns) != list(new.columns) or len(old) != len(new):
        return False
    for column in old.columns:
        a, b = pd.to_numeric(old[column], errors="coerce"), pd.to_numeric(new[column], errors="coerce")
        numeric = a.notna() & b.notna()
        if not (old[column][~numeric] == new[column][~numeric]).all():
            return False
        if not np.allclose(a[numeric], b[numeric], rtol=CSV_RTOL, atol=0.0):
            return False
    return True


def differences(fresh: dict[str, str]) -> list[str]:
    """The file names whose committed table differs from the fresh one."""
    different = []
    for name, text in fresh.items():
        path = HERE / name
        committed = path.read_text("utf-8") if path.is_file() else None
        same = committed is not None and (_same_csv(committed, text) if name.endswith(".csv") else committed == text)
        if not same:
            different.append(name)
    return different


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/leaderboards"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    different = []
    for suite in SUITES:
        fresh = tables(suite, [run(model, suite, args.runs) for model in runnable(suite)])
        if args.check:
            different += differences(fresh)
            continue
        for name, text in fresh.items():
            (HERE / name).write_text(text, "utf-8")
            print(f"wrote {HERE / name}")
    if different:
        print(f"differ from fresh runs: {', '.join(different)}", file=sys.stderr)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
