"""CLIP-family metrics on hand-built embeddings with closed-form answers.

Class text embeddings are the standard basis, so an image's cosine with class
c is its c-th coordinate divided by its norm; ties are built in on purpose.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avbench import registry
from avbench.backbones.base import BackboneSpec
from avbench.errors import DataError, SuiteError
from avbench.metrics import retrieval as R
from avbench.metrics.alignment import (
    AlignmentMetric,
    ClipScoreMetric,
    clip_scores,
    join_labels,
    label_caption,
    paired_z_scores,
)

CLASSES = ("dog barking", "siren wailing", "church bell ringing", "rain falling")
B = "clip-test"


@dataclass
class FakeInputs:
    """ScoringInputs over fixed features; text features come from a prompt -> vector table."""

    labels: list
    features: dict
    prompt_vectors: dict = field(default_factory=dict)
    groups: list | None = None
    audio: np.ndarray | None = None
    scale: float = 100.0
    classes: tuple = CLASSES

    def __post_init__(self):
        self.suite = type("Suite", (), {"classes": self.classes})()
        self.item_ids = [f"item{k}" for k in range(len(self.labels))]
        self.text_calls = []

    def image_features(self, backbone, which):
        assert backbone == B
        return np.asarray(self.features[which], dtype=np.float64)

    def text_features(self, backbone, prompts):
        assert backbone == B
        self.text_calls.append(list(prompts))
        return np.array([self.prompt_vectors[p] for p in prompts], dtype=np.float64)

    def per_source_groups(self):
        return self.groups

    def audio_features(self, backbone):
        return self.audio

    def logit_scale(self, backbone):
        return self.scale


def basis_prompts(template="a photo of {c}."):
    return {template.format(c=c): np.eye(len(CLASSES))[k] for k, c in enumerate(CLASSES)}


def by_name(values):
    return {v.name: v for v in values}


def reference_rank(row, target):
    """PROTOCOLS.md literally: 1 + #{c: s_c > s_y} + #{c != y: s_c = s_y}."""
    return 1 + sum(s > row[target] for s in row) + sum(row[c] == row[target] for c in range(len(row)) if c != target)


@settings(max_examples=60, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 5), st.integers(1, 6)), elements=st.integers(0, 3)))
def test_ranks_follow_the_protocol_tie_rule(scores):
    ranks = R.tie_pessimistic_ranks(scores.astype(float))
    for i, row in enumerate(scores):
        for c in range(len(row)):
            assert ranks[i, c] == reference_rank(list(row), c)


def test_cosine_similarity_and_degenerate_rows():
    a = np.array([[3.0, 4.0], [0.0, 0.0]])
    b = np.array([[1.0, 0.0], [0.0, 2.0]])
    cos = R.cosine_similarity(a, b)
    np.testing.assert_allclose(cos[0], [0.6, 0.8])
    assert np.isnan(cos[1]).all()


def test_recall_at_k_counts_ties_against_the_model():
    scores = np.array(
        [
            [0.9, 0.1, 0.1, 0.1],  # rank 1
            [0.5, 0.5, 0.1, 0.1],  # tie for first with the true class 0: rank 2
            [0.2, 0.2, 0.2, 0.2],  # all tied: rank 4
            [0.1, 0.3, 0.2, 0.4],  # true class 0 last: rank 4
        ]
    )
    targets = np.zeros(4, dtype=int)
    np.testing.assert_array_equal(R.target_ranks(scores, targets), [1, 2, 4, 4])
    np.testing.assert_array_equal(R.recall_at_k(scores, targets, 1), [1, 0, 0, 0])
    np.testing.assert_array_equal(R.recall_at_k(scores, targets, 2), [1, 1, 0, 0])
    np.testing.assert_array_equal(R.recall_at_k(scores, targets, 4), [1, 1, 1, 1])


