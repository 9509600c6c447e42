"""`avbench data ...`: prepare a suite's data root from videos, and check it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..cache import atomic_write_text
from ..items.files import FileSource
from ..items.prepare import prepare as prepare_suite
from ..suites.spec import load_suite

app = typer.Typer(help="Prepare and check the audio and frames of a suite's data root.", no_args_is_help=True)
console = Console(soft_wrap=True)
SHOWN = 20  # lines listed on screen before pointing at the full list


@app.callback()
def _group() -> None:
    """Prepare and check suite data."""


@app.command()
def prepare(
    suite: str = typer.Argument(..., help="suite name or spec file (.json)"),
    videos: Path = typer.Option(..., "--videos", help="folder of downloaded videos, searched recursively"),
    data_root: Path = typer.Option(..., "--data-root", help="where audio/ and frames/ are written"),
    jobs: int = typer.Option(min(8, os.cpu_count() or 2), "--jobs", min=1, help="clips processed in parallel"),
) -> None:
    """Extract each clip's audio (suite rate, mono) and middle frame; skips what is done."""
    spec = load_suite(suite)
    with Progress(
        TextColumn(f"preparing {spec.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bar:
        task = bar.add_task("clips", total=None)
        report = prepare_suite(
            spec, videos, data_root, jobs, lambda done, total: bar.update(task, completed=done, total=total)
        )
    console.print(f"{spec.name}: {len(report.prepared)} prepared, {len(report.skipped)} already there, "
                  f"{len(report.missing)} without a video, {len(report.failed)} failed")  # fmt: skip
    if report.missing:
        listing = data_root / f"missing-videos-{spec.name}.txt"
        atomic_write_text(listing, "".join(f"{clip}\n" for clip in report.missing))
        console.print(
            f"no video found for: {', '.join(report.missing[:SHOWN])}{' ...' if len(report.missing) > SHOWN else ''}",
            markup=False,
        )
        console.print(f"full list: {listing} (naming rules: data_manifests/README.md)", markup=False)
    for clip, message in report.failed.items():
        console.print(f"[red]failed[/red] {escape(clip)}: {escape(message)}")
    if report.failed:
        raise typer.Exit(code=1)


@app.command()
def check(
    suite: str = typer.Argument(..., help="suite name or spec file (.json)"),
    data_root: Path = typer.Option(..., "--data-root", help="the suite's prepared data root"),
    as_json: bool = typer.Option(False, "--json", help="print the full result as JSON"),
) -> None:
    """Count items whose files are present, missing or corrupt; exit 1 unless all are present."""
    spec = load_suite(suite)
    source = FileSource(data_root)
    counts = {"present": 0, "missing": 0, "corrupt": 0}
    problems: dict[str, list[str]] = {}
    for item in spec.items:
        found = source.problems(item, spec.sample_rate)
        status = "corrupt" if any(p.status == "corrupt" for p in found) else "missing" if found else "present"
        counts[status] += 1
        if found:
            problems[item.id] = [p.message for p in found]
    if as_json:
        result = {
            "suite": spec.name,
            "data_root": str(data_root),
            "items": len(spec.items),
            **counts,
            "problems": problems,
        }
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(f"{spec.name}: {len(spec.items)} items: {counts['present']} present, "
                      f"{counts['missing']} missing, {counts['corrupt']} corrupt")  # fmt: skip
        for item_id, messages in list(problems.items())[:SHOWN]:
            console.print(f"  {item_id}: {'; '.join(messages)}", markup=False, highlight=False)
        if len(problems) > SHOWN:
            console.print(f"  ... {len(problems) - SHOWN} more items with problems (--json lists all)")
    if problems:
        raise typer.Exit(code=1)
