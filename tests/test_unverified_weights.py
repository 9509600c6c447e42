"""`avbench weights import FILE --name N --unverified`: layout-checked, hash-checked on load, named everywhere."""

from __future__ import annotations

import pytest
import torch
from fake_weights import wav2clip_state, write_inception
from typer.testing import CliRunner

from avbench import weights
from avbench.cli import app
from avbench.errors import WeightsError

W2C_LAYOUT = "avbench.backbones.layouts:check_wav2clip"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AVBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def save(state: dict, path) -> str:
    torch.save(state, path)
    return weights.hash_file(path)


def test_unverified_copy_is_layout_checked_used_and_hash_checked_on_load(home, tmp_path):
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    sha = save(wav2clip_state(3), good)
    save({k: v for k, v in wav2clip_state(3).items() if not k.startswith("audio_transform.")}, bad)
    with pytest.raises(WeightsError, match="not in Wav2CLIP's layout: missing"):
        weights.import_file(bad, "wav2clip", unverified=True)
    assert not weights.unverified_dir().exists() or not any(weights.unverified_dir().iterdir())
    with pytest.raises(WeightsError, match="no published hash.*--unverified"):  # no opt-in, no import
        weights.import_file(good, "wav2clip")

    copy = weights.import_file(good, "wav2clip", unverified=True)
    assert copy == weights.unverified_dir() / "Wav2CLIP.pt" and weights.hash_file(copy) == sha
    assert weights.resolve("wav2clip") == copy
    assert weights.identity("wav2clip") == (sha, False)
    row = weights.status("wav2clip")
    assert (row["status"], row["actual_sha256"], row["path"]) == ("unverified", sha, str(copy))

    copy.write_bytes(copy.read_bytes()[:-4] + b"\0\0\0\1")  # swapped after import: refused unread
    with pytest.raises(WeightsError, match="fails its hash check: expected sha256 .* \\(noted at import\\)"):
        weights.resolve("wav2clip")
    assert weights.status("wav2clip", rehash=True)["status"] == "corrupt"


def test_a_verified_import_replaces_the_unverified_copy(home, tmp_path):
    published, tuned = tmp_path / "published.pt", tmp_path / "tuned.pt"
    published_sha = save(wav2clip_state(4), published)
    tuned_sha = save(wav2clip_state(5), tuned)
    weights.register_weights(
        weights.WeightsEntry(name="w2c-pinned", file_name="w2c.pt", sha256=published_sha, layout=W2C_LAYOUT)
    )
    try:
        with pytest.raises(WeightsError, match="fails its hash check"):
            weights.import_file(tuned, "w2c-pinned")
        weights.import_file(tuned, "w2c-pinned", unverified=True)
        assert weights.identity("w2c-pinned") == (tuned_sha, False)
        assert (
            weights.unverified_note({"wav2clip": {"sha256": tuned_sha, "verified": False, "entry": "w2c-pinned"}})
            == "unverified weights: w2c-pinned"
        )
        target = weights.import_file(published, "w2c-pinned")
        assert target == weights.weights_dir() / "w2c.pt"
        assert weights.identity("w2c-pinned") == (published_sha, True)
        assert weights.resolve("w2c-pinned") == target
        assert not (weights.unverified_dir() / "w2c.pt").exists()
        assert not (weights.unverified_dir() / "w2c-pinned.json").exists()
        # the published file offered as unverified is simply a verified import
        assert weights.import_file(published, "w2c-pinned", unverified=True) == target
    finally:
        weights.registry.weights.unregister("w2c-pinned")


def test_the_vggsound_inception_is_read_only_in_torch_fidelitys_layout(home, tmp_path):
    """inception-v3-vggsound has no published hash; a copy in another layout (here a 309-way fc) is refused."""
    good = write_inception(tmp_path / "vgg.pth")
    state = torch.load(good, weights_only=True)
    state["fc.weight"], state["fc.bias"] = torch.zeros(309, 2048), torch.zeros(309)
    torch.save(state, tmp_path / "vgg309.pth")
    with pytest.raises(WeightsError, match="does not fit torch-fidelity's InceptionV3"):
        weights.import_file(tmp_path / "vgg309.pth", "inception-v3-vggsound", unverified=True)
    result = CliRunner().invoke(
        app, ["weights", "import", str(good), "--name", "inception-v3-vggsound", "--unverified"]
    )
    assert result.exit_code == 0, result.output
    assert "unverified" in result.output
    listing = CliRunner().invoke(app, ["weights", "list"])
    assert "inception-v3-vggsound" in listing.output and "unverified" in listing.output
    assert weights.identity("inception-v3-vggsound") == (weights.hash_file(good), False)


def test_clip_copies_must_hold_open_clips_keys_and_shapes(home, tmp_path):
    from fake_weights import write_clip_openai

    path = write_clip_openai(tmp_path / "ViT-B-32.pt")
    state = torch.load(path, weights_only=True)
    state["visual.proj"] = torch.zeros(768, 256, dtype=torch.float16)
    torch.save(state, tmp_path / "narrow.pt")
    with pytest.raises(WeightsError, match="visual.proj has shape \\(768, 256\\)"):
        weights.import_file(tmp_path / "narrow.pt", "clip-vit-b32-openai", unverified=True)
    weights.import_file(path, "clip-vit-b32-openai", unverified=True)
    assert weights.status("clip-vit-b32-openai")["status"] == "unverified"
