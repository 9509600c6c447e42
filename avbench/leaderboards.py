"""Leaderboards: tables that are pure functions of result records.

Nothing here runs a model or reads a cache, so any table in a paper or README
can be regenerated, and checked, from the stored `record.json` files alone.
Numbers copied from papers live in `leaderboards/reported/*.csv`: they are
marked `reported`, sit below the reproduced rows and never compete for "best".
A degenerate or failed unit is shown as a count, never averaged in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .errors import RecordError
from .latex import booktabs, check_key, latex_escape
from .record import Record, load_record
from .weights import unverified_note

REPORTED_DIR = Path(str(resources.files("avbench.reported")))
REPORTED_COLUMNS = ("suite", "model", "metric", "value", "source", "note")
ROW_FIELDS = [
    "row",
    "kind",
    "model",
    "source",
    "run",
    "suite",
    "suite_version",
    "manifest_sha256",
    "items_effective",
    "items_original",
    "failed",
    "missing",
]
CELL_FIELDS = ["metric", "higher_is_better", "value", "lo", "hi", "spread", "n", "skipped", "note", "present"]
CSV_FIELDS = [
    "run",
    "model",
    "kind",
    "source",
    "suite",
    "suite_version",
    "manifest_sha256",
    "metric",
    "higher_is_better",
    "value",
    "lo",
    "hi",
    "spread",
    "n",
    "skipped",
    "items_effective",
    "items_original",
    "failed",
    "missing",
    "note",
]
FORMATS = ("csv", "latex", "markdown")
SKIPPED_MARK = "†"
UP, DOWN = r"$\uparrow$", r"$\downarrow$"


def bare_name(metric: str) -> str:
    """`R@1[clip-synth]` -> `R@1`."""
    return metric.split("[", 1)[0]


def load_reported(directory: str | Path) -> pd.DataFrame:
    """Every number in `directory/*.csv`, checked; an optional `higher_is_better` column gives direction."""
    frames = []
    for path in sorted(Path(directory).glob("*.csv")):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise RecordError(f"{path}: cannot read reported numbers ({exc})") from None
        absent = [c for c in REPORTED_COLUMNS if c not in frame.columns]
        if absent:
            raise RecordError(f"{path}: missing column(s) {absent}; expected {list(REPORTED_COLUMNS)}")
        if "higher_is_better" not in frame:
            frame["higher_is_better"] = ""
        rows = []
        for line, row in enumerate(frame.to_dict("records"), start=2):
            where = f"{path} line {line}"
            try:
                value = float(row["value"])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise RecordError(f"{where}: value {row['value']!r} is not a finite number (leave unknown numbers out)")
            if "[" not in row["metric"]:
                raise RecordError(
                    f"{where}: metric {row['metric']!r} must name its backbone, e.g. FID[inception-v3-compat]"
                )
            direction = {"": None, "true": True, "false": False}.get(row["higher_is_better"].strip().lower(), "bad")
            if direction == "bad":
                raise RecordError(f"{where}: higher_is_better must be true, false or empty")
            check_key(row["source"], f"{where}: citation key")
            rows.append({**row, "value": value, "higher_is_better": direction})
        frames.append(pd.DataFrame(rows, columns=[*REPORTED_COLUMNS, "higher_is_better"]))
    reported = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*REPORTED_COLUMNS, "higher_is_better"])
    )
    duplicated = reported.duplicated(["suite", "model", "metric", "source"])
    if duplicated.any():
        row = reported[duplicated].iloc[0]
        raise RecordError(
            f"{directory}: {row['model']} {row['metric']} on {row['suite']} from {row['source']} is given twice"
        )
    return reported


def _identity(record: Record) -> tuple:
    s = record.suite
    return (s.name, s.version, s.protocol, s.manifest_sha256, s.spec_sha256)


def _describe(record: Record) -> str:
    s = record.suite
    return (
        f"{record.model.name} (run {record.run_key[:12]}: suite {s.name} v{s.version}, "
        f"protocol {s.protocol}, manifest {s.manifest_sha256[:12]}, spec {s.spec_sha256[:12]})"
    )


def _distinct(records: Sequence[Record]) -> list[Record]:
    """Each run once: a record given twice (its folder and its file, or a copy) is one row."""
    seen, kept = set(), []
    for record in records:
        key = json.dumps(record.comparable(), sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept


def _select(records: Sequence[Record], suite: str | None) -> list[Record]:
    """The distinct records of one suite; refuse to mix suites, specs, versions or manifests."""
    chosen = _distinct([r for r in records if suite is None or r.suite.name == suite])
    if not chosen:
        found = sorted({r.suite.name for r in records})
        raise RecordError(f"no record for suite {suite!r}" + (f"; records are for {found}" if found else ""))
    for record in chosen[1:]:
        if _identity(record) != _identity(chosen[0]):
            raise RecordError(
                f"cannot put {_describe(chosen[0])} and {_describe(record)} on one leaderboard: "
                "they differ in suite, spec, version, protocol or manifest (a spec file that reuses a suite's "
                "name with other options is another suite)"
            )
    return chosen


def _labels(records: list[Record]) -> list[str]:
    """Model names; where two rows share one, the checkpoint hash prefix (then the run key) is appended."""
    labels = [r.model.name for r in records]
    for tag in (lambda r: (r.model.checkpoint_sha256 or "")[:8], lambda r: "run " + r.run_key[:8]):
        clashes = {label for label in labels if labels.count(label) > 1}
        labels = [
            f"{label} ({tag(r)})" if label in clashes and tag(r).strip() else label
            for label, r in zip(labels, records, strict=True)
        ]
    return labels


def _directions(records: list[Record], reported: pd.DataFrame) -> dict[str, bool | None]:
    directions: dict[str, bool | None] = {}
    for record in records:
        for entry in record.metrics:
            if directions.setdefault(entry.name, entry.higher_is_better) != entry.higher_is_better:
                raise RecordError(f"records disagree on whether higher {entry.name} is better")
    by_bare: dict[str, set] = {}
    for name, direction in directions.items():
        by_bare.setdefault(bare_name(name), set()).add(direction)
    for row in reported.to_dict("records"):
        guess = by_bare.get(bare_name(row["metric"]), set())
        fallback = next(iter(guess)) if len(guess) == 1 else None
        given = row["higher_is_better"]
        directions.setdefault(row["metric"], fallback if given is None else given)
    return directions


def _choose(available: list[str], columns: Sequence[str] | None) -> list[str]:
    """Metric columns: all, or the requested full or bare names in the requested order."""
    if not columns:
        return available
    chosen: list[str] = []
    for want in columns:
        hits = [want] if want in available else [m for m in available if bare_name(m) == want]
        if not hits:
            raise RecordError(f"no metric matches column {want!r}; available: {', '.join(available)}")
        chosen += [m for m in hits if m not in chosen]
    return chosen


def long_table(
    records: Sequence[Record],
    suite: str | None = None,
    reported: pd.DataFrame | str | Path | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One line per (row, metric): the tidy table every view is drawn from.

    Every row gets every chosen metric; `present` is False where the row has
    no such entry, so that the cell stays empty instead of being invented.
    """
    chosen = _select(list(records), suite)
    if reported is not None and not isinstance(reported, pd.DataFrame):
        reported = load_reported(reported)
    if reported is None:
        reported = pd.DataFrame(columns=[*REPORTED_COLUMNS, "higher_is_better"])
    if "higher_is_better" not in reported:
        reported = reported.assign(higher_is_better=None)
    reported = reported[reported["suite"] == chosen[0].suite.name]
    directions = _directions(chosen, reported)
    metrics = _choose(list(directions), columns)

    rows = []  # (row fields, {metric: cell fields})
    for label, record in zip(_labels(chosen), chosen, strict=False):
        s, n = record.suite, record.n
        if unverified := unverified_note(record.weights):  # every table made from it says so
            label = f"{label} ({unverified})"
        fields = dict(
            kind="reproduced",
            model=label,
            source="",
            run=record.run_key,
            suite=s.name,
            suite_version=s.version,
            manifest_sha256=s.manifest_sha256,
            items_effective=n.effective,
            items_original=n.original,
            failed=n.failed,
            missing=n.missing,
        )
        cells = {
            e.name: dict(value=e.value, lo=e.ci_low, hi=e.ci_high, spread=e.spread, n=e.n, skipped=e.skipped, note="")
            for e in record.metrics
        }
        rows.append((fields, cells))
    for (model, source), group in reported.groupby(["model", "source"], sort=False):
        fields = dict(
            kind="reported",
            model=model,
            source=source,
            run="",
            suite=group["suite"].iloc[0],
            suite_version=None,
            manifest_sha256=None,
            items_effective=None,
            items_original=None,
            failed=None,
            missing=None,
        )
        cells = {r["metric"]: dict(value=r["value"], note=r["note"]) for r in group.to_dict("records")}
        rows.append((fields, cells))

    if not metrics:
        raise RecordError(f"nothing to tabulate: no record of {chosen[0].suite.name} reports a metric")
    lines = []
    for index, (fields, cells) in enumerate(rows):
        for metric in metrics:
            cell = cells.get(metric)
            lines.append(
                {
                    "row": index,
                    **fields,
                    "metric": metric,
                    "higher_is_better": directions[metric],
                    **(cell or {}),
                    "present": cell is not None,
                }
            )
    frame = pd.DataFrame(lines).reindex(columns=ROW_FIELDS + CELL_FIELDS)
    for column in ("items_effective", "items_original", "failed", "missing", "n", "skipped"):
        frame[column] = frame[column].astype("Int64")
    for column in ("value", "lo", "hi", "spread"):
        frame[column] = frame[column].astype(float)
    frame["note"] = frame["note"].fillna("")
    return frame


