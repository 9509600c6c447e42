"""`avbench report`: real runs, a built report, and the pages opened in headless Chromium."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import avbench
from avbench.cli import app
from avbench.models.sanity import OracleModel
from avbench.report import build_report
from avbench.report.plots import per_class_means
from avbench.report.runs import load_run
from avbench.suites.manifest import sha256_bytes
from avbench.suites.spec import load_suite, read_suite_file

pytestmark = pytest.mark.timeout(600)

MODELS = ("oracle", "oracle-one", "random")
SUITES = ("synth-mixed2", "synth-sep")
N_ITEMS = 12
HOSTILE = "<script>alert(1)</script> & 50%_x"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


class FlakyOracle(OracleModel):
    """The oracle, except that it fails on one item, with markup in its error message."""

    name = "flaky-oracle"
    failing = "synth-sep-00003"

    def separate_audio(self, batch):
        if self.failing in batch.item_ids:
            raise RuntimeError("<b>boom</b> & gone")
        return super().separate_audio(batch)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Runs of the sanity models on both synthetic suites (one with a failing item), and their report."""
    root = tmp_path_factory.mktemp("report")
    runs = []
    for suite in SUITES:
        for model in MODELS:
            avbench.evaluate(
                model, suite, out=root / suite / model, cache_dir=root / "cache", limit=N_ITEMS, allow_small_n=True
            )
            runs.append(root / suite / model)
    avbench.evaluate(
        FlakyOracle(), "synth-sep", out=root / "flaky", cache_dir=root / "cache", limit=N_ITEMS, on_error="skip"
    )
    runs.append(root / "flaky")
    index = build_report(runs, root / "out")
    pages = {
        (suite, model): index.parent / f"{k:02d}-{model}.html"
        for k, (suite, model) in enumerate(
            [(s, m) for s in SUITES for m in MODELS] + [("synth-sep", "flaky-oracle")], start=1
        )
    }
    return root, runs, index, pages


class Page(HTMLParser):
    """Links, item rows with their metric cells, and the text of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.rows: list[dict] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag == "tr" and "item" in (attrs.get("class") or "").split():
            self.rows.append({"class": attrs["class"].split(), "order": int(attrs["data-order"]), "values": {}})
        if tag == "td" and "data-metric" in attrs:
            value = attrs["data-value"]
            self.rows[-1]["values"][int(attrs["data-metric"])] = float(value) if value else None

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    return Page(path.read_text("utf-8"))


def chromium(profile: Path, target: str, *extra: str) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *extra,
        target,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def media_summary(dom: str) -> dict:
    """What the page's own script found after `load`: item rows, image widths, audio states."""
    match = re.search(r'<pre id="media-summary"[^>]*>(.*?)</pre>', dom, re.S)
    assert match and match.group(1), "the page's script wrote no media summary"
    return json.loads(html.unescape(match.group(1)))


def test_every_link_of_the_report_is_relative_and_present(built):
    root, runs, index, pages = built
    for path in [index, *pages.values()]:
        text = path.read_text("utf-8")
        assert not re.search(r"(?i)https?:", text), f"{path.name} refers to the network"
        for link in parse(path).links:
            assert not link.startswith("/") and ".." not in link, link
            assert (path.parent / link).is_file(), f"{path.name} links to missing {link}"
    linked = set(parse(index).links)
    assert {p.name for p in pages.values()} <= linked
    plots = [link for link in linked if link.endswith(".png")]
    assert len(plots) == 2 * 2 + 1  # bars and per-class for both suites, SDR distributions for synth-sep
    for link in plots:
        with Image.open(index.parent / link) as image:
            assert image.format == "PNG" and image.width > 300


