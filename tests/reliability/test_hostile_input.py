"""Hostile files and names: code-running pickles, paths out of the data root, plugin names that are not registered.

Each payload would create a marker file if it ever ran; every test checks that
the marker never appears, and the pickles are first shown to be live.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from avbench import weights
from avbench.checkpoints import load_state_dict
from avbench.errors import CheckpointError, DataError, ManifestError, RegistryError, WeightsError
from avbench.registry import backbones, metrics, models
from avbench.suites.manifest import dump_items, parse_manifest, resolve_inside

pytestmark = pytest.mark.timeout(300)


class Payload:
    """Unpickling this creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_pickles(folder: Path, marker: Path) -> dict[str, Path]:
    """The ways a checkpoint can smuggle a payload: torch zip, bare pickle, nested, mis-named."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "torch-zip": folder / "evil.pt",
        "bare-pickle": folder / "evil.pth",
        "nested": folder / "nested.ckpt",
        "named-safetensors": folder / "evil.safetensors",
    }
    torch.save({"weight": torch.zeros(2), "extra": Payload(marker)}, files["torch-zip"])
    files["bare-pickle"].write_bytes(pickle.dumps(Payload(marker), protocol=2))
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "optimizer": Payload(marker)}, files["nested"])
    files["named-safetensors"].write_bytes(pickle.dumps(Payload(marker)))
    return files


def test_the_payloads_are_live(tmp_path):
    """A test of refusal only means something if the payload would have run."""
    marker = tmp_path / "ran"
    files = write_pickles(tmp_path / "files", marker)
    torch.load(files["torch-zip"], weights_only=False)
    assert marker.exists()
    marker.unlink()
    pickle.loads(files["bare-pickle"].read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("kind", ["torch-zip", "bare-pickle", "nested", "named-safetensors"])
def test_checkpoints_with_code_are_refused_before_it_runs(kind, tmp_path):
    marker = tmp_path / "ran"
    path = write_pickles(tmp_path / "files", marker)[kind]
    with pytest.raises(CheckpointError, match=str(path.name)) as caught:
        load_state_dict(path)
    assert "refused" in str(caught.value) or "not a valid safetensors file" in str(caught.value)
    assert not marker.exists()


def test_a_plain_safetensors_checkpoint_loads(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.arange(3.0)}, str(tmp_path / "plain.safetensors"))
    assert torch.equal(load_state_dict(tmp_path / "plain.safetensors")["weight"], torch.arange(3.0))


def test_weights_never_unpickle_an_unverified_file(tmp_path, monkeypatch):
    """Weights are hashed before anything reads them; a substituted file fails its hash, unread."""
    from avbench.backbones.catalog import INCEPTION_V3_COMPAT
    from avbench.backbones.inception import load_inception

    monkeypatch.setenv("AVBENCH_HOME", str(tmp_path / "home"))
    marker = tmp_path / "ran"
    evil = write_pickles(tmp_path / "files", marker)["torch-zip"]
    with pytest.raises(WeightsError, match="fails its hash check"):
        weights.import_file(evil, "inception-v3-compat")
    assert list(weights.weights_dir().iterdir()) == []  # not even a temporary file is left

    planted = weights.location("inception-v3-compat")
    planted.write_bytes(evil.read_bytes())
    with pytest.raises(WeightsError, match="fails its hash check"):
        weights.resolve("inception-v3-compat")
    # and the Inception loader, which hands files to torch-fidelity's unpickler, checks them itself first
    with pytest.raises(CheckpointError, match="not a plain tensor state dict"):
        load_inception(INCEPTION_V3_COMPAT, planted, "cpu")
    assert not marker.exists()


# -- paths out of the data root -------------------------------------------------

LINE = {
    "id": "a",
    "seed": 1,
    "labels": ["dog barking", "siren wailing"],
    "sources": [
        {"clip": "a1", "label": "dog barking", "path": "audio/a1.wav"},
        {"clip": "a2", "label": "siren wailing", "path": "audio/a2.wav"},
    ],
}


def with_path(path: str, where: str = "source") -> bytes:
    line = json.loads(json.dumps(LINE))
    if where == "source":
        line["sources"][0]["path"] = path
    else:
        line["frame"] = {"path": path, "rule": "first"}
    return dump_items([line])


@pytest.mark.parametrize("where", ["source", "frame"])
@pytest.mark.parametrize(
    "path, message",
    [
        ("../secret.wav", "leaves the data root"),
        ("audio/../../secret.wav", "leaves the data root"),
        ("/etc/passwd", "is absolute"),
        ("C:/secret.wav", "is absolute"),
        ("audio\\..\\..\\secret.wav", "must use '/' separators"),
        ("audio/a1.wav\x00.png", "no NUL"),
    ],
)
def test_manifest_paths_leaving_the_root_are_refused(path, message, where):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(with_path(path, where), "m.jsonl")


def make_data_root(tmp_path: Path) -> tuple[Path, Path]:
    """A data root with one real clip, and a folder outside it holding a 'secret' clip."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "audio").mkdir(parents=True)
    outside.mkdir()
    clip = (0.1 * np.sin(np.arange(16000) / 5.0)).astype(np.float32)
    sf.write(root / "audio" / "a2.wav", clip, 16000)
    sf.write(outside / "secret.wav", clip, 16000)
    return root, outside


