"""Models that raise, return NaN, the wrong shape, type or count, or hang: each fault is one failed item.

Never a number.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import avbench
from avbench.errors import AvbenchError
from avbench.models.sanity import OracleModel
from avbench.record import load_record
from avbench.suites.spec import load_suite

pytestmark = pytest.mark.timeout(300)
LIMIT = 10
ITEM_TIMEOUT = 2.0
RELEASE = threading.Event()  # hung calls wait on it; set after each test so no thread outlives it
IDS = [item.id for item in load_suite("synth-sep").items[:LIMIT]]

# item -> (fault, what its failure reason must say)
FAULTS = {
    IDS[1]: ("raise", "model raised RuntimeError: cannot separate"),
    IDS[2]: ("nan", "waveform contains NaN or infinity"),
    IDS[4]: ("shape", "expected shape (2, T<=32000), got (1, 32000)"),
    IDS[5]: ("dtype", "expected a float array [S, T], got int16"),
    IDS[6]: ("hang", f"model raised TimeoutError: no answer within {ITEM_TIMEOUT:g} s (--item-timeout)"),
    IDS[8]: ("drop", "expected a list of 1 outputs, got list of length 0"),
}
OK_IDS = [i for i in IDS if i not in FAULTS]


class FaultyModel(OracleModel):
    """The true sources plus seeded noise, except for the faulty items of `faults`."""

    name = "faulty"
    faults: ClassVar[dict[str, str]] = {}

    def separate_audio(self, batch):
        kinds = [self.faults.get(item) for item in batch.item_ids]
        if "raise" in kinds:
            raise RuntimeError("cannot separate this batch")
        if "hang" in kinds:
            RELEASE.wait(120)
        outputs = []
        for k, (sources, kind) in enumerate(zip(super().separate_audio(batch), kinds, strict=False)):
            noisy = sources + 0.05 * np.random.default_rng(batch.seeds[k]).standard_normal(sources.shape).astype(
                np.float32
            )
            if kind == "nan":
                noisy[0, 100] = np.nan
            elif kind == "shape":
                noisy = noisy[:1]
            elif kind == "dtype":
                noisy = (noisy * 1000).astype(np.int16)
            if kind != "drop":
                outputs.append(noisy)
        return outputs


def model_with(faults: dict[str, str]) -> type:
    return type("Faulty", (FaultyModel,), {"faults": faults})


def evaluate_faulty(out: Path, on_error: str):
    """The registered "faulty" model on the first LIMIT items of synth-sep: each test only picks the error policy."""
    return avbench.evaluate(
        "faulty",
        "synth-sep",
        out=out,
        cache_dir=out / "cache",
        limit=LIMIT,
        batch_size=4,
        workers=0,
        on_error=on_error,
        item_timeout=ITEM_TIMEOUT,
    )


@pytest.fixture(autouse=True)
def release_hung_calls():
    RELEASE.clear()
    yield
    RELEASE.set()


def test_skip_marks_each_fault_failed_with_its_reason_and_scores_only_the_rest(register_model, tmp_path):
    register_model("faulty", model_with({item: kind for item, (kind, _) in FAULTS.items()}))
    record = evaluate_faulty(tmp_path, on_error="skip")

    assert record.n.effective == LIMIT and record.n.failed == len(FAULTS)
    assert {f.item: f.reason for f in record.failures}.keys() == FAULTS.keys()
    for failure in record.failures:
        assert failure.task == "separate_audio"
        assert FAULTS[failure.item][1] in failure.reason
    assert f"{len(FAULTS)} item(s) failed and are excluded from every metric" in record.warnings

    items = pd.read_csv(tmp_path / "items.csv", keep_default_na=False, na_values=[""]).set_index("item")
    assert sorted(items.index) == IDS
    failed = items.loc[list(FAULTS)]
    assert (failed.status == "failed").all()
    for item, (_, reason) in FAULTS.items():
        assert reason in items.at[item, "reason"]
    ok = items.loc[OK_IDS]
    assert (ok.status == "ok").all() and (ok.reason.isna()).all()
    for entry in record.metrics:
        assert failed[entry.name].isna().all(), f"{entry.name}: a failed item has a number"
        assert np.isfinite(ok[entry.name]).all()
        assert entry.n == len(OK_IDS) and entry.skipped == 0
        assert entry.value == pytest.approx(ok[entry.name].mean(), rel=1e-12)
    assert load_record(tmp_path).comparable() == record.comparable()


@pytest.mark.parametrize("item", list(FAULTS), ids=[kind for kind, _ in FAULTS.values()])
def test_stop_ends_the_run_at_the_first_fault_naming_item_and_reason(item, register_model, tmp_path):
    kind, reason = FAULTS[item]
    register_model("faulty", model_with({item: kind}))
    with pytest.raises(AvbenchError) as caught:
        evaluate_faulty(tmp_path, on_error="stop")
    message = str(caught.value)
    assert message.startswith(f"item {item} failed (separate_audio): ")
    assert reason in message and "--on-error skip" in message
    assert not (tmp_path / "record.json").exists()
    assert not (tmp_path / "outputs" / "separate_audio" / f"{item}.done.json").exists()
