"""Acceptance of the synthetic baselines on `synth-mixed2`, judged from run records.

AV-GAS's claim, reproduced on the embedded world: from a two-class mixture it
depicts both classes better than Sound2Scene (CRS and R@2*, with bootstrap
intervals that do not overlap), and its per-source images separate the
classes far above the `random` sanity model (sep-acc).
"""

from __future__ import annotations

import pytest

from avbench.baselines.avgas.model import AVGAS
from avbench.baselines.sound2scene.model import Sound2Scene
from avbench.errors import RecordError

SUITE = "synth-mixed2"
CRS, R2, SEP = "CRS[clip-synth]", "R@2*[clip-synth]", "sep-acc[clip-synth]"


@pytest.fixture(scope="module")
def records(leaderboard_runs):
    """The committed leaderboard's runs, made here with the default (shipped) checkpoints."""
    found = leaderboard_runs.records(SUITE)
    assert found["avgas"].model.entry == f"{AVGAS.__module__}:{AVGAS.__qualname__}"
    assert found["sound2scene"].model.entry == f"{Sound2Scene.__module__}:{Sound2Scene.__qualname__}"
    return found


def _above(better, worse) -> bool:
    """True iff the two 95% bootstrap intervals do not overlap, `better` on top."""
    return better.ci_low > worse.ci_high


@pytest.mark.timeout(900)
def test_avgas_depicts_both_classes_better_than_sound2scene(records):
    for metric in (CRS, R2):
        avgas, sound2scene = records["avgas"].metric(metric), records["sound2scene"].metric(metric)
        assert _above(avgas, sound2scene), (metric, avgas, sound2scene)


@pytest.mark.timeout(900)
def test_avgas_per_source_images_separate_far_above_random(records):
    avgas, random = records["avgas"].metric(SEP), records["random"].metric(SEP)
    assert _above(avgas, random), (avgas, random)
    assert avgas.value >= random.value + 0.3
    assert records["oracle"].metric(SEP).value >= avgas.value


@pytest.mark.timeout(900)
def test_sanity_models_bracket_the_baselines(records):
    for name in ("avgas", "sound2scene"):
        crs = records[name].metric(CRS)
        assert _above(crs, records["random"].metric(CRS)), (name, crs)
        assert records["oracle"].metric(CRS).value >= crs.value
    with pytest.raises(RecordError):  # Sound2Scene renders one image per clip: no per-source task
        records["sound2scene"].metric(SEP)
