"""Leaderboards are pure functions of records: rows, ranking, escaping, formats."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from metric_entries import metric_entry

import avbench.leaderboards as lb
from avbench.defaults import SCHEMA_VERSION
from avbench.errors import RecordError
from avbench.latex import latex_escape
from avbench.record import Counts, MetricEntry, ModelInfo, Record, SuiteInfo, dumps

SUITE = "synth-mixed2"
R1, FID = "R@1[clip-synth]", "FID[inception-v3-compat]"


entry = metric_entry


def record(
    model: str,
    metrics: list[MetricEntry],
    suite: str = SUITE,
    manifest: str = "a" * 64,
    checkpoint: str | None = None,
    failed: int = 0,
    effective: int = 20,
    run: str | None = None,
    spec: str = "c" * 64,
) -> Record:
    return Record(
        schema_version=SCHEMA_VERSION,
        avbench_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        run_key=run or (model.encode().hex() + "0" * 64)[:64],
        model=ModelInfo(model, "1", "m:M", None, checkpoint, False),
        suite=SuiteInfo(suite, "1", 1, f"{suite}.jsonl", manifest, "b" * 64, "synthetic", spec),
        tasks=["generate"],
        seed=0,
        n=Counts(original=20, effective=effective, failed=failed),
        metrics=metrics,
        item_scores_sha256="d" * 64,
        bootstrap={"resamples": 1000, "seed": 0},
        device="cpu",
        batch_size=8,
    )


@pytest.fixture
def three() -> list[Record]:
    return [
        record("good", [entry(R1, 0.8, True, 0.05), entry(FID, 30.0, False)]),
        record("mid", [entry(R1, 0.5, True, 0.05), entry(FID, 10.0, False)], failed=2),
        record("bad", [entry(R1, 0.1, True, 0.05), entry(FID, 50.0, False)]),
    ]


def write_reported(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "papers.csv").write_text(text, "utf-8")
    return directory


REPORTED = f"suite,model,metric,value,source,note\n{SUITE},PaperNet,{R1},0.99,doe2024paper,from Table 2\n"


def markdown_row(text: str, model: str) -> list[str]:
    """The stripped cells of the model's row in a pipe table."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {model} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_one_row_per_model_with_counts(three):
    board = lb.leaderboard(three)
    assert list(board["model"]) == ["good", "mid", "bad"]
    assert list(board[R1]) == [0.8, 0.5, 0.1]
    assert list(board[FID]) == [30.0, 10.0, 50.0]
    assert list(board["failed"]) == [0, 2, 0]
    assert set(board["kind"]) == {"reproduced"}
    long = lb.long_table(three)
    cell = long[(long["model"] == "mid") & (long["metric"] == R1)].iloc[0]
    assert (cell["lo"], cell["hi"], cell["n"]) == pytest.approx((0.45, 0.55, 20))


def test_same_model_name_is_told_apart_by_checkpoint():
    records = [
        record("s2s", [entry(R1, 0.3, True)], checkpoint="12345678" + "0" * 56, run="1" * 64),
        record("s2s", [entry(R1, 0.4, True)], checkpoint="abcdef01" + "0" * 56, run="2" * 64),
    ]
    assert list(lb.leaderboard(records)["model"]) == ["s2s (12345678)", "s2s (abcdef01)"]


def test_bold_best_respects_direction(three):
    text = lb.to_markdown(lb.long_table(three))
    assert "R@1[clip-synth] ↑" in text and "FID[inception-v3-compat] ↓" in text
    assert markdown_row(text, "good")[3:] == ["**0.800 ± 0.050**", "30.00"]  # highest R@1
    assert markdown_row(text, "mid")[3:] == ["0.500 ± 0.050", "**10.00**"]  # lowest FID
    assert text.count("**") == 4


def test_columns_select_by_bare_or_full_name(three):
    assert list(lb.leaderboard(three, columns=["FID", R1]).columns[-2:]) == [FID, R1]
    with pytest.raises(RecordError, match="no metric matches column 'IS'"):
        lb.leaderboard(three, columns=["IS"])