def test_modified_recall_and_crs_closed_form():
    scores = np.array(
        [
            [0.9, 0.8, 0.1, 0.0],  # G={0,1} ranks 1,2
            [0.9, 0.5, 0.5, 0.0],  # class 1 tied with outsider 2: rank 3
            [0.5, 0.5, 0.1, 0.0],  # tie inside G only: ranks 2,2
            [0.1, 0.9, 0.8, 0.7],  # G={0,1}: class 0 ranks 4
            [0.4, 0.3, 0.2, 0.1],  # G={0,2,3}: ranks 1,3,4 with m=3
        ]
    )
    label_sets = [np.array(g) for g in ([0, 1], [0, 1], [0, 1], [0, 1], [0, 2, 3])]
    np.testing.assert_array_equal(R.recall_at_k_star(scores, label_sets, 2), [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(R.recall_at_k_star(scores, label_sets, 3), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(R.recall_at_k_star(scores, label_sets, 4), [1, 1, 1, 1, 1])
    np.testing.assert_allclose(R.class_representation_score(scores, label_sets), [1, 0.5, 1, 0.5, 2 / 3])


def test_crs_prob_is_the_softmax_mass_of_the_present_classes():
    scores = np.array([[0.3, 0.2, 0.1, 0.0]])
    t = 10.0
    expected = (np.exp(3.0) + np.exp(1.0)) / np.exp([3.0, 2.0, 1.0, 0.0]).sum()
    np.testing.assert_allclose(R.class_probability_mass(scores, [np.array([0, 2])], t), [expected])


def test_matching_gives_each_class_one_image():
    # a row-wise argmax would give both images class 0
    scores = np.array([[0.6, 0.5, 0.0], [0.9, 0.1, 0.0]])
    np.testing.assert_array_equal(R.match_sources(scores, np.array([0, 1])), [1, 0])
    hits, acc = R.per_source_scores(scores, np.array([0, 1]))
    np.testing.assert_array_equal(hits, [0, 1])  # image 0's class 1 ranks 2nd
    assert acc == 0


def test_hungarian_maximises_the_total_where_greedy_does_not():
    scores = np.array([[0.8, 0.7, 0.0], [0.75, 0.1, 0.0]])  # greedy: img0->0 (0.8) + img1->1 (0.1) = 0.9
    np.testing.assert_array_equal(R.match_sources(scores, np.array([0, 1])), [1, 0])  # 0.7 + 0.75 = 1.45


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 4))
def test_per_source_scores_match_brute_force(seed, n_images, n_classes):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(n_images, 5)).astype(float) / 4  # coarse values: many ties
    label_set = np.sort(rng.choice(5, size=n_classes, replace=False))
    ranks = R.tie_pessimistic_ranks(scores)
    best_total = max(
        sum(scores[s, c] for s, c in zip(images, perm, strict=True))
        for images in itertools.permutations(range(n_images), min(n_images, n_classes))
        for perm in itertools.permutations(label_set, min(n_images, n_classes))
    )
    matched = R.match_sources(scores, label_set)
    assert sum(scores[s, c] for s, c in enumerate(matched) if c >= 0) == pytest.approx(best_total)
    assert sorted(c for c in matched if c >= 0) == sorted(set(matched[matched >= 0]))  # a class is used once
    hits, acc = R.per_source_scores(scores, label_set)
    np.testing.assert_array_equal(hits, [float(c >= 0 and ranks[s, c] == 1) for s, c in enumerate(matched)])
    assert acc == float(n_images >= n_classes and hits.sum() == n_classes)


def test_per_source_ties_count_against_the_model():
    scores = np.array([[0.5, 0.5, 0.0], [0.0, 0.9, 0.2]])  # image 0 ties classes 0 and 1
    hits, acc = R.per_source_scores(scores, np.array([0, 1]))
    np.testing.assert_array_equal(hits, [0, 1])
    assert acc == 0


