"""Why audited ground truth matters, measured in the embedded world.

synth-mixed2-noisy is synth-mixed2, item for item, except that in half of the
mixtures one source also carries an unlabelled third class, as real clips do
(data_manifests/README.md). The same models are scored against the same
labelled G on both; the shift of each metric is the paired per-item difference,
with its 95% bootstrap interval (the protocol's 1,000 seeded resamples).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avbench.metrics.bootstrap import bootstrap_ci

CLEAN, NOISY = "synth-mixed2", "synth-mixed2-noisy"
MODELS = ("oracle", "avgas")
METRICS = ("CRS[clip-synth]", "R@2*[clip-synth]")


@pytest.fixture(scope="module")
def runs(leaderboard_runs):
    """(suite, model) -> (record, per-item table); clean runs are the leaderboard's own."""
    found = {}
    for suite in (CLEAN, NOISY):
        for model in MODELS:
            record = leaderboard_runs.build.run(model, suite, leaderboard_runs.root)
            items = pd.read_csv(leaderboard_runs.root / suite / model / "items.csv")
            found[suite, model] = record, items
    return found


def _per_item(items: pd.DataFrame, metric: str) -> pd.Series:
    """The metric per item, indexed by the item's number (shared by the two suites)."""
    rows = items[(items["task"] == "generate") & items[metric].notna()]
    return pd.Series(rows[metric].to_numpy(float), index=rows["item"].str.rsplit("-", n=1).str[1])


def shift(runs, model: str, metric: str) -> tuple[float, float, float]:
    """Noisy minus clean, per item: the mean and its 95% paired bootstrap interval."""
    clean, noisy = _per_item(runs[CLEAN, model][1], metric), _per_item(runs[NOISY, model][1], metric)
    assert list(clean.index) == list(noisy.index) and len(clean) == 200
    difference = (noisy - clean).to_numpy()
    low, high = bootstrap_ci(difference)
    return float(difference.mean()), low, high


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("metric", METRICS)
def test_label_noise_lowers_the_metric_beyond_its_interval(runs, model, metric):
    clean, noisy = runs[CLEAN, model][0].metric(metric), runs[NOISY, model][0].metric(metric)
    mean, low, high = shift(runs, model, metric)
    print(
        f"{model} {metric}: clean {clean.value:.3f} [{clean.ci_low:.3f}, {clean.ci_high:.3f}], "
        f"noisy {noisy.value:.3f} [{noisy.ci_low:.3f}, {noisy.ci_high:.3f}], "
        f"shift {mean:+.3f} [{low:+.3f}, {high:+.3f}]"
    )
    assert noisy.ci_high < clean.ci_low  # the two intervals do not overlap
    assert np.isclose(mean, noisy.value - clean.value)  # the per-item table agrees with the record
    assert high < 0


@pytest.mark.timeout(1800)
def test_only_items_with_a_carried_class_move_for_the_oracle(runs):
    """The oracle depicts every sound it is given, so exactly the 100 noisy items can lose a class."""
    from avbench.registry import suites

    items = suites.get(NOISY).items
    carried = {item.id.rsplit("-", 1)[1] for item in items if any("_" in s.clip for s in item.sources)}
    assert len(carried) == 100
    clean = _per_item(runs[CLEAN, "oracle"][1], "CRS[clip-synth]")
    noisy = _per_item(runs[NOISY, "oracle"][1], "CRS[clip-synth]")
    moved = set(clean.index[(noisy != clean).to_numpy()])
    assert moved and moved <= carried
