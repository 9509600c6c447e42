"""The `avbench` command. Every command is a thin call into the modules below.

`invoke` is the one place where an exception becomes an exit code: a usage
error prints the usage and one line (exit 2), an `AvbenchError` one line
(exit 2), a failed read or write one line naming the file (exit 1), and only
a real Ctrl-C exits 130.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__, defaults
from ..errors import AvbenchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Benchmark sound-to-image and visually guided separation models.",
)
list_app = typer.Typer(no_args_is_help=True, help="List registered models, suites, metrics and backbones.")
app.add_typer(list_app, name="list")
# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def _add_subcommands() -> None:
    """Sub-apps and commands live in their own modules, imported here."""
    from importlib import import_module

    for module in ("weights", "stats", "manifest", "data"):
        app.add_typer(import_module(f"{__name__}.{module}").app, name=module)
    for module in ("fidelity", "report", "conformance", "check"):
        app.command(name=module)(getattr(import_module(f"{__name__}.{module}"), module))


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"avbench {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Benchmark sound-to-image and visually guided separation models."""


@app.command()
def run(
    model: str = typer.Option(..., "--model", "-m", help="Registered model name (see `avbench list models`)."),
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name, or the path of a suite spec .json."),
    checkpoint: Optional[str] = typer.Option(None, help="Model checkpoint file."),
    data_root: Optional[Path] = typer.Option(None, help="Root of the suite's audio and frames (real suites)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default: runs/<model>_<suite>)."),
    device: str = typer.Option(defaults.DEVICE, help="auto, cpu, cuda, cuda:1, ..."),
    batch_size: int = typer.Option(defaults.BATCH_SIZE, min=1),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N items."),
    seed: int = typer.Option(defaults.SEED, min=0, help="Run seed (>= 0); every item's seed derives from it."),
    allow_missing: bool = typer.Option(False, help="Evaluate only the items whose data is present."),
    allow_small_n: bool = typer.Option(
        False, help="Allow KID and IS on fewer items than a subset or one per split (recorded)."
    ),
    on_error: str = typer.Option(
        defaults.ON_ERROR, help=f"{' or '.join(defaults.ON_ERROR_CHOICES)} when an item fails."
    ),
    item_timeout: Optional[float] = typer.Option(
        None, min=0.001, help="Seconds per item before a model call counts as hung."
    ),
    workers: Optional[int] = typer.Option(
        None, min=0, help="Data-loading processes (default: 1 when a core is spare)."
    ),
    cache_dir: Optional[Path] = typer.Option(None, help="Feature cache (default: $AVBENCH_HOME/cache/features)."),
) -> None:
    """Evaluate MODEL on SUITE: generate (resuming), score, write record.json and items.csv."""
    from ..runner import RunOptions
    from ..runner import run as run_suite
    from .show import print_record

    options = RunOptions(
        model=model,
        suite=suite,
        checkpoint=checkpoint,
        data_root=data_root,
        out=out,
        device=device,
        batch_size=batch_size,
        limit=limit,
        seed=seed,
        allow_missing=allow_missing,
        allow_small_n=allow_small_n,
        on_error=on_error,
        cache_dir=cache_dir,
        item_timeout=item_timeout,
        workers=workers,
    )
    record, run_dir = run_suite(options)
    print_record(record, console)
    console.print(escape(f"record: {run_dir / defaults.RECORD_FILE}"), soft_wrap=True)


@app.command()
def schema() -> None:
    """Print the JSON schema of the result record."""
    from ..record import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def show(record: Path = typer.Argument(..., help="record.json or a run directory.")) -> None:
    """Print one run's card: identity, counts, every metric with its interval, warnings."""
    from ..record import load_record
    from .show import print_record

    print_record(load_record(record), console)


@app.command()
def leaderboard(
    runs: List[Path] = typer.Argument(..., help="record.json files or run directories."),
    suite: Optional[str] = typer.Option(None, help="Keep only records of this suite."),
    format: str = typer.Option("markdown", "--format", "-f", help="csv, latex or markdown."),
    out: Optional[Path] = typer.Option(None, help="Write here instead of stdout."),
    columns: Optional[str] = typer.Option(None, help="Comma-separated metric names, in order."),
    caption: Optional[str] = typer.Option(None),
    label: Optional[str] = typer.Option(None),
    reported: Optional[Path] = typer.Option(
        None, help="Folder of reported-number CSVs (default: leaderboards/reported)."
    ),
) -> None:
    """Build a leaderboard table from run records (a pure function of the records)."""
    from ..cache import atomic_write_text
    from ..leaderboards import render
    from ..record import load_record

    if format not in ("csv", "latex", "markdown"):
        raise AvbenchError(f"--format must be csv, latex or markdown, not {format!r}")
    records = [load_record(path) for path in runs]
    text = render(
        records,
        format,
        suite=suite,
        columns=columns.split(",") if columns else None,
        caption=caption,
        label=label,
        reported_dir=reported,
    )
    if out is None:
        typer.echo(text)
    else:
        atomic_write_text(out, text)
        console.print(escape(f"wrote {out}"))


