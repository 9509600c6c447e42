"""Reference features exported on one machine are a cache hit on another."""

from __future__ import annotations

import numpy as np
import pytest

import avbench
from avbench import reference_sets
from avbench.errors import AvbenchError

pytestmark = pytest.mark.timeout(600)


def test_exported_reference_features_are_reused_by_a_run(tmp_path):
    meta = reference_sets.export("synth-mixed2", "clip-synth", tmp_path / "ref.npz", cache_dir=tmp_path / "made-here")
    assert meta["n"] == 200 and meta["backbone"]["name"] == "clip-synth"

    fresh_cache = tmp_path / "elsewhere"
    reference_sets.import_file(tmp_path / "ref.npz", cache_dir=fresh_cache)
    record = avbench.evaluate("oracle", "synth-mixed2", out=tmp_path / "run", cache_dir=fresh_cache)
    # generated, per-source and text features are computed; the reference set is not
    assert record.calls["feature_cache_hits"] >= 1
    with np.load(tmp_path / "ref.npz") as data:
        assert data["embedding"].shape == (200, 128)
    assert record.metric("FD[clip-synth]").value == pytest.approx(0.0, abs=1e-6)


def test_a_file_for_other_weights_is_refused(tmp_path):
    reference_sets.export(
        "synth-sep", "clip-synth", tmp_path / "ref.npz", which="source_frames", cache_dir=tmp_path / "c"
    )
    with np.load(tmp_path / "ref.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["__meta__"] = np.array(str(arrays["__meta__"]).replace('"weights": "', '"weights": "00'))
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(AvbenchError, match="this installation pins"):
        reference_sets.import_file(tmp_path / "tampered.npz", cache_dir=tmp_path / "c2")
