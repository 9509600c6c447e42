"""The report's pages as strings. Every name and reason passes through `esc`.

Model, class and suite names and failure reasons come from users and plugins,
so none reaches a page unescaped: a class called `<script>` shows as text.
Links are relative and every style and script is inline, so a page opens from
disk with no network.
"""

from __future__ import annotations

import json
import math
from html import escape
from importlib import resources

import pandas as pd

from ..leaderboards import formatted_cells
from .runs import ItemView, RunView

NOTE = (
    "Values: mean ± half-width of the 95% bootstrap interval over items, where one exists. "
    "Bold: best reproduced value. failed: items whose output failed, excluded from every metric."
)
REPORTED_NOTE = (
    "Reported rows are copied from the cited papers (hover for their notes), are not ranked and may use other data "
    "or backbones."
)


def esc(text) -> str:
    return escape(str(text), quote=True)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text("utf-8")


def page(title: str, body: str) -> str:
    """A complete page; its script sorts the items and checks that every image and audio clip loads."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n<body>\n{body}\n"
        '<footer><p id="media-check">Media not checked (scripts are off).</p>'
        '<pre id="media-summary" hidden></pre></footer>\n'
        f"<script>\n{_asset('report.js')}</script>\n</body>\n</html>\n"
    )


def number(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4g}"


def arrow(higher_is_better) -> str:
    return "" if higher_is_better is None or pd.isna(higher_is_better) else "↑" if higher_is_better else "↓"


def leaderboard(long: pd.DataFrame, run_pages: dict[int, str]) -> str:
    """The leaderboard of `tables.long_table` as an HTML table; reproduced rows link to their run page."""
    cells = formatted_cells(long)
    metrics = list(dict.fromkeys(cells["metric"]))
    reported = bool((cells["kind"] == "reported").any())
    head = ["model"] + (["kind", "source"] if reported else []) + ["n", "failed"]
    head += [f"{m} {arrow(cells[cells['metric'] == m]['higher_is_better'].iloc[0])}".strip() for m in metrics]
    lines = [
        '<table class="leaderboard">',
        "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead>",
        "<tbody>",
    ]
    for row, group in cells.groupby("row", sort=True):
        first = group.iloc[0]
        name = esc(first["model"])
        if row in run_pages:
            name = f'<a href="{esc(run_pages[row])}">{name}</a>'
        line = [f"<td>{name}</td>"] + (
            [f"<td>{esc(first['kind'])}</td>", f"<td>{esc(first['source'])}</td>"] if reported else []
        )
        if first["kind"] == "reported":
            line += ["<td></td>", "<td></td>"]
        else:
            n = f"{first['items_effective']}" + (
                "" if first["items_effective"] == first["items_original"] else f"/{first['items_original']}"
            )
            line += [f'<td class="num">{esc(n)}</td>', f'<td class="num">{esc(first["failed"])}</td>']
        line += [_leaderboard_cell(cell) for _, cell in group.iterrows()]
        lines.append("<tr>" + "".join(line) + "</tr>")
    note = NOTE + (" " + REPORTED_NOTE if reported else "")
    lines += ["</tbody>", "</table>", f'<p class="note">{esc(note)}</p>']
    return "\n".join(lines)


def _leaderboard_cell(cell: pd.Series) -> str:
    text = esc(cell["text"]) + (f" <small>± {esc(cell['half'])}</small>" if cell["half"] else "")
    if cell["rank"] == 1:
        text = f"<b>{text}</b>"
    if cell["marked"]:
        text += f' <span title="{esc(cell["skipped"])} degenerate unit(s), not averaged in">†</span>'
    title = f' title="{esc(cell["note"])}"' if cell["note"] else ""
    return f'<td class="num"{title}>{text}</td>'


def figure(link: str, caption: str) -> str:
    return f'<figure><img src="{esc(link)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def index_section(suite_title: str, table: str, figures: list[str], runs: list[RunView], pages: list[str]) -> str:
    links = "".join(
        f'<li><a href="{esc(page_link)}">{esc(run.label)}</a> · {esc(run.dir.name)} · '
        f"N {run.record.n.effective}/{run.record.n.original} · failed {run.record.n.failed}</li>"
        for run, page_link in zip(runs, pages, strict=False)
    )
    return (
        f'<section>\n<h2>{esc(suite_title)}</h2>\n{table}\n<div class="plots">{"".join(figures)}</div>\n'
        f"<h3>Runs</h3>\n<ul>{links}</ul>\n</section>"
    )


def index_page(sections: list[str]) -> str:
    return page("avbench report", "<h1>avbench report</h1>\n" + "\n".join(sections))


def _status(view: ItemView) -> str:
    parts = []
    for task, (status, reason) in view.status.items():
        text = f"{task}: {status}" + (f" — {reason}" if reason else "")
        parts.append(f'<div class="{"ok" if status == "ok" else "bad"}">{esc(text)}</div>')
    return "".join(parts)


def _image(link: str, alt: str) -> str:
    return f'<img src="{esc(link)}" alt="{esc(alt)}">'


def _audio(link: str) -> str:
    return f'<audio controls preload="metadata" src="{esc(link)}"></audio>'


def _outputs(view: ItemView, task: str) -> str:
    if task not in view.status:
        return ""
    if view.status[task][0] != "ok":
        return '<span class="bad">no output</span>'
    links = view.media.outputs.get(task, [])
    if not links:
        return '<span class="bad">output files missing</span>'
    if task != "separate_audio":
        return "".join(_image(link, f"{task} {k}") for k, link in enumerate(links))
    sources = view.item.sources
    blocks = []
    for k, link in enumerate(links):
        label = sources[k].label if k < len(sources) and sources[k].label else f"source {k}"
        cue = _image(view.media.cues[k], f"cue {k}") if k < len(view.media.cues) else ""
        blocks.append(f'<div class="source">{cue}<div>{esc(label)}</div>{_audio(link)}</div>')
    return "".join(blocks)


def _item_row(view: ItemView, run: RunView) -> str:
    media = view.media
    cells = [
        f'<td><div class="id">{esc(view.item.id)}</div>'
        f'<div class="labels">{esc(" + ".join(view.item.labels))}</div></td>',
        f"<td>{_status(view)}</td>",
        f"<td>{_audio(media.mixture) if media.mixture else esc(media.note)}</td>",
        f"<td>{_image(media.reference, 'reference') if media.reference else ''}</td>",
    ]
    cells += [f'<td class="outputs">{_outputs(view, task)}</td>' for task in run.record.tasks]
    for k, metric in enumerate(run.metrics):
        value = view.values.get(metric.name)
        data = "" if value is None else json.dumps(value)  # JSON spells infinity as JavaScript's parseFloat reads it
        cells.append(f'<td class="num" data-metric="{k}" data-value="{esc(data)}">{esc(number(value))}</td>')
    kind = "item" if view.ok else "item failed"
    return f'<tr class="{kind}" data-order="{view.order}">{"".join(cells)}</tr>'


def _run_header(run: RunView) -> str:
    record, n = run.record, run.record.n
    facts = (
        f"model {record.model.name} v{record.model.version} · suite {record.suite.name} v{record.suite.version} · "
        f"manifest {record.suite.manifest_sha256[:12]} · N {n.effective}/{n.original} · failed {n.failed} · "
        f"missing {n.missing} · seed {record.seed} · {record.created}"
    )
    warnings = "".join(f"<li>{esc(w)}</li>" for w in record.warnings)
    rows = "".join(
        f"<tr><td>{esc(e.name)} {arrow(e.higher_is_better)}</td><td>{esc(e.task)}</td>"
        f'<td class="num">{esc(number(e.value))}</td>'
        f'<td class="num">{esc(f"[{number(e.ci_low)}, {number(e.ci_high)}]") if e.ci_low is not None else ""}</td>'
        f'<td class="num">{e.n}</td><td class="num">{e.skipped}</td></tr>'
        for e in record.metrics
    )
    return (
        f'<p><a href="index.html">← all runs</a></p>\n<h1>{esc(run.label)} on {esc(record.suite.name)}</h1>\n'
        f'<p class="facts">{esc(facts)}</p>\n'
        + (f'<ul class="warnings">{warnings}</ul>\n' if warnings else "")
        + '<table class="metrics"><thead><tr><th>metric</th><th>task</th><th>value</th><th>95% interval</th>'
        f"<th>n</th><th>skipped</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _sorter(run: RunView) -> str:
    options = "".join(
        f'<option value="{k}" data-higher="{int(m.higher_is_better)}">'
        f"{esc(m.name)} {arrow(m.higher_is_better)}, worst first</option>"
        for k, m in enumerate(run.metrics)
    )
    return (
        f'<p><label>Sort items by <select id="sort-by">{options}'
        '<option value="order">manifest order</option></select></label></p>'
    )


def run_page(run: RunView, shown: list[ItemView]) -> str:
    head = ["item", "status", "mixture", "reference"] + [f"{t} output" for t in run.record.tasks]
    head += [f"{m.name} {arrow(m.higher_is_better)}" for m in run.metrics]
    hidden = len(run.items) - len(shown)
    more = (
        f'<p class="note">Showing the {len(shown)} worst of {len(run.items)} items; {hidden} not shown.</p>'
        if hidden
        else ""
    )
    table = (
        '<table id="items"><thead><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(_item_row(view, run) for view in shown)
        + "\n</tbody></table>"
    )
    body = f"{_run_header(run)}\n<h2>Items</h2>\n{more}{_sorter(run) if run.metrics else ''}\n{table}"
    return page(f"{run.label} on {run.record.suite.name} · avbench", body)
