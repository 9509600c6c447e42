"""Every fact avbench states in more than one place, stated once.

In the manner of torch-fidelity's `defaults.py`: the record schema, the
per-item table, the statistics of intervals and the gate, the feature layer
each backbone kind feeds its metrics, the run options' defaults and the shape
of names. Each user imports the constant from here, so two copies can never
disagree.
"""

from __future__ import annotations

import re

# The result record (record.json) and its per-item table (items.csv).
SCHEMA_VERSION = 2  # 2: the suite's spec hash and the per-item table's hash
ITEM_COLUMNS = ("item", "task", "status", "reason")  # then one column per per-item metric
ITEM_STATUSES = frozenset({"ok", "failed", "missing"})
RECORD_FILE = "record.json"
ITEMS_FILE = "items.csv"

# Bootstrap intervals over items (record) and the gate's paired bootstrap (compare).
BOOTSTRAP_RESAMPLES = 1000
INTERVAL_CONFIDENCE = 0.95
GATE_SIGNIFICANCE = 0.05  # one-sided p below which --strict calls a drop significant

# Feature layers per backbone kind: (the Fréchet / KID / retrieval layer, the IS layer or None).
BACKBONE_LAYERS = {
    "inception": ("2048", "logits_unbiased"),
    "clip": ("embedding", None),
    "dinov2": ("embedding", None),  # FD-DINOv2 reads the CLS token after the final norm; DINOv2 has no IS layer
}

# FID / KID / IS protocol, torch-fidelity's own defaults.
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100
IS_SPLITS = 10
FIDELITY_METRICS = ("fd", "kid", "is")  # what the fidelity metric reports when its spec lists nothing
FIDELITY_SEED = 2020  # torch-fidelity's rng_seed default, for KID subsets and the IS shuffle

# `avbench run` options: the CLI and `RunOptions` both read these.
DEVICE = "auto"
BATCH_SIZE = 16
SEED = 0
ON_ERROR_CHOICES = ("stop", "skip")
ON_ERROR = "stop"

# Registered names (models, metrics, backbones) and weights file names: no path separator, no leading dot.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")