@app.command()
def compare(
    base: Path = typer.Argument(..., help="Baseline record.json or run directory."),
    candidate: Path = typer.Argument(..., help="Candidate record.json or run directory."),
    tolerance: List[str] = typer.Option([], help="METRIC=DELTA: allowed move in the bad direction."),
    strict: bool = typer.Option(False, help="Also fail on a significant paired-bootstrap drop (p < 0.05)."),
) -> None:
    """Regression gate: exit 1 if CANDIDATE regresses, 2 if the records are not comparable."""
    from ..compare import compare as compare_records
    from ..compare import format_comparison
    from ..record import items_path, load_items, load_record

    tolerances = {}
    for spec in tolerance:
        name, sep, delta = spec.rpartition("=")
        try:
            tolerances[name] = float(delta)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise AvbenchError(f"--tolerance {spec!r} must look like METRIC=DELTA, e.g. 'SDR[bss-v3]=0.5'")
    records = {path: load_record(path) for path in (base, candidate)}
    tables = {path: load_items(path, record) for path, record in records.items()}
    absent = [path for path, table in tables.items() if table is None]
    if strict and absent:
        raise AvbenchError(
            f"--strict needs each record's per-item table; {items_path(absent[0])} "
            f"(named by {absent[0]}) does not exist"
        )
    result = compare_records(records[base], records[candidate], tables[base], tables[candidate], tolerances, strict)
    typer.echo(format_comparison(result))
    raise typer.Exit(result.exit_code)


@list_app.command("models")
def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
    """Registered models and their tasks."""
    from ..registry import models

    rows = []
    for name in models.names():
        try:
            cls = models.get(name)
            rows.append(
                {
                    "name": name,
                    "tasks": sorted(cls.tasks),
                    "version": cls.version,
                    "entry": f"{cls.__module__}:{cls.__qualname__}",
                }
            )
        except AvbenchError as exc:
            rows.append({"name": name, "error": str(exc)})
    _emit(rows, as_json, ("name", "tasks", "version", "entry"))


@list_app.command("suites")
def list_suites(as_json: bool = typer.Option(False, "--json")) -> None:
    """Suite cards: name, version, task, item count, confirmed fraction, manifest sha256, classes, source.

    `confirmed` is the fraction of items whose ground truth human audio labels confirm
    (`avbench manifest audit`), from the committed audit table; empty where never audited.
    """
    from ..registry import suites as suite_registry
    from ..suites.audit import confirmed_fraction
    from ..suites.spec import load_suite

    suites = [load_suite(name) for name in suite_registry.names()]
    rows = [{**suite.card(), "confirmed": confirmed_fraction(suite)} for suite in suites]
    _emit(rows, as_json, ("name", "version", "tasks", "items", "confirmed", "classes", "manifest_sha256", "dataset"))


@list_app.command("metrics")
def list_metrics(as_json: bool = typer.Option(False, "--json")) -> None:
    """Metric cards: definition, direction, backbone, protocol, reference."""
    from dataclasses import asdict

    from ..registry import metrics

    rows = []
    for name in metrics.names():
        metric = metrics.get(name)()
        for card in metric.cards():
            rows.append(
                {
                    "plugin": name,
                    "tasks": sorted(metric.tasks),
                    **asdict(card),
                    "direction": "↑" if card.higher_is_better else "↓",
                }
            )
    _emit(rows, as_json, ("plugin", "name", "direction", "definition"))


@list_app.command("backbones")
def list_backbones(as_json: bool = typer.Option(False, "--json")) -> None:
    """Feature extractors with their pinned weights."""
    from dataclasses import asdict

    from ..registry import backbones

    rows = [asdict(backbones.get(name)) for name in backbones.names()]
    _emit(rows, as_json, ("name", "kind", "weights", "preprocessing"))


def _emit(rows: list[dict], as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(
            *(
                escape(x)
                for x in (
                    ", ".join(map(str, v)) if isinstance(v, list) else str(v if v is not None else "")
                    for v in (row.get(c, "") for c in columns)
                )
            )
        )
    console.print(table)


_add_subcommands()


def invoke(args: list[str]) -> int:
    """Run the command line `args`; returns its exit code, having printed any error as one line."""
    from typer._click.exceptions import ClickException  # typer raises its vendored click's errors, not click's

    command = typer.main.get_command(app)
    try:
        with command.make_context("avbench", list(args)) as ctx:
            command.invoke(ctx)
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except AvbenchError as exc:
        _error(str(exc))
        return exc.exit_code
    except OSError as exc:
        where = exc.filename2 or exc.filename
        _error(f"{where}: {exc.strerror or exc}" if where else str(exc))
        return 1
    except KeyboardInterrupt:
        _error("interrupted; run the same command again to resume")
        return 130
    return 0


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="avbench: %(message)s")
    sys.exit(invoke(sys.argv[1:]))
