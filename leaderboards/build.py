"""Regenerate the committed leaderboards from fresh runs.

    python leaderboards/build.py            # runs every model on every synthetic suite it supports, writes the tables
    python leaderboards/build.py --check    # exits 1 if the committed tables differ from fresh ones

Each table is `avbench leaderboard` over the records of one suite, so it is a
pure function of those records (kept under --runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import avbench
from avbench.registry import models
from avbench.tables import render

HERE = Path(__file__).resolve().parent
SUITES = ("synth-single", "synth-mixed2", "synth-sep")
MODELS = ("oracle", "oracle-one", "random", "mixture", "sound2scene", "avgas", "macs", "davis")
FORMATS = {"csv": "csv", "md": "markdown", "tex": "latex"}


def records(suite: str, runs: Path) -> list:
    """One record per model that can run on `suite` (runs resume and reuse the cache)."""
    from avbench.data.suite import load_suite

    tasks = set(load_suite(suite).tasks)
    out = []
    for name in MODELS:
        if name in models.names() and tasks & set(models.get(name).tasks):
            out.append(avbench.evaluate(name, suite, out=runs / suite / name, cache_dir=runs / "cache"))
    return out


def tables(suite: str, runs: Path) -> dict[str, str]:
    """File name -> text of the suite's committed tables."""
    found = records(suite, runs)
    caption = f"avbench on {suite} (protocol v1)"
    return {
        f"{suite}.{ext}": render(found, fmt, suite=suite, caption=caption if fmt != "csv" else None, label=f"tab:{suite}" if fmt == "latex" else None)
        for ext, fmt in FORMATS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/leaderboards"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    different = []
    for suite in SUITES:
        for name, text in tables(suite, args.runs).items():
            path = HERE / name
            if args.check:
                if not path.is_file() or path.read_text("utf-8") != text:
                    different.append(name)
            else:
                path.write_text(text, "utf-8")
                print(f"wrote {path}")
    if different:
        print(f"differ from fresh runs: {', '.join(different)}", file=sys.stderr)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
