"""`avbench weights ...`: list, verify, import and download pinned weight files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import weights
from ..errors import WeightsError

app = typer.Typer(no_args_is_help=True, help="Pinned weight files: list, verify, import, download.")
console = Console()


def _table(rows: list[dict]) -> Table:
    table = Table("name", "status", "file", "sha256", title=f"weights home: {weights.weights_dir()}")
    for row in rows:
        pinned = row["sha256"] or row["sha256_prefix"]
        table.add_row(row["name"], row["status"], row["file_name"], f"{pinned[:12]}…" if pinned else "-")
    return table


@app.command("list")
def list_weights(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every registered weights file with its status (present, unverified, missing, corrupt, unpinned)."""
    rows = weights.list_entries()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        console.print(_table(rows))


@app.command("verify")
def verify(name: Optional[str] = typer.Argument(None, help="One entry; all entries if omitted.")) -> None:
    """Re-hash the files. Fails on a corrupt file, and on a missing one when NAME is given."""
    rows = weights.verify(name)
    console.print(_table(rows))
    bad = [row for row in rows if row["status"] == "corrupt" or (name is not None and row["status"] != "present")]
    if bad:
        raise WeightsError("; ".join(row["message"] for row in bad))


@app.command("import")
def import_weights(
    file: Path = typer.Argument(..., help="A local copy of the weights file."),
    name: str = typer.Option(..., "--name", help="The registered entry it is a copy of."),
    unverified: bool = typer.Option(
        False,
        "--unverified",
        help="Take a file that does not match the pin (or an entry with none) after checking its layout; "
        "every record made with it says 'unverified weights: NAME'.",
    ),
) -> None:
    """Verify FILE against entry NAME's hash and copy it into the weights home."""
    target = weights.import_file(file, name, unverified=unverified)
    verified = weights.status(name)["status"] == "present"
    console.print(f"imported {name}{'' if verified else ' (unverified: records made with it say so)'}: {target}")


@app.command("download")
def download(name: str = typer.Argument(..., help="The registered entry to fetch.")) -> None:
    """Fetch NAME from its source URL (needs internet), verify it and store it."""
    target = weights.download(name)
    console.print(f"downloaded {name}: {target}")
