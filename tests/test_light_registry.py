"""Reading a built-in backbone's or weights file's registry entry must not import torch.

A warm re-run only needs the specs and pinned hashes (for cache keys); paying
seconds of torch/open_clip imports for that is what the catalogs avoid.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torchvision", "open_clip", "torch_fidelity")

# Runs in a fresh interpreter so modules other tests imported do not count.
CODE = """
import json, sys
from avbench import builtins, weights
from avbench.registry import backbones

specs = {}
for name in builtins.BACKBONES:
    spec = backbones.get(name)
    specs[name] = spec.weights
    if spec.weights is not None:
        weights.entry(spec.weights)
weights_declared = list(builtins.WEIGHTS)
hashes = {name: weights.pinned_sha256(name) for name in weights.names() if weights.entry(name).pinned}
print(json.dumps({
    "backbones": specs,
    "weights_declared": weights_declared,
    "weights": weights.names(),
    "hashes": hashes,
    "heavy": sorted(m for m in %r if m in sys.modules),
}))
""" % (HEAVY,)


def test_registry_entries_resolve_without_heavy_imports():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {
        "clip-vit-b32-openai",
        "clip-vit-l14-openai",
        "inception-v3-compat",
        "inception-v3-vggsound",
        "clip-synth",
        "audio-synth",
    } <= set(result["backbones"])
    assert {"clip-synth", "audio-synth"} <= set(result["weights_declared"]) <= set(result["weights"])
    assert {"clip-synth", "audio-synth", "inception-v3-compat"} <= set(result["hashes"])
    assert result["heavy"] == [], f"reading registry entries imported {result['heavy']}"
