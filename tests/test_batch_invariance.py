"""Features do not depend on the batch size or the number of DataLoader workers (1e-5 relative).

One extractor per backbone family, random weights in the real layouts, through `FeatureStore.images`:
torch-fidelity's InceptionV3, open_clip's ViT-B-32-quickgelu, and DINOv2 ViT-L/14 (timm's
vit_large_patch14_dinov2 at 224 px, through avbench's `Dinov2Extractor`). The DINOv2 model keeps the ViT-L/14
layout (patch 14, width 1024, 16 heads, LayerScale, 257 tokens) but only its first block: every block runs the
same operators, and the full 24 blocks cost about 5 s per image on these two cores (so 64 images would take
minutes). 64 images go through at batch size 64; the first 8 again at batch sizes 1 and 7 (batches of 7 and 1).
Workers: a whole synthetic run (oracle-one on synth-mixed2, 14 items) with 0 and 2 DataLoader workers, at batch
sizes 7 and 1, gives the same scores.
"""

from __future__ import annotations

import logging
from unittest import mock

import numpy as np
import open_clip
import pytest
import torch

import avbench
from avbench.backbones.clip import ClipImageTextExtractor
from avbench.backbones.dinov2 import TIMM_ARCH, Dinov2Extractor
from avbench.backbones.inception import InceptionExtractor
from avbench.cache import ArrayCache, array_hash
from avbench.features import FeatureStore, ImageSet

RTOL = 1e-5
COUNT = 64
PREFIX = 8


class Loaded:
    """The part of `Backbones` a FeatureStore uses, over extractors built here."""

    def __init__(self, extractors: dict):
        self.extractors = extractors
        self.weights: dict = {}

    def identity(self, name: str) -> dict:
        return {"name": name}

    def get(self, name: str):
        return self.extractors[name]


def inception() -> InceptionExtractor:
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    cls = tf_inception.FeatureExtractorInceptionV3
    with (
        mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: None),
        mock.patch.object(cls, "load_state_dict", lambda self, state: None),
    ):
        module = cls("inception-v3-compat", ["2048", "logits_unbiased"])
    # Random Inception weights collapse every input to one feature vector: BatchNorm statistics
    # measured on one random batch make the rows differ.
    for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.reset_running_stats()
        bn.momentum = None
    module.train()
    with torch.no_grad():
        module(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    return InceptionExtractor("inception", module.eval(), None, torch.device("cpu"))


def clip() -> ClipImageTextExtractor:
    logging.disable(logging.WARNING)  # open_clip warns it built a model without pretrained weights: wanted here
    try:
        model = open_clip.create_model("ViT-B-32-quickgelu")
    finally:
        logging.disable(logging.NOTSET)
    return ClipImageTextExtractor("clip", model, open_clip.get_tokenizer("ViT-B-32-quickgelu"), torch.device("cpu"))


def dinov2() -> Dinov2Extractor:
    import timm

    module = timm.create_model(TIMM_ARCH, pretrained=False, img_size=224, num_classes=0, depth=1, init_values=1.0)
    return Dinov2Extractor("dinov2", module, "test", torch.device("cpu"))


def features(extractor, images: list[np.ndarray], batch_size: int, root) -> dict[str, np.ndarray]:
    store = FeatureStore(ArrayCache(root / f"bs{batch_size}"), Loaded({extractor.name: extractor}), batch_size)
    layers = store.images(extractor.name, ImageSet([array_hash(im) for im in images], images.__getitem__))
    assert store.passes == 1
    return layers


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("family", [inception, clip, dinov2], ids=["inception", "clip", "dinov2"])
def test_features_do_not_depend_on_the_batch_size(family, tmp_path):
    torch.manual_seed(0)
    extractor = family()
    rng = np.random.default_rng(0)
    images = list(rng.integers(0, 256, (COUNT, 72, 96, 3), dtype=np.uint8))
    full = features(extractor, images, COUNT, tmp_path)
    for batch_size in (1, 7):
        part = features(extractor, images[:PREFIX], batch_size, tmp_path)
        for layer, value in part.items():
            expected = full[layer][:PREFIX]
            assert np.abs(value - expected).max() <= RTOL * np.abs(expected).max(), (layer, batch_size)
    assert all(np.abs(v - v.mean(axis=0)).max() > 1e-4 * np.abs(v).max() for v in full.values())  # rows differ


@pytest.mark.timeout(600)
def test_a_run_scores_the_same_with_any_workers_and_batch_size(tmp_path):
    scores = []
    for workers, batch_size in ((0, 7), (2, 1)):
        out = tmp_path / f"w{workers}-b{batch_size}"
        record = avbench.evaluate(
            "oracle-one",
            "synth-mixed2",
            out=out,
            cache_dir=tmp_path / f"cache-{workers}",
            limit=14,
            workers=workers,
            batch_size=batch_size,
            allow_small_n=True,
        )
        scores.append({m.name: m.value for m in record.metrics})
    assert scores[0].keys() == scores[1].keys() and "CMMD[clip-synth]" in scores[0]
    prdc = [scores[0][f"{name}[clip-synth]"] for name in ("precision", "recall", "density", "coverage")]
    assert scores[0]["FD[clip-synth]"] > 1 and any(0 < value < 1 for value in prdc)  # nothing degenerate
    for name, value in scores[0].items():
        assert scores[1][name] == pytest.approx(value, rel=RTOL, abs=1e-12), name
