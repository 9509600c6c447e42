"""The runner end to end on the synthetic separation suite."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import avbench
from avbench.errors import AvbenchError
from avbench.models.sanity import OracleModel
from avbench.record import load_record

pytestmark = pytest.mark.timeout(300)


def avbench_cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "avbench", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def sep_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sep")
    records = {}
    for model in ("oracle", "oracle-one", "random", "mixture"):
        records[model] = avbench.evaluate(model, "synth-sep", out=root / model, cache_dir=root / "cache")
    return root, records


def test_oracle_and_random_bracket_the_separation_scale(sep_runs):
    _, records = sep_runs
    sdr = {m: r.metric("SDR[bss-v3]").value for m, r in records.items()}
    assert sdr["oracle"] > 30
    assert sdr["random"] < 0
    assert sdr["random"] < sdr["mixture"] < sdr["oracle"]
    for name in ("SDR[bss-v3]", "SIR[bss-v3]", "SAR[bss-v3]", "SI-SDR[waveform]"):
        entry = records["mixture"].metric(name)
        assert entry.ci_low <= entry.value <= entry.ci_high
        assert entry.n == records["mixture"].n.effective == 100


def test_record_and_items_table_are_consistent(sep_runs):
    root, records = sep_runs
    items = pd.read_csv(root / "random" / "items.csv")
    assert list(items.columns[:4]) == ["item", "task", "status", "reason"]
    assert len(items) == 100 and (items.status == "ok").all()
    assert items["SDR[bss-v3]"].mean() == pytest.approx(records["random"].metric("SDR[bss-v3]").value, rel=1e-9)
    assert load_record(root / "random").comparable() == records["random"].comparable()


def test_second_run_calls_nothing_and_agrees(sep_runs, tmp_path):
    root, records = sep_runs
    again = avbench.evaluate("mixture", "synth-sep", out=root / "mixture", cache_dir=root / "cache")
    assert again.calls["model_calls"] == 0
    assert again.calls["feature_passes"] == 0
    assert again.comparable() == records["mixture"].comparable()


SLOW_MODEL = textwrap.dedent(
    """
    import sys, time
    import avbench
    from avbench.models.sanity import OracleModel

    class SlowOracle(OracleModel):
        name = "slow-oracle"
        def separate_audio(self, batch):
            time.sleep(0.15)
            return super().separate_audio(batch)

    avbench.register_model("slow-oracle", SlowOracle)
    from avbench.cli import main
    sys.argv = ["avbench", *sys.argv[1:]]
    main()
    """
)


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(SLOW_MODEL)
    args = [
        "run",
        "--model",
        "slow-oracle",
        "--suite",
        "synth-sep",
        "--limit",
        "40",
        "--batch-size",
        "4",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), *args, "--out", str(killed_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    outputs = killed_dir / "outputs" / "separate_audio"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(outputs.glob("*.done.json"))) < 12:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(outputs.glob("*.done.json")))
    assert 12 <= partial < 40, "the kill must land during generation"
    assert not (killed_dir / "record.json").exists()

    resumed = subprocess.run(
        [sys.executable, str(script), *args, "--out", str(killed_dir)], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run(
        [sys.executable, str(script), *args, "--out", str(tmp_path / "clean")], capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stderr

    a, b = load_record(killed_dir), load_record(tmp_path / "clean")
    assert a.comparable() == b.comparable()
    assert a.calls["model_calls"] == 10 - partial // 4  # only the unfinished batches were generated again
    assert len(list(outputs.glob("*.done.json"))) == 40
    assert not list(outputs.glob("*.tmp")) and not list(outputs.glob(".*"))


GOOD_LINE = (
    '{"id":"a","seed":1,"labels":["dog barking","siren wailing"],"sources":['
    '{"clip":"a1","label":"dog barking","path":"audio/a1.wav"},'
    '{"clip":"a2","label":"siren wailing","path":"audio/a2.wav"}]}\n'
)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "oracel", "--suite", "synth-sep"], "Did you mean 'oracle'"),
        (["--model", "oracle", "--suite", "synth-spe"], "Did you mean 'synth-sep'"),
    ],
)
def test_unknown_names_exit_2_with_one_line(args, message, tmp_path):
    done = avbench_cli("run", *args, "--out", tmp_path / "x")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_bad_manifest_line_escaping_path_and_missing_root_exit_2(tmp_path, write_separation_suite):
    bad = write_separation_suite(tmp_path, "tiny", GOOD_LINE.encode() + b'{"id":"b","seed":1}\n')
    done = avbench_cli("run", "--model", "oracle", "--suite", bad, "--data-root", tmp_path)
    assert done.returncode == 2 and "tiny.jsonl line 2: missing field 'labels'" in done.stderr

    escaping = write_separation_suite(tmp_path, "tiny", GOOD_LINE.replace("audio/a1.wav", "../../etc/passwd").encode())
    done = avbench_cli("run", "--model", "oracle", "--suite", escaping, "--data-root", tmp_path)
    assert done.returncode == 2 and "leaves the data root" in done.stderr

    good = write_separation_suite(tmp_path, "tiny", GOOD_LINE.encode())
    done = avbench_cli("run", "--model", "oracle", "--suite", good)
    assert done.returncode == 2 and "--data-root" in done.stderr


def test_a_failing_run_leaves_earlier_results_intact(sep_runs):
    root, _ = sep_runs
    before = (root / "oracle" / "record.json").read_bytes()
    done = avbench_cli("run", "--model", "random", "--suite", "synth-sep", "--out", root / "oracle")
    assert done.returncode == 2 and "another configuration" in done.stderr
    assert (root / "oracle" / "record.json").read_bytes() == before


class CountingOracle(OracleModel):
    """The oracle, counting its calls: a failure known before generation must leave the count at 0."""

    name = "counting-oracle"
    calls = 0

    def generate(self, batch):
        CountingOracle.calls += 1
        return super().generate(batch)

    def generate_per_source(self, batch):
        CountingOracle.calls += 1
        return super().generate_per_source(batch)

    def separate_audio(self, batch):
        CountingOracle.calls += 1
        return super().separate_audio(batch)


def partial_data_root(root: Path, suite: str, present: int) -> Path:
    """A data root holding (empty) files of the first `present` items of `suite`, and nothing else."""
    from avbench.items.sources import data_source
    from avbench.suites.spec import load_suite

    loaded = load_suite(suite)
    root.mkdir(parents=True)
    source = data_source(loaded, root)
    for item in loaded.items[:present]:
        for name in source.missing(item):
            path = Path(name) if Path(name).is_absolute() else root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return root


@pytest.mark.parametrize(
    "case, suite, options, message",
    [
        ("KID subset larger than the run", "synth-mixed2", {"limit": 8}, "KID needs at least 100 items"),
        ("negative seed", "synth-sep", {"seed": -1}, "seed must be an integer in"),
        ("zero limit", "synth-sep", {"limit": 0}, "limit must be an integer >= 1"),
        ("negative limit", "synth-sep", {"limit": -3}, "limit must be an integer >= 1"),
        ("no data at all", "mixed2-mini", {"allow_missing": True, "data_root": "EMPTY"}, "no item of 'mixed2-mini'"),
        ("missing backbone weights", "mixed2-mini", {"allow_missing": True, "data_root": "PARTIAL"}, "weights"),
    ],
)
def test_failures_known_before_generation_happen_before_it(case, suite, options, message, tmp_path):
    roots = {"EMPTY": tmp_path / "empty", "PARTIAL": partial_data_root(tmp_path / "partial", suite, 2)}
    roots["EMPTY"].mkdir()
    options = {k: roots.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    CountingOracle.calls = 0
    with pytest.raises(AvbenchError, match=message):
        avbench.evaluate(CountingOracle(), suite, out=tmp_path / "run", cache_dir=tmp_path / "cache", **options)
    assert CountingOracle.calls == 0
    assert not (tmp_path / "run" / "record.json").exists()


@pytest.mark.parametrize("sub, least", [("kid", 100), ("is", 10)])
def test_small_n_is_refused_before_generation_unless_allowed(sub, least):
    from avbench.scoring import check_metrics_can_run
    from avbench.suites.spec import MetricSpec

    spec = MetricSpec("fidelity", "generate", {"backbone": "clip-synth", "metrics": [sub], "kid_subset_size": 100})
    suite = SimpleNamespace(name="tiny", metrics=[spec])
    with pytest.raises(AvbenchError, match=f"suite 'tiny': {sub.upper()} needs at least {least} items"):
        check_metrics_can_run(suite, ["generate"], least - 1, allow_small_n=False)
    check_metrics_can_run(suite, ["generate"], least - 1, allow_small_n=True)
    check_metrics_can_run(suite, ["generate"], least, allow_small_n=False)
    check_metrics_can_run(suite, ["per_source"], 1, allow_small_n=False)  # a task the run does not do


def test_a_suite_task_the_model_lacks_is_noted_before_generation(tmp_path, caplog):
    from avbench.runner import Run, RunOptions

    class SceneOnly(CountingOracle):
        name, tasks = "scene-only", frozenset({"generate"})

    job = Run(
        RunOptions(model="scene-only", suite="synth-mixed2", out=tmp_path / "run", cache_dir=tmp_path / "c"),
        SceneOnly(),
    )
    try:
        assert job.tasks == ["generate"]
        assert "does not do generate_per_source" in caplog.text and CountingOracle.calls == 0
    finally:
        job.media.close()


def test_a_run_directory_of_another_run_is_never_overwritten_and_the_refusal_says_why(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "record.json").write_text("{}")
    CountingOracle.calls = 0
    with pytest.raises(AvbenchError, match="holds a record.json but no run.json"):
        avbench.evaluate(CountingOracle(), "synth-sep", out=foreign, cache_dir=tmp_path / "c", limit=2)
    assert CountingOracle.calls == 0 and (foreign / "record.json").read_text() == "{}"
    avbench.evaluate(CountingOracle(), "synth-sep", out=tmp_path / "run", cache_dir=tmp_path / "c", limit=2)
    with pytest.raises(AvbenchError, match=r"another configuration \(differs in seed\)"):
        avbench.evaluate(CountingOracle(), "synth-sep", out=tmp_path / "run", cache_dir=tmp_path / "c", limit=2, seed=1)