def test_latex_escape_fixed_strings():
    assert latex_escape("a_b&c%<script>") == r"a\_b\&c\%\textless{}script\textgreater{}"
    assert latex_escape("\\ $ # { } ~ ^") == r"\textbackslash{} \$ \# \{ \} \textasciitilde{} \textasciicircum{}"


def test_latex_table(three, tmp_path):
    records = three + [record("a_b&c%<script>", [entry(R1, 0.2, True), entry(FID, 40.0, False, skipped=3)])]
    reported = lb.load_reported(write_reported(tmp_path, REPORTED))
    tex = lb.to_latex(lb.long_table(records, reported=reported), caption="R@1 & FID, 95% CI", label="tab:main")
    lines = tex.splitlines()
    assert lines[:5] == [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{R@1 \& FID, 95\% CI}",
        r"\label{tab:main}",
        r"\begin{tabular}{lrrccl}",
    ]
    assert (
        lines[6]
        == r"Model & $n$ & Failed & R@1{[}clip-synth{]} $\uparrow$ & FID{[}inception-v3-compat{]} $\downarrow$ "
        r"& Source \\"
    )
    assert r"good & 20 & 0 & \textbf{0.800 $\pm$ 0.050} & \underline{30.00} &  \\" in lines
    assert r"mid & 20 & 2 & \underline{0.500 $\pm$ 0.050} & \textbf{10.00} &  \\" in lines
    assert r"bad & 20 & 0 & 0.100 $\pm$ 0.050 & 50.00 &  \\" in lines
    assert r"a\_b\&c\%\textless{}script\textgreater{} & 20 & 0 & 0.200 & 40.00$^\dagger$ &  \\" in lines
    assert "a_b&c" not in tex
    # reported row below its own rule, cited, never ranked although its R@1 is the highest
    assert lines.index(r"PaperNet &  &  & 0.990 &  & \cite{doe2024paper} \\") == lines.index(r"\bottomrule") - 1
    assert lines[lines.index(r"\bottomrule") - 2] == r"\midrule"
    assert [line for line in lines if line.startswith(r"\toprule")] == [r"\toprule"]
    assert r"3 of 23 units degenerate" in tex
    # without pdflatex: braces balance and every row has one cell per column
    plain = re.sub(r"\\[{}&%]", "", tex)
    assert plain.count("{") == plain.count("}")
    assert {line.count("&") for line in plain.splitlines() if line.endswith("\\\\") and "tabular" not in line} == {5}


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(three, tmp_path):
    records = three + [record("a_b&c%<script>~^#$", [entry(R1, 0.2, True)])]
    reported = lb.load_reported(write_reported(tmp_path / "rep", REPORTED))
    table = lb.to_latex(lb.long_table(records, reported=reported), caption="Main results", label="tab:main")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        + table
        + "\\begin{thebibliography}{1}\\bibitem{doe2024paper} Doe.\\end{thebibliography}\n\\end{document}\n",
        "utf-8",
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_csv_is_long_and_round_trips(three):
    text = lb.to_csv(lb.long_table(three))
    frame = pd.read_csv(io.StringIO(text))
    assert list(frame.columns) == lb.CSV_FIELDS
    assert len(frame) == 6
    row = frame[(frame["model"] == "mid") & (frame["metric"] == R1)].iloc[0]
    assert (row["value"], row["lo"], row["hi"], row["n"], row["failed"], row["kind"]) == (
        0.5,
        0.45,
        0.55,
        20,
        2,
        "reproduced",
    )
    assert frame[frame["metric"] == FID]["lo"].isna().all()  # no interval was recorded: none invented


def test_reported_rows_are_separate_and_marked(three, tmp_path):
    directory = write_reported(tmp_path, REPORTED + f"other-suite,PaperNet,{R1},0.5,doe2024paper,\n")
    board = lb.leaderboard(three, reported=directory)
    assert list(board["kind"]) == ["reproduced"] * 3 + ["reported"]
    paper = board.iloc[3]
    assert (paper["model"], paper["source"], paper[R1]) == ("PaperNet", "doe2024paper", 0.99)
    assert pd.isna(paper[FID]) and pd.isna(paper["failed"])  # unknown stays empty
    text = lb.to_markdown(lb.long_table(three, reported=directory))
    assert markdown_row(text, "PaperNet") == ["PaperNet", "reported", "doe2024paper", "", "", "0.990", ""]
    assert markdown_row(text, "good")[5] == "**0.800 ± 0.050**"
    assert [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("|")][2:] == [
        "good",
        "mid",
        "bad",
        "PaperNet",
    ]


