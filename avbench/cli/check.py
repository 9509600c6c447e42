"""`avbench check`: which suites can run here, and the one command that closes each gap."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import registry, weights
from ..readiness import SuiteReadiness, suite_readiness
from ..suites.spec import load_suite


def _data_cell(row: SuiteReadiness) -> str:
    if row.present is None:
        return "embedded" if row.data_fix is None else f"0 of {row.items} items (no data root)"
    return f"{row.present} of {row.items} items"


def _weights_cell(row: SuiteReadiness) -> str:
    """'3 present', or the entries grouped by what is wrong with them."""
    if not row.weights:
        return "none needed"
    groups: dict[str, list[str]] = {}
    for w in row.weights:
        groups.setdefault(w.status, []).append(w.name)
    if set(groups) == {"present"}:
        return f"{len(row.weights)} present"
    return "; ".join(f"{status}: {', '.join(names)}" for status, names in groups.items() if status != "present")


def check(
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="The data root the real suites read."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Exit 0 only if this suite (name or .json) is ready."),
) -> None:
    """For every suite: its data (N of M items), its weights files (present and verified?), and how to fix each gap."""
    refs = registry.suites.names()
    if suite is not None and suite not in refs:
        refs = [*refs, suite]
    statuses: dict[str, str] = {}
    rows = {ref: suite_readiness(load_suite(ref), data_root, statuses, ref) for ref in refs}
    cells = [(ref, _data_cell(row), _weights_cell(row), "yes" if row.ready else "no") for ref, row in rows.items()]
    widths = [max(len(c[k]) for c in [("suite", "data", "weights", "ready"), *cells]) for k in range(4)]
    console = Console(width=max(100, sum(widths) + 8), highlight=False)  # one line per suite, never wrapped
    console.print(
        f"data root: {escape(str(data_root) if data_root else '(none: pass --data-root)')} · "
        f"weights home: {escape(str(weights.weights_dir()))}",
        soft_wrap=True,
    )
    table = Table("suite", "data", "weights", "ready", box=None, pad_edge=False)
    for cell in cells:
        table.add_row(*map(escape, cell), style=None if cell[3] == "yes" else "red")
    console.print(table)
    fixes = list(dict.fromkeys(f for row in rows.values() for f in row.fixes))
    if fixes:
        console.print("to fix:")
        for fix in fixes:
            console.print(f"  {escape(fix)}", soft_wrap=True)
    if suite is not None and not rows[suite].ready:
        raise typer.Exit(code=1)