def test_symlinks_out_of_the_root_are_refused_and_inside_ones_allowed(tmp_path):
    root, outside = make_data_root(tmp_path)
    (root / "audio" / "a1.wav").symlink_to(outside / "secret.wav")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "audio" / "inside.wav").symlink_to(root / "audio" / "a2.wav")
    for relative in ("audio/a1.wav", "linked/secret.wav"):
        with pytest.raises(DataError, match="outside the data root"):
            resolve_inside(root, relative, "clip a1")
    assert resolve_inside(root, "audio/inside.wav", "clip a1") == (root / "audio" / "a2.wav").resolve()


# -- the command line, in fresh processes -----------------------------------------

EVIL_MODULE = "from pathlib import Path\nPath({marker!r}).touch()\nclass Model: pass\n"


@pytest.fixture(scope="module")
def cli_answers(tmp_path_factory, write_separation_suite):
    """Every hostile command, run at once as `python -m avbench` from a folder holding evil.py."""
    base = tmp_path_factory.mktemp("hostile-cli")
    marker = base / "imported"
    (base / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    root, outside = make_data_root(base)
    (root / "audio" / "a1.wav").symlink_to(outside / "secret.wav")
    suite = write_separation_suite(base, "hostile", with_path("audio/a1.wav"))
    payload = write_pickles(base / "files", base / "unpickled")["torch-zip"]
    commands = {
        "weights-name": ["weights", "import", str(payload), "--name", "../../x"],
        "symlink-run": [
            "run",
            "--model",
            "oracle",
            "--suite",
            str(suite),
            "--data-root",
            str(root),
            "--out",
            str(base / "run"),
        ],
    }
    for name in ("os:system", "evil", str(base / "evil.py")):
        commands[f"model {name}"] = ["run", "--model", name, "--suite", "synth-sep", "--out", str(base / "never")]
    env = {
        **os.environ,
        "AVBENCH_HOME": str(base / "home"),
        "PYTHONPATH": os.pathsep.join([str(base), os.environ.get("PYTHONPATH", "")]),
    }
    running = {
        key: subprocess.Popen(
            [sys.executable, "-m", "avbench", *args],
            cwd=base,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, args in commands.items()
    }
    answers = {key: (proc.wait(timeout=240), proc.stdout.read() + proc.stderr.read()) for key, proc in running.items()}
    return answers, base


def test_weights_import_refuses_a_path_as_name(cli_answers):
    answers, base = cli_answers
    code, output = answers["weights-name"]
    assert (
        code == 2
        and "invalid weights name '../../x'" in output
        and "not a path" in output
        and "Traceback" not in output
    )
    assert not (base / "x").exists() and not (base / "home" / "weights").exists()
    assert not (base / "unpickled").exists()


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", "x\\..\\y", ""])
def test_weights_names_that_are_paths_are_refused(name, tmp_path, monkeypatch):
    monkeypatch.setenv("AVBENCH_HOME", str(tmp_path / "home"))
    source = tmp_path / "file.bin"
    source.write_bytes(b"weights")
    with pytest.raises(WeightsError, match="invalid weights name"):
        weights.import_file(source, name)
    assert not (tmp_path / "home").exists()


def test_a_run_reading_a_symlink_out_of_the_root_exits_2(cli_answers):
    answers, base = cli_answers
    code, output = answers["symlink-run"]
    assert code == 2 and "outside the data root" in " ".join(output.split()) and "Traceback" not in output
    assert not (base / "run" / "outputs").exists()


@pytest.mark.parametrize("name", ["os:system", "evil", "evil.py"])
def test_unregistered_model_names_are_never_imported_by_the_cli(name, cli_answers):
    answers, base = cli_answers
    key = next(k for k in answers if k.startswith("model ") and k.endswith(name))
    code, output = answers[key]
    assert code == 2 and "unknown model" in output and "Traceback" not in output
    assert not (base / "imported").exists()
    assert not (base / "never").exists()


@pytest.mark.parametrize("registry", [models, metrics, backbones], ids=["models", "metrics", "backbones"])
@pytest.mark.parametrize("name", ["os:system", "subprocess:call", "evil", "evil:Model", "evil.py", "../evil"])
def test_unregistered_names_are_never_imported_by_the_registries(registry, name, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    target = str(tmp_path / name) if name == "evil.py" else name
    with pytest.raises(RegistryError, match="unknown"):
        registry.get(target)
    assert not marker.exists() and "evil" not in sys.modules


# --- official-format files that need an allow-list, and configs that ask for too much -----------------------


class SystemPayload:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _icgan_folder(folder: Path, config_extra: dict, best_is=None) -> Path:
    """A Sound2Scene checkpoint folder whose IC-GAN state file carries whatever `config_extra` holds."""
    icgan = folder / "icgan_biggan_imagenet_res128"
    icgan.mkdir(parents=True)
    torch.save({"audnet.fc.bias": torch.zeros(2048)}, folder / "sound2scene.pth")
    config = {
        "resolution": 128,
        "G_ch": 4,
        "dim_z": 120,
        "shared_dim_feat": 32,
        "hier": True,
        "G_attn": "64",
        "instance_cond": True,
        "class_cond": False,
        "G_shared_feat": True,
        "G_param": "SN",
        "G_activation": torch.nn.ReLU(),
        "D_activation": torch.nn.ReLU(),
        **config_extra,
    }
    state = {
        "itr": 1,
        "epoch": 1,
        "save_num": 0,
        "save_best_num": 0,
        "best_IS": np.float64(1.0) if best_is is None else best_is,
        "best_FID": 10.0,
        "es_epoch": 0,
        "config": config,
    }
    torch.save(state, icgan / "state_dict_best0.pth")
    torch.save({}, icgan / "G_ema_best0.pth")
    return folder


@pytest.mark.parametrize("where", ["config", "best_IS"])
@pytest.mark.parametrize("payload", [Payload, SystemPayload], ids=["open", "os.system"])
def test_an_icgan_state_file_with_a_foreign_class_is_refused_before_it_runs(where, payload, tmp_path):
    from avbench.baselines.sound2scene.model import Sound2Scene

    marker = tmp_path / "ran"
    evil = payload(marker)
    folder = _icgan_folder(
        tmp_path / "ckpt", {"G_activation": evil} if where == "config" else {}, evil if where == "best_IS" else None
    )
    state_file = folder / "icgan_biggan_imagenet_res128" / "state_dict_best0.pth"
    with pytest.raises(CheckpointError, match="refused") as caught:
        Sound2Scene.from_checkpoint(folder)
    assert state_file.name in str(caught.value)
    assert not marker.exists()
    # the allow-list was scoped to that one load: a plain torch.load still refuses even the official classes
    with pytest.raises(pickle.UnpicklingError):
        torch.load(
            _icgan_folder(tmp_path / "clean", {}) / "icgan_biggan_imagenet_res128" / "state_dict_best0.pth",
            weights_only=True,
        )
    assert not marker.exists()


@pytest.mark.parametrize(
    "field, value",
    [("G_ch", 100_000_000), ("dim_z", 1e8), ("shared_dim_feat", "100000000"), ("G_ch", -4), ("resolution", 2**40)],
)
def test_icgan_config_sizes_are_refused_before_anything_is_built(field, value, tmp_path, monkeypatch):
    from avbench.baselines.common import biggan
    from avbench.baselines.sound2scene import model as s2s

    def never(*args, **kwargs):
        raise AssertionError("a network was built from an unchecked config")

    monkeypatch.setattr(biggan.BigGANGenerator, "__init__", never)
    monkeypatch.setattr(s2s.Sound2SceneNet, "__init__", never)
    folder = _icgan_folder(tmp_path / "ckpt", {field: value})
    with pytest.raises(CheckpointError, match=f"'{field}'"):
        s2s.Sound2Scene.from_checkpoint(folder)


@pytest.mark.parametrize(
    "field, value",
    [
        ("audio.widths", [64, 128, 256, 100_000_000]),
        ("audio.out_dim", 1e8),
        ("generator.ch", 10**9),
        ("spectrogram.clip_samples", 10**12),
    ],
)
def test_a_safetensors_metadata_config_cannot_ask_for_a_huge_network(field, value, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from avbench.baselines.common.checkpoint_io import CONFIG_KEY, MODEL_KEY, config_to_json
    from avbench.baselines.sound2scene import model as s2s

    monkeypatch.setattr(s2s.Sound2SceneNet, "__init__", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
    config = json.loads(config_to_json(s2s.PAPER))
    section, name = field.split(".")
    config[section][name] = value
    path = tmp_path / "model.safetensors"
    save_file(
        {"generator.linear.weight": torch.zeros(1)},
        str(path),
        metadata={MODEL_KEY: "sound2scene", CONFIG_KEY: json.dumps(config)},
    )
    with pytest.raises(CheckpointError, match=f"'{field}'.*outside"):
        s2s.Sound2Scene.from_checkpoint(path)


@pytest.mark.parametrize(
    "path, value",
    [
        (("separator", "NC (CustomUNet default, separator.py:122)"), 10**8),
        (("mlp (custom.py:140-147)", "hidden"), {"full": 2048, "tiny": 1e8}),
    ],
)
def test_a_conformance_architecture_config_cannot_ask_for_a_huge_network(path, value, tmp_path, monkeypatch):
    from avbench.baselines.macs import paper
    from avbench.baselines.macs.model import MACS

    monkeypatch.setattr(paper, "PaperMACS", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
    fixture = Path(__file__).parents[1] / "fixtures" / "conformance" / "macs"
    architecture = json.loads((fixture / "config.json").read_text())
    architecture[path[0]][path[1]] = value
    with pytest.raises(CheckpointError, match="outside the supported range"):
        MACS.from_checkpoint(fixture, architecture=architecture)


def test_an_avgas_metadata_bomb_is_refused_before_any_allocation(tmp_path):
    """A 2.5 MB file whose config asks for hidden = 1e8 (51 GB of weights): refused; loading it raises the peak RSS
    by less than 500 MB over the imports' (`import torch` alone peaks near 510 MB here)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from avbench.baselines.avgas.model import SYNTH_WEIGHTS

    with safe_open(str(SYNTH_WEIGHTS), "pt") as handle:
        metadata = handle.metadata()
    config = json.loads(metadata["avbench.config"])
    config["separator"]["hidden"] = 100_000_000
    bomb = tmp_path / "bomb.safetensors"
    save_file(load_file(str(SYNTH_WEIGHTS)), str(bomb), metadata={**metadata, "avbench.config": json.dumps(config)})
    probe = (
        "import resource\n"
        "from avbench.baselines.avgas.model import AVGAS\n"
        "from avbench.errors import CheckpointError\n"
        "imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"try:\n    AVGAS.from_checkpoint({str(bomb)!r})\n"
        "except CheckpointError as exc:\n    print('refused:', exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - imported) // 1024)\n"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=240)
    refusal, growth_mb = answer.stdout.strip().splitlines()
    assert "refused:" in refusal and "'separator.hidden' = 100000000" in refusal
    assert int(growth_mb) < 500, answer.stdout