def test_per_source_unequal_counts():
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 0.9]])
    hits, acc = R.per_source_scores(scores, np.array([0, 1]))  # third image has no class left
    np.testing.assert_array_equal(hits, [1, 1, 0])
    assert acc == 1
    hits, acc = R.per_source_scores(scores[:1], np.array([0, 1]))  # class 1 has no image
    np.testing.assert_array_equal(hits, [1])
    assert acc == 0


def test_retrieval_metric_single_label_with_tie_and_degenerate_item():
    images = np.array([[2.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 1, 3, 2]])
    inputs = FakeInputs(
        labels=[("dog barking",), ("siren wailing",), ("rain falling",), ("rain falling",)],
        features={"generated": images},
        prompt_vectors=basis_prompts(),
    )
    # Among 4 candidate classes only K < 4 can fail: the defaults 5 and 10 are not reported, nor is a requested 4.
    assert sorted(by_name(R.RetrievalMetric().compute(inputs, {"backbone": B}))) == [f"R@1[{B}]"]
    values = by_name(R.RetrievalMetric().compute(inputs, {"backbone": B, "ks": [1, 3, 4]}))
    assert sorted(values) == [f"R@1[{B}]", f"R@3[{B}]"]
    r1 = values[f"R@1[{B}]"]
    np.testing.assert_array_equal(r1.per_item, [1, 0, np.nan, 0])  # item1 tied for first, item3 ranks 2nd
    assert r1.value == pytest.approx(1 / 3) and r1.n == 3 and r1.skipped == 1
    assert r1.item_ids == inputs.item_ids and r1.backbone == B
    np.testing.assert_array_equal(values[f"R@3[{B}]"].per_item, [1, 1, np.nan, 1])
    assert "ties count against the model" in r1.details["tie_rule"]
    assert r1.details["templates"] == ["a photo of {c}."]


def test_retrieval_metric_multi_label_reports_crs_family():
    images = np.array([[3.0, 2, 1, 0], [1, 1, 1, 0]])
    inputs = FakeInputs(
        labels=[("dog barking", "siren wailing"), ("dog barking", "siren wailing")],
        features={"generated": images},
        prompt_vectors=basis_prompts(),
        scale=5.0,
    )
    assert sorted(by_name(R.RetrievalMetric().compute(inputs, {"backbone": B}))) == sorted(
        f"{n}[{B}]" for n in ("CRS", "CRS-prob", "R@2*")
    )
    values = by_name(R.RetrievalMetric().compute(inputs, {"backbone": B, "ks": [2, 3]}))
    assert sorted(values) == sorted(f"{n}[{B}]" for n in ("CRS", "CRS-prob", "R@2*", "R@3*"))
    np.testing.assert_allclose(values[f"CRS[{B}]"].per_item, [1, 0])  # item 1: three-way tie, ranks 3
    np.testing.assert_array_equal(values[f"R@2*[{B}]"].per_item, [1, 0])
    np.testing.assert_array_equal(values[f"R@3*[{B}]"].per_item, [1, 1])
    cos0 = images[0] / np.linalg.norm(images[0])
    expected0 = np.exp(5 * cos0[:2]).sum() / np.exp(5 * cos0).sum()
    assert values[f"CRS-prob[{B}]"].per_item[0] == pytest.approx(expected0)
    assert values[f"CRS-prob[{B}]"].details["logit_scale"] == 5.0


