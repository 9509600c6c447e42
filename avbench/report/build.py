"""`avbench report`: run directories -> a static HTML report that opens offline.

Layout of the report folder:
  index.html               one section per suite: leaderboard, plots, links to the runs
  NN-<model>.html          one page per run: every item with its media, status and metrics
  NN-<model>/<task>/...    the run's generated images and separated sources (16-bit WAV)
  media/<suite>/...        mixture audio, reference and cue frames, shared by the suite's runs
  plots/...                PNG plots
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import AvbenchError, RecordError
from ..leaderboards import REPORTED_DIR, long_table
from ..suites.spec import Suite
from . import html, plots
from .media import MediaWriter, SuiteMedia, write_run_outputs
from .runs import RunView, load_run, slug


def _leaderboard(group: list[RunView], pages: list[str]) -> str:
    """The suite's leaderboard; also gives each run the label the leaderboard shows."""
    if not any(run.record.metrics for run in group):
        for run in group:
            run.label = run.record.model.name
        return '<p class="note">No metric was reported.</p>'
    long = long_table([run.record for run in group], reported=REPORTED_DIR if REPORTED_DIR.is_dir() else None)
    rows = long[long["kind"] == "reproduced"].drop_duplicates("row").sort_values("row")
    for run, label in zip(group, rows["model"], strict=False):
        run.label = label
    return html.leaderboard(long, dict(enumerate(pages)))


def _figures(writer: MediaWriter, group: list[RunView], stem: str) -> list[str]:
    figures = []
    bars = plots.metric_bars(group)
    if bars is not None:
        figures.append(
            html.figure(
                writer.put(f"{stem}.metrics.png", lambda: bars),
                "Each metric per model, with its 95% bootstrap interval where it has one",
            )
        )
    metric = plots.per_class_metric(group)
    if metric is not None:
        image = plots.per_class(group, metric)
        figures.append(
            html.figure(
                writer.put(f"{stem}.per-class.png", lambda: image),
                f"Per class: mean {metric.name} over the items whose labels include the class",
            )
        )
    spread = plots.distributions(group)
    if spread is not None:
        figures.append(
            html.figure(
                writer.put(f"{stem}.distributions.png", lambda: spread),
                "Per-item distributions of the separation metrics",
            )
        )
    return figures


def build_report(
    runs: Sequence[Path],
    out: Path,
    data_root: Path | None = None,
    limit_items: int | None = None,
    suites: Mapping[str, Suite] | None = None,
) -> Path:
    """Write the report for `runs` into `out`; returns the path of its index.html.

    `suites` supplies suites that are not built in, by name; `limit_items`
    keeps only the N worst items of each run page (plots use every item).
    """
    if not runs:
        raise RecordError("no run given")
    if limit_items is not None and limit_items < 1:
        raise AvbenchError(f"--limit-items must be at least 1, not {limit_items}")
    views = [load_run(Path(path), dict(suites or {})) for path in runs]
    by_suite: dict[tuple[str, str], list[RunView]] = {}
    for view in views:  # a spec reusing a suite's name is another suite: its own section
        by_suite.setdefault((view.record.suite.name, view.record.suite.spec_sha256), []).append(view)
    writer = MediaWriter(Path(out))
    sections, counter = [], 0
    for suite_index, ((name, _), group) in enumerate(by_suite.items(), start=1):
        suite_slug = slug(name, suite_index)
        for run in group:
            counter += 1
            run.slug = slug(run.record.model.name, counter)
        pages = [f"{run.slug}.html" for run in group]
        table = _leaderboard(group, pages)
        references = SuiteMedia(writer, group[0].suite, data_root, f"media/{suite_slug}")
        for run, page in zip(group, pages, strict=False):
            shown = run.items[:limit_items]
            for view in shown:
                view.media = references.media(view.item)
            write_run_outputs(writer, run, shown, run.slug)
            writer.put(page, lambda run=run, shown=shown: html.run_page(run, shown).encode("utf-8"))
        suite = group[0].record.suite
        title = (
            f"{name} v{suite.version} · protocol {suite.protocol} · manifest {suite.manifest_sha256[:12]}"
            f" · spec {suite.spec_sha256[:12]}"
        )
        sections.append(html.index_section(title, table, _figures(writer, group, f"plots/{suite_slug}"), group, pages))
    index = writer.put("index.html", lambda: html.index_page(sections).encode("utf-8"))
    writer.finish()
    return Path(out) / index
