"""`avbench manifest ...`: rebuild the shipped suite manifests from annotation files, and audit their labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..cache import atomic_write
from ..suites import audit as auditing
from ..suites import builders

app = typer.Typer(help="Build the standard suites' manifests from public annotation files.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.callback()
def _group() -> None:
    """Build suite manifests and specs."""


@app.command()
def build(
    suites: list[str] = typer.Argument(..., help="suite names, e.g. mixed2 llp-multi"),
    annotations: Optional[Path] = typer.Option(
        None,
        "--annotations",
        envvar="AVBENCH_ANNOTATIONS",
        help=(
            "folder of the public annotation files (vggsound/, llp/, music/, ave/; see data_manifests/README.md); "
            "synth-* suites need none"
        ),
    ),  # fmt: skip
    out: Path = typer.Option(
        Path("."),
        "--out",
        help="project root: writes data_manifests/<suite>.jsonl, SHA256SUMS and avbench/suites/specs/<suite>.json",
    ),
    check: bool = typer.Option(
        False, "--check", help="write nothing; exit 1 if the build differs from the shipped files"
    ),
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


@app.command()
def audit(
    suites: Optional[list[str]] = typer.Argument(None, help="suite names or spec files (.json), e.g. mixed2 llp-multi"),
    annotations: Optional[Path] = typer.Option(
        None,
        "--annotations",
        envvar="AVBENCH_ANNOTATIONS",
        help="folder of the public annotation files (vggsounder/, llp/); synth-* suites need none",
    ),  # fmt: skip
    every: bool = typer.Option(False, "--all", help="audit every registered suite that has human audio labels"),
    as_json: bool = typer.Option(False, "--json", help="print the audits as JSON"),
    write: bool = typer.Option(
        False, "--write", help=f"record the audits in data_manifests/{auditing.AUDIT_TABLE} under --out"
    ),
    out: Path = typer.Option(Path("."), "--out", help="project root for --write"),
) -> None:
    """How far each item's ground truth G agrees with human audio labels (VGGSounder, AVVP_eval_audio.csv)."""
    from ..registry import suites as registered  # the specs as written: an audit needs no metric plugin
    from ..suites.spec import read_suite_file

    chosen = [read_suite_file(Path(name)) if name.endswith(".json") else registered.get(name) for name in suites or []]
    if every:
        chosen += [suite for suite in map(registered.get, registered.names()) if auditing.is_auditable(suite)]
    if not chosen:
        raise typer.BadParameter("name some suites, or pass --all")
    audits = [auditing.audit_suite(suite, annotations) for suite in chosen]
    if as_json:
        typer.echo(json.dumps([a.as_dict() for a in audits], indent=2))
    else:
        for found in audits:
            console.print("\n".join(auditing.report_lines(found)))
    if write:
        path = out / "data_manifests" / auditing.AUDIT_TABLE
        kept = json.loads(path.read_text("utf-8")) if path.is_file() else {}
        atomic_write(path, auditing.table_text(kept, audits).encode("utf-8"))
        typer.echo(f"wrote {path}", err=True)
