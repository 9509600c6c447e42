"""The runner end to end on the synthetic separation suite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import avbench
from avbench.record import load_record

pytestmark = pytest.mark.timeout(300)


def avbench_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "avbench", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)


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
    args = ["run", "--model", "slow-oracle", "--suite", "synth-sep", "--limit", "40", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache")]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), *args, "--out", str(killed_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outputs = killed_dir / "outputs" / "separate_audio"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(outputs.glob("*.done.json"))) < 12:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(outputs.glob("*.done.json")))
    assert 12 <= partial < 40, "the kill must land during generation"
    assert not (killed_dir / "record.json").exists()

    resumed = subprocess.run([sys.executable, str(script), *args, "--out", str(killed_dir)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run([sys.executable, str(script), *args, "--out", str(tmp_path / "clean")], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr

    a, b = load_record(killed_dir), load_record(tmp_path / "clean")
    assert a.comparable() == b.comparable()
    assert a.calls["model_calls"] == 10 - partial // 4  # only the unfinished batches were generated again
    assert len(list(outputs.glob("*.done.json"))) == 40
    assert not list(outputs.glob("*.tmp")) and not list(outputs.glob(".*"))


def _suite_with_manifest(tmp_path: Path, manifest: bytes, data: str = "files") -> Path:
    from avbench.data.manifest import sha256_bytes

    spec = {
        "name": "tiny", "version": "1", "protocol": 1, "tasks": ["separate_audio"], "sample_rate": 16000, "clip_seconds": 1.0,
        "classes": ["dog barking", "siren wailing"], "manifest": "tiny.jsonl", "manifest_sha256": sha256_bytes(manifest),
        "data": data, "dataset": "test", "metrics": [{"metric": "separation", "task": "separate_audio"}],
    }
    (tmp_path / "tiny.jsonl").write_bytes(manifest)
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    return tmp_path / "tiny.json"


GOOD_LINE = '{"id":"a","seed":1,"labels":["dog barking","siren wailing"],"sources":[{"clip":"a1","label":"dog barking","path":"audio/a1.wav"},{"clip":"a2","label":"siren wailing","path":"audio/a2.wav"}]}\n'


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


def test_bad_manifest_line_escaping_path_and_missing_root_exit_2(tmp_path):
    bad = _suite_with_manifest(tmp_path, GOOD_LINE.encode() + b'{"id":"b","seed":1}\n')
    done = avbench_cli("run", "--model", "oracle", "--suite", bad, "--data-root", tmp_path)
    assert done.returncode == 2 and "tiny.jsonl line 2: missing field 'labels'" in done.stderr

    escaping = _suite_with_manifest(tmp_path, GOOD_LINE.replace("audio/a1.wav", "../../etc/passwd").encode())
    done = avbench_cli("run", "--model", "oracle", "--suite", escaping, "--data-root", tmp_path)
    assert done.returncode == 2 and "leaves the data root" in done.stderr

    good = _suite_with_manifest(tmp_path, GOOD_LINE.encode())
    done = avbench_cli("run", "--model", "oracle", "--suite", good)
    assert done.returncode == 2 and "--data-root" in done.stderr


def test_a_failing_run_leaves_earlier_results_intact(sep_runs):
    root, _ = sep_runs
    before = (root / "oracle" / "record.json").read_bytes()
    done = avbench_cli("run", "--model", "random", "--suite", "synth-sep", "--out", root / "oracle")
    assert done.returncode == 2 and "another configuration" in done.stderr
    assert (root / "oracle" / "record.json").read_bytes() == before
