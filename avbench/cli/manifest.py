"""`avbench manifest ...`: rebuild the shipped suite manifests from annotation files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..data import builders

app = typer.Typer(help="Build the standard suites' manifests from public annotation files.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.callback()
def _group() -> None:
    """Build suite manifests and specs."""


@app.command()
def build(
    suites: list[str] = typer.Argument(..., help="suite names, e.g. mixed2 llp-multi"),
    annotations: Optional[Path] = typer.Option(
        None, "--annotations", envvar="AVBENCH_ANNOTATIONS",
        help="folder of the public annotation files (vggsound/, llp/, music/, ave/; see data_manifests/README.md); synth-* suites need none",
    ),  # fmt: skip
    out: Path = typer.Option(
        Path("."), "--out", help="project root: writes data_manifests/<suite>.jsonl, SHA256SUMS and avbench/data/suites/<suite>.json"
    ),
    check: bool = typer.Option(False, "--check", help="write nothing; exit 1 if the build differs from the shipped files"),
) -> None:
    """Build SUITES deterministically; the same annotation files always give the same bytes."""
    differences = []
    for name in suites:
        data, spec = builders.build(name, annotations)
        count = data.count(b"\n")
        if check:
            found = builders.shipped_differences(data, spec)
            differences += found
            verdict = "[red]differs[/red]" if found else "[green]matches the shipped files[/green]"
            console.print(f"{name}: {count} items, sha256 {spec['manifest_sha256']}: {verdict}")
            for line in found:
                console.print(f"  {line}")
        else:
            written = builders.write_suite(out, data, spec)
            console.print(f"{name}: {count} items, sha256 {spec['manifest_sha256']}")
            for path in written:
                console.print(f"  wrote {path}")
    if differences:
        raise typer.Exit(code=1)
