"""The terminal card of one run."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..record import Record
from ..weights import unverified_note


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def print_record(record: Record, console: Console) -> None:
    """Suite, model, checkpoint, N, every metric with its interval, and warnings."""
    ckpt = (record.model.checkpoint_sha256 or "none")[:12]
    console.print(
        f"[bold]{escape(record.model.name)}[/] v{escape(record.model.version)} (checkpoint {ckpt}) on "
        f"[bold]{escape(record.suite.name)}[/] v{escape(record.suite.version)} · "
        f"manifest {record.suite.manifest_sha256[:12]} · N {record.n.effective}/{record.n.original} · "
        f"failed {record.n.failed} · missing {record.n.missing} · {record.device}",
        soft_wrap=True,  # one line in a piped log, however long
    )
    table = Table("metric", "task", "value", "95% CI", "n", "skipped", "±spread")
    for entry in record.metrics:
        arrow = "↑" if entry.higher_is_better else "↓"
        interval = f"[{_fmt(entry.ci_low)}, {_fmt(entry.ci_high)}]" if entry.ci_low is not None else ""
        table.add_row(
            escape(f"{entry.name} {arrow}"),
            entry.task,
            _fmt(entry.value),
            interval,
            str(entry.n),
            str(entry.skipped),
            _fmt(entry.spread) if entry.spread is not None else "",
        )
    console.print(table)
    warnings = list(record.warnings)
    unverified = unverified_note(record.weights)
    warnings += [unverified] if unverified and unverified not in warnings else []
    warnings += [f"{e.name}: small N ({e.n})" for e in record.metrics if e.details.get("small_n")]
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
