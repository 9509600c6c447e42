"""`avbench stats`: export and import a suite's reference features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .. import reference_sets

app = typer.Typer(no_args_is_help=True, help="Export and import reference features (FID/KID reference sets).")


@app.command("export")
def export(
    suite: str = typer.Argument(..., help="Suite name."),
    backbone: str = typer.Option(..., help="Backbone, e.g. inception-v3-compat."),
    out: Path = typer.Option(..., help="File to write (.npz)."),
    which: str = typer.Option("reference", help="reference (each item's frame) or source_frames."),
    data_root: Optional[Path] = typer.Option(None),
    cache_dir: Optional[Path] = typer.Option(None),
    device: str = typer.Option("cpu"),
    batch_size: int = typer.Option(32, min=1),
) -> None:
    """Compute (or reuse) the reference features of SUITE and write them to one file."""
    meta = reference_sets.export(suite, backbone, out, which, data_root, cache_dir, device, batch_size)
    typer.echo(json.dumps(meta, indent=2))


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    cache_dir: Optional[Path] = typer.Option(None),
) -> None:
    """Check FILE against this installation's pinned backbone and add it to the feature cache."""
    meta = reference_sets.import_file(file, cache_dir)
    typer.echo(f"imported {meta['n']} reference features of {meta['suite'][0]} for {meta['backbone']['name']}")
