"""`avbench report RUN_DIR... --out DIR`: a static HTML report that opens offline."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

console = Console()


def report(
    runs: List[Path] = typer.Argument(..., help="Run directories (or their record.json files)."),
    out: Path = typer.Option(
        Path("report"), "--out", "-o", help="Report folder; files of an earlier report there are replaced."
    ),
    data_root: Optional[Path] = typer.Option(
        None, help="Data root of real-data suites, for mixture audio and reference frames."
    ),
    limit_items: Optional[int] = typer.Option(
        None, min=1, help="Show only the N worst items of each run (by its first metric)."
    ),
    suite_spec: List[Path] = typer.Option([], help="Spec file of a suite that is not built in; repeat for several."),
) -> None:
    """Write index.html (leaderboard, plots) and one page per run (every item with its audio, images and metrics)."""
    from ..report import build_report
    from ..suites.spec import read_suite_file

    suites = {suite.name: suite for suite in map(read_suite_file, suite_spec)}
    index = build_report(runs, out, data_root=data_root, limit_items=limit_items, suites=suites)
    console.print(f"report: {index}")