def test_leaderboard_shows_each_record_value(built):
    root, runs, index, pages = built
    text = index.read_text("utf-8")
    table = re.search(r'<table class="leaderboard">.*?</table>', text, re.S).group(0)  # the first suite's
    header = [html.unescape(re.sub(r"<.*?>", "", h)).rsplit(" ", 1)[0] for h in re.findall(r"<th>(.*?)</th>", table)]
    for run in runs[: len(MODELS)]:
        record = avbench.load_record(run)
        row = next(r for r in re.findall(r"<tr>(.*?)</tr>", table, re.S) if f">{record.model.name}</a>" in r)
        cells = [html.unescape(re.sub(r"<.*?>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for name, cell in zip(header, cells, strict=False):
            if "[" in name:
                shown = cell.split("±")[0].strip(" †")
                places = len(shown.split(".")[1]) if "." in shown else 0
                assert float(shown) == pytest.approx(record.metric(name).value, abs=0.51 * 10**-places), (
                    record.model.name,
                    name,
                )


def test_default_order_is_worst_first_by_the_first_metric(built):
    root, runs, index, pages = built
    for run_dir in runs:
        record = avbench.load_record(run_dir)
        table = pd.read_csv(run_dir / "items.csv", dtype={"item": str})
        first = next(e for e in record.metrics if e.name in table.columns)
        values = table.groupby("item")[first.name].max()
        manifest = {item.id: k for k, item in enumerate(load_suite(record.suite.name).items)}
        sign = 1 if first.higher_is_better else -1
        expected = sorted(
            values.index,
            key=lambda i: (0, 0, manifest[i]) if math.isnan(values[i]) else (1, sign * values[i], manifest[i]),
        )
        page = parse(pages[(record.suite.name, record.model.name)])
        assert [r["order"] for r in page.rows] == [manifest[i] for i in expected]
        shown = [r["values"][0] for r in page.rows]
        assert shown == [None if math.isnan(values[i]) else pytest.approx(values[i], rel=1e-12) for i in expected]


def test_failed_item_is_shown_failed_with_its_reason_escaped(built):
    root, runs, index, pages = built
    path = pages[("synth-sep", "flaky-oracle")]
    page = parse(path)
    failed = [r for r in page.rows if "failed" in r["class"]]
    assert len(page.rows) == N_ITEMS and len(failed) == 1
    assert failed[0]["order"] == 3 and all(v is None for v in failed[0]["values"].values())
    text = "".join(page.text)
    assert "failed — model raised RuntimeError: <b>boom</b> & gone" in text
    assert "<b>boom</b>" not in path.read_text("utf-8")


def test_per_class_values_match_items_table_joined_with_labels(built):
    root, runs, index, pages = built
    for run_dir in (runs[0], runs[len(MODELS)]):
        view = load_run(run_dir, {})
        metric = view.metrics[0].name
        table = pd.read_csv(run_dir / "items.csv", dtype={"item": str}).dropna(subset=[metric])
        labels = {item.id: item.labels for item in view.suite.items}
        exploded = table.assign(label=table["item"].map(labels)).explode("label")
        expected = exploded.groupby("label")[metric].agg(["mean", "count"])
        got = per_class_means(view, metric)
        for label, (mean, count) in got.items():
            if count:
                assert (
                    mean == pytest.approx(expected.loc[label, "mean"], rel=1e-12)
                    and count == expected.loc[label, "count"]
                )
            else:
                assert label not in expected.index


@needs_chromium
@pytest.mark.parametrize(
    "suite, images_per_item, audio_per_item", [("synth-mixed2", 1 + 1 + 2, 1), ("synth-sep", 1 + 2, 1 + 2)]
)
def test_run_page_media_load_in_chromium(built, tmp_path, suite, images_per_item, audio_per_item):
    root, runs, index, pages = built
    summary = media_summary(chromium(tmp_path / "profile", pages[(suite, "random")].as_uri(), "--dump-dom"))
    assert summary["items"] == N_ITEMS
    assert len(summary["images"]) == N_ITEMS * images_per_item
    assert all(image["width"] > 0 for image in summary["images"]), [i for i in summary["images"] if not i["width"]]
    assert len(summary["audio"]) == N_ITEMS * audio_per_item
    for audio in summary["audio"]:
        assert audio["canPlay"] in ("maybe", "probably") and audio["error"] is None and audio["readyState"] >= 1, audio
        assert audio["duration"] == pytest.approx(load_suite(suite).clip_seconds, abs=0.01)


@needs_chromium
def test_sorting_in_the_browser_follows_the_chosen_metric(built, tmp_path):
    root, runs, index, pages = built
    path = pages[("synth-mixed2", "random")]
    by_order = Page(chromium(tmp_path / "profile", path.as_uri() + "#sort=order", "--dump-dom"))
    assert [r["order"] for r in by_order.rows] == sorted(r["order"] for r in by_order.rows)
    view = load_run(runs[MODELS.index("random")], {})
    k = len(view.metrics) - 1
    by_last = Page(chromium(tmp_path / "profile", path.as_uri() + f"#sort={k}", "--dump-dom"))
    values = [r["values"].get(k) for r in by_last.rows]
    present = [v for v in values if v is not None]
    assert values == [None] * (len(values) - len(present)) + present
    assert present == sorted(present, reverse=not view.metrics[k].higher_is_better)


@needs_chromium
def test_index_renders_in_chromium(built, tmp_path):
    root, runs, index, pages = built
    summary = media_summary(chromium(tmp_path / "profile", index.as_uri(), "--dump-dom"))
    assert len(summary["images"]) == 5 and all(image["width"] > 300 for image in summary["images"])
    shot = tmp_path / "index.png"
    chromium(tmp_path / "profile", index.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000")
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10 and len(np.unique(pixels)) > 50  # text, tables and plots, not a blank page


def hostile_suite(folder: Path) -> Path:
    """synth-sep with one class, and the suite itself, named HOSTILE; written beside its manifest."""
    suite = load_suite("synth-sep")
    victim = suite.classes[0]
    manifest = suite.manifest_bytes().decode("utf-8").replace(json.dumps(victim), json.dumps(HOSTILE)).encode("utf-8")
    (folder / "hostile.jsonl").write_bytes(manifest)
    spec = json.loads(Path(suite.spec_dir, "synth-sep.json").read_text("utf-8"))
    spec.update(
        name=HOSTILE,
        manifest="hostile.jsonl",
        manifest_sha256=sha256_bytes(manifest),
        classes=[HOSTILE if c == victim else c for c in suite.classes],
    )
    path = folder / "hostile.json"
    path.write_text(json.dumps(spec), "utf-8")
    return path


def test_hostile_names_render_as_text(tmp_path):
    spec = hostile_suite(tmp_path)
    suite = read_suite_file(spec)
    assert sum(HOSTILE in item.labels for item in suite.items[:N_ITEMS]) >= 1

    class HostileOracle(OracleModel):
        name = HOSTILE

    avbench.evaluate(HostileOracle(), str(spec), out=tmp_path / "run", cache_dir=tmp_path / "cache", limit=N_ITEMS)
    out = tmp_path / "out"
    build_report([tmp_path / "run"], out, suites={suite.name: suite})
    pages = sorted(out.glob("*.html"))
    assert [p.name for p in pages] == ["01-script-alert-1-script-50-_x.html", "index.html"]
    escaped = html.escape(HOSTILE)
    for path in pages:
        text = path.read_text("utf-8")
        assert "<script>alert" not in text and text.count("<script>") == 1
        assert escaped in text
    raw, shown = pages[0].read_text("utf-8"), "".join(parse(pages[0]).text)
    hostile_items = sum(HOSTILE in item.labels for item in suite.items[:N_ITEMS])
    assert shown.count(HOSTILE) == raw.count(escaped) >= 2 * hostile_items + 2  # item and source labels, the heading
    if CHROMIUM is not None:
        dom = chromium(tmp_path / "profile", pages[0].as_uri(), "--dump-dom")
        assert "<script>alert" not in dom and escaped in dom


def test_cli_limits_the_items_shown(built, tmp_path):
    root, runs, index, pages = built
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["report", str(runs[0]), "--out", str(out), "--limit-items", "5"])
    assert done.exit_code == 0, done.output
    page = parse(out / "01-oracle.html")
    assert len(page.rows) == 5 and "Showing the 5 worst of 12 items; 7 not shown." in "".join(page.text)
    full = parse(pages[("synth-mixed2", "oracle")])
    assert [r["order"] for r in page.rows] == [r["order"] for r in full.rows[:5]]


def test_a_later_report_removes_the_pages_of_runs_it_no_longer_shows_and_nothing_else(built, tmp_path):
    root, runs, _, _ = built
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # not the report's: never touched
    build_report(runs[:2], out)
    assert (out / "02-oracle-one.html").is_file()
    build_report(runs[:1], out)
    assert sorted(p.name for p in out.glob("*.html")) == ["01-oracle.html", "index.html"]
    assert not (out / "02-oracle-one").exists() and (out / "notes.txt").read_text() == "mine"


def test_a_record_file_is_read_with_the_table_it_names_not_its_folders(built, tmp_path):
    root, runs, _, _ = built
    folder = tmp_path / "x"
    shutil.copytree(runs[0], folder)  # oracle's record.json and items.csv
    shutil.copy(runs[2] / "record.json", folder / "random.record.json")
    shutil.copy(runs[2] / "items.csv", folder / "random.items.csv")
    assert load_run(folder / "random.record.json", {}).record.model.name == "random"
    assert load_run(folder, {}).record.model.name == "oracle"
