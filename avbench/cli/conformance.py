"""`avbench conformance`: compare an adapter with recorded official outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def conformance(
    model: str = typer.Argument(..., help="Registered model name."),
    checkpoint: Path = typer.Option(..., help="Checkpoint folder, loaded by the model's paper loader."),
    cases: Path = typer.Option(..., help="Case file (.safetensors with 'conformance' metadata)."),
    config: Optional[Path] = typer.Option(None, help="Architecture JSON (default: CHECKPOINT/config.json)."),
    device: str = typer.Option("cpu"),
    as_json: bool = typer.Option(False, "--json", help="Print the verdicts as JSON."),
) -> None:
    """Run every case through MODEL; exit 0 only if every output key is within its tolerance."""
    from ..conformance import format_results, run

    results = run(model, checkpoint, cases, config, device)
    if as_json:
        typer.echo(
            json.dumps(
                {"model": model, "passed": all(r.passed for r in results), "keys": [r.row() for r in results]}, indent=2
            )
        )
    else:
        typer.echo(format_results(results))
    raise typer.Exit(0 if results and all(r.passed for r in results) else 1)