def wide_table(long: pd.DataFrame) -> pd.DataFrame:
    """One row per record (then per reported model and source), one value column per metric."""
    metrics = list(dict.fromkeys(long["metric"]))
    rows = long.drop_duplicates("row").set_index("row")[ROW_FIELDS[1:]]
    values = long.pivot(index="row", columns="metric", values="value")[metrics]
    values.columns.name = None
    return rows.join(values).reset_index(drop=True)


def leaderboard(
    records: Sequence[Record],
    suite: str | None = None,
    reported: pd.DataFrame | str | Path | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The wide leaderboard; `long_table` (same arguments) holds each cell's interval, n and notes."""
    return wide_table(long_table(records, suite, reported, columns))


def _decimals(values: pd.Series) -> int:
    """Decimal places for a column: enough for R@1 (0.523) and KID (0.0012), two for FID or SDR."""
    largest = values.abs().max()
    if not largest < 1:  # also when the column has no number
        return 2
    return 3 if largest >= 0.1 else 4


def _ranks(long: pd.DataFrame) -> pd.Series:
    """1 for the best reproduced value of each metric, 2 for the second, else 0; ties share a rank."""
    ranks = pd.Series(0, index=long.index)
    for _, group in long.groupby("metric", sort=False):
        direction = group["higher_is_better"].iloc[0]
        scored = group[(group["kind"] == "reproduced") & group["value"].notna()]
        if direction is None or pd.isna(direction) or len(scored) < 2:
            continue
        distinct = sorted(set(scored["value"]), reverse=bool(direction))
        ranks[scored.index[scored["value"] == distinct[0]]] = 1
        if len(scored) >= 3 and len(distinct) >= 2:
            ranks[scored.index[scored["value"] == distinct[1]]] = 2
    return ranks


def _fixed(value: float, places: int) -> str:
    """`value` with `places` decimals; a value that rounds to zero prints without a minus sign."""
    text = f"{value:.{places}f}"
    return text.lstrip("-") if float(text) == 0 else text


def formatted_cells(long: pd.DataFrame) -> pd.DataFrame:
    """Text of each cell's number and half-interval, its rank and whether it skipped units."""
    out = long.copy()
    out["rank"] = _ranks(long)
    out["text"], out["half"] = "", ""
    for _, group in long.groupby("metric", sort=False):
        places = _decimals(group["value"].dropna())
        for i, cell in group.iterrows():
            if not cell["present"]:
                continue
            out.at[i, "text"] = "n/a" if pd.isna(cell["value"]) else _fixed(cell["value"], places)
            if pd.notna(cell["lo"]) and pd.notna(cell["hi"]):
                out.at[i, "half"] = _fixed((cell["hi"] - cell["lo"]) / 2, places)
    out["marked"] = out["skipped"].fillna(0) > 0
    return out


def _count_text(row: pd.Series) -> tuple[str, str]:
    if row["kind"] == "reported":
        return "", ""
    n = str(row["items_effective"])
    if row["items_effective"] != row["items_original"]:
        n += f"/{row['items_original']}"
    return n, str(row["failed"])


def _skipped_notes(cells: pd.DataFrame) -> list[tuple[str, str, int, int]]:
    marked = cells[cells["marked"]]
    return [(r["model"], r["metric"], int(r["skipped"]), int(r["n"]) + int(r["skipped"])) for _, r in marked.iterrows()]


def _arrow(direction, up: str, down: str) -> str:
    return "" if direction is None or pd.isna(direction) else up if direction else down


def _md_escape(text: str) -> str:
    for char in "\\`*_<>|&":
        text = text.replace(char, "\\" + char)
    return text.replace("](", "]\\(")


def to_markdown(long: pd.DataFrame, caption: str | None = None) -> str:
    """A pipe table: ↑/↓ per metric, best reproduced value in bold, failures counted."""
    cells = formatted_cells(long)
    metrics = list(dict.fromkeys(cells["metric"]))
    reported = (cells["kind"] == "reported").any()
    header = ["model"] + (["kind", "source"] if reported else []) + ["n", "failed"]
    header += [
        f"{_md_escape(m)} {_arrow(cells[cells['metric'] == m]['higher_is_better'].iloc[0], '↑', '↓')}".strip()
        for m in metrics
    ]
    body = []
    for _, group in cells.groupby("row", sort=True):
        first = group.iloc[0]
        line = [_md_escape(first["model"])] + ([first["kind"], _md_escape(first["source"])] if reported else [])
        line += list(_count_text(first))
        for _, cell in group.iterrows():
            text = cell["text"] + (f" ± {cell['half']}" if cell["half"] else "")
            if cell["rank"] == 1:
                text = f"**{text}**"
            line.append(text + (f" {SKIPPED_MARK}" if cell["marked"] else ""))
        body.append(line)
    out = [f"**{_md_escape(caption)}**", ""] if caption else []
    align = ["left"] * (len(header) - len(metrics) - 2) + ["right"] * (len(metrics) + 2)
    out.append(tabulate(body, headers=header, tablefmt="pipe", disable_numparse=True, colalign=align))
    out += [
        "",
        "Values: mean ± half-width of the 95% bootstrap interval over items, where one exists. "
        "Bold: best reproduced value. n: items evaluated (of the manifest's); failed: items whose generation "
        "failed, excluded from every metric.",
    ]
    if reported:
        out.append(
            "Reported rows are copied from the cited papers, are not ranked and may use other data or backbones."
        )
    for model, metric, skipped, total in _skipped_notes(cells):
        out.append(
            f"{SKIPPED_MARK} {_md_escape(model)}, {_md_escape(metric)}: {skipped} of {total} units degenerate, "
            "not averaged in."
        )
    return "\n".join(out) + "\n"


def to_latex(long: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs table: best in bold, second underlined, reported rows cited below a rule."""
    cells = formatted_cells(long)
    metrics = list(dict.fromkeys(cells["metric"]))
    reported = (cells["kind"] == "reported").any()
    header = ["Model", "$n$", "Failed"]
    for metric in metrics:
        direction = cells[cells["metric"] == metric]["higher_is_better"].iloc[0]
        header.append(f"{latex_escape(metric)} {_arrow(direction, UP, DOWN)}".strip())
    header += ["Source"] if reported else []
    groups: dict[str, list[list[str]]] = {"reproduced": [], "reported": []}
    for _, group in cells.groupby("row", sort=True):
        first = group.iloc[0]
        line = [latex_escape(first["model"]), *_count_text(first)]
        for _, cell in group.iterrows():
            text = cell["text"] + (rf" $\pm$ {cell['half']}" if cell["half"] else "")
            if cell["rank"] == 1:
                text = rf"\textbf{{{text}}}"
            elif cell["rank"] == 2:
                text = rf"\underline{{{text}}}"
            line.append(text + (r"$^\dagger$" if cell["marked"] else ""))
        if reported:
            line.append(rf"\cite{{{check_key(first['source'], 'citation key')}}}" if first["source"] else "")
        groups[first["kind"]].append(line)
    notes = [
        rf"$^\dagger$ {latex_escape(model)}, {latex_escape(metric)}: {skipped} of {total} units degenerate, "
        "not averaged in."
        for model, metric, skipped, total in _skipped_notes(cells)
    ]
    align = "lrr" + "c" * len(metrics) + ("l" if reported else "")
    return booktabs(header, [groups["reproduced"], groups["reported"]], align, caption, label, notes)


def to_csv(long: pd.DataFrame) -> str:
    """The tidy long table (one line per row and metric present) as CSV."""
    return long[long["present"]][CSV_FIELDS].to_csv(index=False, lineterminator="\n")


def render(
    records: Sequence[Record | str | Path],
    fmt: str,
    suite: str | None = None,
    columns: Sequence[str] | None = None,
    caption: str | None = None,
    label: str | None = None,
    reported_dir: str | Path | None = None,
) -> str:
    """What `avbench leaderboard` prints: records (or record.json files / run dirs) as csv, latex or markdown.

    `reported_dir` defaults to the reported numbers shipped in `leaderboards/reported`.
    """
    if fmt not in FORMATS:
        raise RecordError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not records:
        raise RecordError("no records given")
    loaded = [r if isinstance(r, Record) else load_record(r) for r in records]
    directory = Path(reported_dir) if reported_dir is not None else REPORTED_DIR
    reported = load_reported(directory) if directory.is_dir() else None
    long = long_table(loaded, suite, reported, columns)
    if fmt == "csv":
        return to_csv(long)
    if fmt == "markdown":
        return to_markdown(long, caption)
    return to_latex(long, caption, label)
