"""Utterance statistics and the cross-validated random forest."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from emotion_refinery.decision.utterance import (
    STATISTICS,
    ForestResult,
    ep_statistics,
    evaluate_forest,
    feature_names,
    utterance_features,
)
from emotion_refinery.errors import EmorefineError

# Five segments, two classes. Sorted: class 0 [0.1, 0.25, 0.5, 0.7, 0.9]; class 1 [0.1, 0.3, 0.5, 0.75, 0.9].
EP = np.array([[0.1, 0.9], [0.5, 0.5], [0.25, 0.75], [0.9, 0.1], [0.7, 0.3]])
# Linear percentiles at position h = 4·p/100 between order statistics:
# p1 (h = 0.04): v0 + 0.04·(v1 - v0); p99 (h = 3.96): v3 + 0.96·(v4 - v3); quartiles at h = 1, 2, 3.
EXPECTED = [
    # mean, p1, p99, q1, median, q3, frac > 0.2, frac > 0.3
    [0.49, 0.1 + 0.04 * 0.15, 0.7 + 0.96 * 0.2, 0.25, 0.5, 0.7, 4 / 5, 3 / 5],
    [0.51, 0.1 + 0.04 * 0.2, 0.75 + 0.96 * 0.15, 0.3, 0.5, 0.75, 4 / 5, 3 / 5],  # 0.3 is not > 0.3
]


def test_ep_statistics_by_hand():
    stats = ep_statistics(EP)
    assert stats.shape == (16,)
    np.testing.assert_allclose(stats, np.array(EXPECTED).reshape(-1), atol=1e-12)  # class-major
    assert stats[8 * 1 + STATISTICS.index("q3")] == pytest.approx(0.75)


def test_feature_names_follow_the_feature_order():
    names = feature_names(["angry", "sad"])
    assert len(names) == 16
    assert names[0] == "angry/mean" and names[8 + 2] == "sad/p99"


def test_utterance_features_groups_shuffled_segments():
    rng = np.random.default_rng(0)
    lengths = [1, 4, 7, 2, 30]
    utt = np.repeat(np.arange(len(lengths)), lengths)
    q = rng.dirichlet(np.ones(3), size=utt.shape[0])
    order = rng.permutation(utt.shape[0])
    features = utterance_features(q[order], utt[order], len(lengths))
    assert features.shape == (len(lengths), 24)
    for u in range(len(lengths)):
        np.testing.assert_allclose(features[u], ep_statistics(q[utt == u]), rtol=0, atol=1e-12)


def test_utterance_features_matches_the_hand_made_profile():
    features = utterance_features(EP[::-1], np.zeros(5, dtype=int), 1)
    np.testing.assert_allclose(features[0], np.array(EXPECTED).reshape(-1), atol=1e-12)


@pytest.mark.parametrize(
    ("utt", "n_utterances", "fragment"),
    [
        (np.array([0, 0, 2, 2, 2]), 3, "no segment for utterance_index=1"),
        (np.array([0, 0, 1, 1, 3]), 3, "utterance_index must be in [0, 3)"),
        (np.array([0, 0, 1]), 2, "utterance_index must be integers of shape (5,)"),
        (np.array([0, 0, 1, 1, 1]), 0, "Received: n_utterances=0"),
    ],
)
def test_utterance_features_errors(utt, n_utterances, fragment):
    with pytest.raises(EmorefineError) as info:
        utterance_features(EP, utt, n_utterances)
    assert fragment in str(info.value)


def _stratified_folds(labels, n_folds):
    folds = np.empty_like(labels)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        folds[rows] = np.arange(rows.shape[0]) % n_folds
    return folds


def test_separable_features_give_perfect_wa_and_ua():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [20, 10, 10])
    features = np.eye(3)[labels] * 10 + rng.normal(0, 0.1, size=(40, 3))
    result = evaluate_forest(features, labels, _stratified_folds(labels, 5), n_classes=3)
    assert isinstance(result, ForestResult)
    assert result.wa == 1.0 and result.ua == 1.0
    np.testing.assert_array_equal(result.confusion, np.diag([20, 10, 10]))
    np.testing.assert_array_equal(result.predictions, labels)
    assert result.probabilities.shape == (40, 3)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0)


def test_ua_differs_from_wa_on_imbalanced_classes():
    """Classes 1 and 2 share identical features: the forest calls them all 1 (the larger of the two)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [30, 10, 5])
    features = np.where(labels[:, None] == 0, 0.0, 5.0) + np.zeros((45, 2))
    features[labels == 0] += rng.normal(0, 0.1, size=(30, 2))
    result = evaluate_forest(features, labels, _stratified_folds(labels, 5), n_classes=3)
    np.testing.assert_array_equal(result.confusion, [[30, 0, 0], [0, 10, 0], [0, 5, 0]])
    # By hand from the confusion matrix: WA = trace / total, UA = mean of row-wise recalls.
    assert result.wa == pytest.approx((30 + 10) / 45)
    assert result.ua == pytest.approx((30 / 30 + 10 / 10 + 0 / 5) / 3)
    assert result.ua != pytest.approx(result.wa)
    assert result.wa == pytest.approx(accuracy_score(labels, result.predictions))
    assert result.ua == pytest.approx(balanced_accuracy_score(labels, result.predictions))
    # Macro-F1 by hand: class 0 F1 1; class 1 precision 10/15, recall 1, F1 0.8; class 2 never predicted, F1 0.
    assert result.macro_f1 == pytest.approx((1.0 + 0.8 + 0.0) / 3)