def test_prompt_ensemble_averages_unit_text_embeddings():
    templates = ["a photo of {c}.", "the sound of {c}."]
    vectors = basis_prompts(templates[0])
    # second template: class 0's text points along e1 (class 1's direction), with a norm of 5 that must not matter
    vectors.update({templates[1].format(c=c): 5 * np.eye(4)[1 if k == 0 else k] for k, c in enumerate(CLASSES)})
    # ensemble of class 0 = (e0 + e1)/2, cosine direction (e0 + e1)/sqrt2; class 1 = e1
    images = np.array(
        [
            [0.9, 1.0, 0, 0],  # class 0: 1.9/sqrt2 = 1.34 > 1.0 -> first (either template alone: not first)
            [0.3, 1.0, 0, 0],  # class 0: 1.3/sqrt2 = 0.92 < 1.0 -> second (unnormalised averaging would put it first)
        ]
    )
    inputs = FakeInputs(labels=[("dog barking",)] * 2, features={"generated": images}, prompt_vectors=vectors)
    values = by_name(R.RetrievalMetric().compute(inputs, {"backbone": B, "templates": templates, "ks": [1]}))
    np.testing.assert_array_equal(values[f"R@1[{B}]"].per_item, [1, 0])
    assert inputs.text_calls[0] == R.class_prompts(CLASSES, templates)
    for template in templates:
        alone = by_name(R.RetrievalMetric().compute(inputs, {"backbone": B, "templates": [template], "ks": [1]}))
        assert alone[f"R@1[{B}]"].per_item[0] == 0


def test_retrieval_rejects_unknown_labels_and_bad_options():
    inputs = FakeInputs(
        labels=[("cat meowing",)], features={"generated": np.eye(4)[:1]}, prompt_vectors=basis_prompts()
    )
    with pytest.raises(DataError, match="item0"):
        R.RetrievalMetric().compute(inputs, {"backbone": B})
    with pytest.raises(SuiteError, match="templates"):
        R.RetrievalMetric().compute(inputs, {"backbone": B, "templates": ["no placeholder"]})
    inputs.labels = [("dog barking",)]
    with pytest.raises(SuiteError, match="ks"):
        R.RetrievalMetric().compute(inputs, {"backbone": B, "ks": [0]})


def test_per_source_metric():
    per_source = np.array(
        [
            [0.0, 1, 0, 0],
            [1, 0, 0, 0],  # item0: both sources found, in swapped order
            [1, 0, 0, 0],
            [1, 0.9, 0, 0],  # item1: second image ranks class 1 second -> miss
            [0, 0, 0, 0],
            [0, 0, 1, 0],  # item2: a blank image -> degenerate mixture
        ]
    )
    labels = [("dog barking", "siren wailing")] * 2 + [("siren wailing", "church bell ringing")]
    inputs = FakeInputs(
        labels=labels, features={"per_source": per_source}, prompt_vectors=basis_prompts(), groups=[2, 2, 2]
    )
    values = by_name(R.PerSourceMetric().compute(inputs, {"backbone": B}))
    sep = values[f"sepR@1[{B}]"]
    np.testing.assert_array_equal(sep.per_item, [1, 1, 1, 0, np.nan, np.nan])
    assert sep.item_ids == ["item0#0", "item0#1", "item1#0", "item1#1", "item2#0", "item2#1"]
    assert sep.value == pytest.approx(0.75) and sep.skipped == 2
    acc = values[f"sep-acc[{B}]"]
    np.testing.assert_array_equal(acc.per_item, [1, 0, np.nan])
    assert acc.value == 0.5 and acc.item_ids == inputs.item_ids
    inputs.groups = [2, 2, 1]
    with pytest.raises(DataError, match="groups"):
        R.PerSourceMetric().compute(inputs, {"backbone": B})


def test_join_and_caption():
    assert join_labels(["dog barking"]) == "dog barking"
    assert label_caption(["dog barking", "siren wailing"]) == "a photo of dog barking and siren wailing."
    assert join_labels(["a", "b", "c"]) == "a, b and c"