def test_reported_metric_with_other_backbone_gets_its_own_column(three, tmp_path):
    directory = write_reported(
        tmp_path,
        REPORTED.splitlines()[0] + f"\n{SUITE},PaperNet,FID[inception-v3-cleanfid],12.5,doe2024paper,clean-fid\n",
    )
    board = lb.leaderboard(three, reported=directory, columns=["FID"])
    assert list(board.columns[-2:]) == [FID, "FID[inception-v3-cleanfid]"]
    assert board["FID[inception-v3-cleanfid]"].notna().tolist() == [False, False, False, True]
    assert "FID[inception-v3-cleanfid] ↓" in lb.to_markdown(lb.long_table(three, reported=directory))


@pytest.mark.parametrize(
    "line, message",
    [
        (f"{SUITE},X,{R1},,k,\n", "not a finite number"),
        (f"{SUITE},X,R@1,0.5,k,\n", "must name its backbone"),
        (f"{SUITE},X,{R1},0.5,bad key,\n", "citation key"),
    ],
)
def test_bad_reported_lines_are_refused(tmp_path, line, message):
    with pytest.raises(RecordError, match=message):
        lb.load_reported(write_reported(tmp_path, "suite,model,metric,value,source,note\n" + line))


def test_shipped_reported_numbers():
    reported = lb.load_reported(lb.REPORTED_DIR)
    llp = reported[reported["suite"] == "llp-multi"].set_index("model")
    assert llp.loc["MACS", "value"] == 87.09 and llp.loc["Sound2Scene", "value"] == 105.14
    assert set(llp["metric"]) == {"FID[inception-v3-cleanfid]"}
    assert all("clean-fid" in note for note in llp["note"])


def test_mismatching_suites_are_refused(three):
    other = record("x", [entry(R1, 0.5, True)], manifest="c" * 64)
    with pytest.raises(RecordError, match=r"good .*manifest aaaaaaaaaaaa.* and x .*manifest cccccccccccc"):
        lb.leaderboard(three + [other])
    elsewhere = record("y", [entry(R1, 0.5, True)], suite="synth-single", manifest="c" * 64)
    assert list(lb.leaderboard(three + [elsewhere], suite="synth-single")["model"]) == ["y"]
    with pytest.raises(RecordError, match="no record for suite 'nope'"):
        lb.leaderboard(three, suite="nope")


def test_failures_and_partial_runs_are_visible():
    records = [
        record("a", [entry(R1, 0.5, True, skipped=2, n=18)], failed=2),
        record("b", [entry(R1, 0.4, True)], effective=15),
    ]
    text = lb.to_markdown(lb.long_table(records))
    assert markdown_row(text, "a") == ["a", "20", "2", "**0.500** †"]
    assert markdown_row(text, "b") == ["b", "15/20", "0", "0.400"]
    assert "† a, R@1\\[clip-synth\\]" not in text and "† a, R@1[clip-synth]: 2 of 20 units degenerate" in text


def test_render_reads_run_dirs_and_files(three, tmp_path):
    paths = []
    for index, rec in enumerate(three):
        run = tmp_path / f"run{index}"
        run.mkdir()
        (run / "record.json").write_text(dumps(rec), "utf-8")
        paths.append(run if index % 2 else run / "record.json")
    empty = tmp_path / "no-reported"
    empty.mkdir()
    assert lb.render(paths, "csv", reported_dir=empty) == lb.to_csv(lb.long_table(three))
    assert lb.render(paths, "markdown", reported_dir=empty, columns=["FID"]).count("|") > 0
    assert lb.render(paths, "latex", reported_dir=empty).startswith(r"\begin{tabular}")
    with pytest.raises(RecordError, match="unknown leaderboard format"):
        lb.render(paths, "html")