def test_a_fold_without_some_class_and_a_class_without_utterances():
    """Leave-one-speaker-out style: fold 2 holds no class-1 utterance, and class 3 has none at all.
    WA, UA and macro-F1 are pooled over the out-of-fold predictions; UA and macro-F1 average over
    the classes present (0, 1, 2)."""
    labels = np.array([0, 0, 1, 1, 2, 2] * 2 + [0, 0, 2, 2])
    folds = np.repeat([0, 1, 2], [6, 6, 4])
    features = np.eye(4)[labels] * 10 + np.random.default_rng(0).normal(0, 0.1, size=(16, 4))
    result = evaluate_forest(features, labels, folds, n_classes=4)
    np.testing.assert_array_equal(result.predictions, labels)
    assert result.confusion.shape == (4, 4) and result.confusion[3].sum() == 0
    assert result.wa == result.ua == result.macro_f1 == 1.0
    # A class-1 utterance that looks like class 2: UA and macro-F1 over the 3 classes present, not 4.
    features[6] = np.eye(4)[2] * 10
    result = evaluate_forest(features, labels, folds, n_classes=4)
    y, p = labels, result.predictions
    assert p[6] == 2 and result.ua < 1.0
    assert result.ua == pytest.approx(balanced_accuracy_score(y, p))
    assert result.macro_f1 == pytest.approx(f1_score(y, p, labels=[0, 1, 2], average="macro"))
    assert result.macro_f1 > f1_score(y, p, labels=[0, 1, 2, 3], average="macro", zero_division=0)


def test_forest_is_deterministic_given_the_seed():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=60)
    features = rng.normal(size=(60, 8)) + labels[:, None] * 0.5
    folds = np.arange(60) % 3
    first = evaluate_forest(features, labels, folds, seed=7, n_classes=4)
    second = evaluate_forest(features, labels, folds, seed=7, n_classes=4)
    np.testing.assert_array_equal(first.probabilities, second.probabilities)
    np.testing.assert_array_equal(first.predictions, second.predictions)
    assert first.wa == second.wa and first.ua == second.ua
    other = evaluate_forest(features, labels, folds, seed=8, n_classes=4)
    assert not np.array_equal(first.probabilities, other.probabilities)


def test_class_missing_from_a_training_fold():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])  # class 2 only in fold 0
    features = np.eye(3)[labels] * 5.0
    folds = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0])
    result = evaluate_forest(features, labels, folds, n_classes=3)
    assert result.confusion[2, 2] == 0  # never seen in training
    assert result.probabilities[8, 2] == 0.0
    assert result.ua == pytest.approx((1 + 1 + 0) / 3)


def test_forests_learn_train_labels_and_are_scored_on_labels():
    """Planted noise: the forests fit the other folds' (noisy) train_labels; WA is against the true labels."""
    labels = np.array([0, 1, 2] * 6)
    features = np.eye(3)[labels] * 5.0
    folds = np.arange(18) % 2
    swapped = np.array([1, 0, 2])[labels]  # every class-0 utterance trained as 1 and vice versa
    result = evaluate_forest(features, labels, folds, n_classes=3, train_labels=swapped)
    np.testing.assert_array_equal(result.predictions, swapped)
    assert result.wa == pytest.approx(1 / 3)
    assert result.confusion[0, 1] == result.confusion[1, 0] == 6 and result.confusion[2, 2] == 6


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"folds": np.zeros(6, dtype=int)}, "at least two fold ids"),
        ({"train_labels": np.array([0, 1, 2, 0, 1, 4])}, "train_labels must be in [0, 3)"),
        ({"train_labels": np.zeros(4, dtype=int)}, "train_labels must be integers of shape (6,)"),
        ({"labels": np.array([0, 1, 2, 0, 1, 3])}, "labels must be in [0, 3)"),
        ({"labels": np.zeros(5, dtype=int)}, "labels must be integers of shape (6,)"),
        ({"features": np.full((6, 2), np.nan)}, "features must be finite"),
        ({"n_classes": 1}, "Received: n_classes=1"),
    ],
)
def test_evaluate_forest_errors(overrides, fragment):
    kwargs = {
        "features": np.zeros((6, 2)),
        "labels": np.array([0, 1, 2, 0, 1, 2]),
        "folds": np.array([0, 0, 0, 1, 1, 1]),
        "n_classes": 3,
    }
    kwargs.update(overrides)
    with pytest.raises(EmorefineError) as info:
        evaluate_forest(kwargs.pop("features"), kwargs.pop("labels"), kwargs.pop("folds"), **kwargs)
    assert fragment in str(info.value)