def test_clip_scores_clamp_per_item():
    images = np.array([[1.0, 0.0], [-1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    texts = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(clip_scores(images, texts), [100 / np.sqrt(2), 0.0, 60.0, np.nan])


def test_clipscore_metric_mean_of_clamped_items():
    # cosines +0.5 and -0.5: avbench reports mean(50, 0) = 25; torchmetrics' compute() would give max(0, 0) = 0.
    prompts = {"a photo of dog barking.": [1.0, 0.0], "a photo of dog barking and siren wailing.": [0.0, 1.0]}
    images = np.array([[0.5, np.sqrt(0.75)], [np.sqrt(0.75), -0.5]])
    inputs = FakeInputs(
        labels=[("dog barking",), ("dog barking", "siren wailing")],
        features={"generated": images},
        prompt_vectors=prompts,
    )
    (value,) = ClipScoreMetric().compute(inputs, {"backbone": B})
    assert value.name == f"CLIPScore[{B}]"
    np.testing.assert_allclose(value.per_item, [50.0, 0.0], atol=1e-12)
    assert value.value == pytest.approx(25.0)


def test_z_scores_closed_form():
    q = np.eye(3)
    v = np.array([[1.0, 0, 0], [0.6, 0.8, 0], [0, 0.6, 0.8]])
    # cos(q_i, v_j) = v_j[i]: rows [1, .6, 0], [0, .8, .6], [0, 0, .8]
    z = paired_z_scores(q, v)
    np.testing.assert_allclose(z[:2], [(1 - 0.3) / 0.3, (0.8 - 0.3) / 0.3])
    assert np.isnan(z[2])  # its others are both 0: sigma = 0 -> degenerate


def test_z_scores_match_a_vectorised_reference():
    rng = np.random.default_rng(3)
    q, v = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T
    off = ~np.eye(7, dtype=bool)
    others = cos[off].reshape(7, 6)
    expected = (np.diag(cos) - others.mean(1)) / np.sqrt(((others - others.mean(1, keepdims=True)) ** 2).mean(1))
    np.testing.assert_allclose(paired_z_scores(q, v), expected)


def test_alignment_metric():
    registry.backbones.register(
        "audio-test", BackboneSpec("audio-test", "audio", None, "", "x:y", image_backbone=B), replace=True
    )
    generated = np.array([[1.0, 0, 0], [0.6, 0.8, 0], [0, 0.6, 0.8]])
    inputs = FakeInputs(
        labels=[("dog barking",)] * 3,
        features={"generated": generated, "reference": 2 * np.eye(3)},
        audio=np.eye(3)[[0, 0, 2]],
    )
    values = by_name(AlignmentMetric().compute(inputs, {"backbone": B, "audio_backbone": "audio-test"}))
    assert sorted(values) == sorted(["AIS[audio-test]", "AIS-z[audio-test]", f"IIS[{B}]", f"IIS-z[{B}]"])
    np.testing.assert_allclose(values[f"IIS[{B}]"].per_item, [1.0, 0.8, 0.8])
    iis_z = values[f"IIS-z[{B}]"]
    np.testing.assert_allclose(iis_z.per_item[:2], [7 / 3, 5 / 3])
    assert np.isnan(iis_z.per_item[2]) and iis_z.value == pytest.approx(2.0) and iis_z.skipped == 1
    np.testing.assert_allclose(values["AIS[audio-test]"].per_item, [1.0, 0.6, 0.8])
    assert values["AIS[audio-test]"].backbone == "audio-test"
    registry.backbones.register(
        "audio-other",
        BackboneSpec("audio-other", "audio", None, "", "x:y", image_backbone="another-clip"),
        replace=True,
    )
    with pytest.raises(SuiteError, match="another-clip"):
        AlignmentMetric().compute(inputs, {"backbone": B, "audio_backbone": "audio-other"})
    only_iis = by_name(AlignmentMetric().compute(inputs, {"backbone": B}))
    assert sorted(only_iis) == sorted([f"IIS[{B}]", f"IIS-z[{B}]"])


@pytest.mark.parametrize("metric", [R.RetrievalMetric(), R.PerSourceMetric(), ClipScoreMetric(), AlignmentMetric()])
def test_cards_document_every_value(metric):
    cards = metric.cards()
    assert cards and all(card.definition and card.reference for card in cards)
    crs = [card for card in cards if card.name == "CRS"]
    if crs:
        assert "could not be verified" in crs[0].notes
    if isinstance(metric, R.RetrievalMetric):
        assert all("ties count against the model" in card.definition for card in cards if card.name.startswith("R@"))
