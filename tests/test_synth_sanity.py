"""The sanity models' expected scores on synth-mixed2, read from their records."""

from __future__ import annotations

import pytest

import avbench
from avbench.record import load_record

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed2")
    for model in ("oracle", "oracle-one", "random"):
        avbench.evaluate(model, "synth-mixed2", out=root / model, cache_dir=root / "cache")
    return root, {m: load_record(root / m / "record.json") for m in ("oracle", "oracle-one", "random")}


def value(record, name):
    return record.metric(name).value


def test_class_representation_orders_the_sanity_models(mixed):
    _, r = mixed
    assert value(r["oracle"], "CRS[clip-synth]") >= 0.9
    assert value(r["oracle"], "R@2*[clip-synth]") >= 0.8
    assert 0.4 <= value(r["oracle-one"], "CRS[clip-synth]") <= 0.6
    assert value(r["random"], "CRS[clip-synth]") <= 0.3
    assert value(r["random"], "R@2*[clip-synth]") <= 0.15


def test_frechet_distance_orders_the_sanity_models(mixed):
    _, r = mixed
    fd = {m: value(rec, "FD[clip-synth]") for m, rec in r.items()}
    assert fd["oracle"] < fd["oracle-one"] < fd["random"]
    assert abs(fd["oracle"]) < 1e-6  # the oracle's images are the reference set


def test_per_source_images_of_the_oracle_are_matched(mixed):
    _, r = mixed
    assert value(r["oracle"], "sep-acc[clip-synth]") >= 0.9
    assert value(r["random"], "sep-acc[clip-synth]") <= 0.1


def test_records_carry_protocol_and_intervals(mixed):
    _, r = mixed
    crs = r["oracle-one"].metric("CRS[clip-synth]")
    assert crs.ci_low <= crs.value <= crs.ci_high and crs.ci_low < crs.ci_high
    assert crs.backbone == "clip-synth" and crs.protocol == 1
    assert "tie" in str(crs.details).lower()
    assert r["oracle"].weights["clip-synth"]["verified"] is True


def test_second_run_recomputes_nothing(mixed):
    root, r = mixed
    again = avbench.evaluate("oracle-one", "synth-mixed2", out=root / "oracle-one", cache_dir=root / "cache")
    assert again.calls["model_calls"] == 0
    assert again.calls["feature_passes"] == 0
    assert again.comparable() == r["oracle-one"].comparable()
