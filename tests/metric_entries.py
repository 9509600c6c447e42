"""One builder of test `MetricEntry`s, for the modules that assemble records by hand."""

from __future__ import annotations

from avbench.record import MetricEntry


def metric_entry(
    name: str,
    value: float | None,
    higher: bool,
    half: float | None = None,
    *,
    task: str = "generate",
    n: int = 20,
    skipped: int = 0,
) -> MetricEntry:
    """An entry named `NAME[backbone]`, with an interval of half-width `half` around `value` when given."""
    return MetricEntry(
        name=name,
        value=value,
        higher_is_better=higher,
        backbone=name.split("[")[1][:-1],
        metric="test",
        task=task,
        protocol=1,
        n=n,
        skipped=skipped,
        ci_low=None if half is None else value - half,
        ci_high=None if half is None else value + half,
    )
