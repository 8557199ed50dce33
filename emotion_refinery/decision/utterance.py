"""Utterance-level classification from emotion profiles.

An emotion profile (EP) of an utterance is its segment probabilities, shape ``(n_segments, K)``.
Each class's column is summarised by 8 statistics (:data:`STATISTICS`), giving ``8·K`` features
per utterance; a random forest (scikit-learn defaults) classifies them under k-fold
cross-validation and is scored by WA (accuracy) and UA (mean per-class recall).

Feature order is **class-major**: feature ``8·k + s`` is statistic ``s`` of class ``k``, i.e.
``[mean_0, p1_0, p99_0, q1_0, median_0, q3_0, frac>0.2_0, frac>0.3_0, mean_1, ...]``.
Percentiles use NumPy's default (``method="linear"``) interpolation.

With the ``speaker-forest`` utterance classifier every feature is first z-normalised within each
speaker's utterances (:func:`speaker_normalise`): an utterance is then described relative to its
speaker's other utterances, which removes much of what a held-out speaker's profiles share with each
other and not with the training speakers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import confusion_matrix, f1_score

from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.speaker_norm import normalisation_groups

__all__ = [
    "STATISTICS",
    "ForestResult",
    "ep_statistics",
    "utterance_features",
    "feature_names",
    "evaluate_forest",
    "fit_forest",
    "mean_ep_decisions",
    "forest_probabilities",
    "decision_scores",
    "ep_entropy",
    "speaker_normalise",
]

#: Names of the 8 per-class statistics, in feature order.
STATISTICS = ("mean", "p1", "p99", "q1", "median", "q3", "frac_gt_0.2", "frac_gt_0.3")
_PERCENTILES = (1.0, 99.0, 25.0, 50.0, 75.0)
_THRESHOLDS = (0.2, 0.3)


def feature_names(class_names: list[str] | tuple[str, ...]) -> list[str]:
    """Names of the ``8·K`` features, in feature order (``"<class>/<statistic>"``)."""
    return [f"{name}/{stat}" for name in class_names for stat in STATISTICS]


def _check_profile(array, *, argname: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1 or not np.issubdtype(array.dtype, np.number):
        raise EmorefineError(
            f"{argname} must be numeric of shape (n_segments, K) with at least one segment. "
            f"Received: {argname} of shape {array.shape}"
        )
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise EmorefineError(f"{argname} must be finite. Received: {argname} with non-finite values")
    return array


def ep_statistics(ep: np.ndarray) -> np.ndarray:
    """The 8 statistics of every class of one emotion profile.

    Args:
        ep: segment probabilities of one utterance, shape ``(n_segments, K)``, ``n_segments ≥ 1``.

    Returns:
        float64 features, shape ``(8 * K,)``, class-major (see the module docstring): for class
        ``k``, ``[mean, 1st pct, 99th pct, 25th pct, 50th pct, 75th pct, fraction p > 0.2,
        fraction p > 0.3]`` at ``[8k : 8k + 8]``.
    """
    ep = _check_profile(ep, argname="ep")
    stats = np.concatenate(
        [
            ep.mean(axis=0)[None],
            np.percentile(ep, _PERCENTILES, axis=0),
            np.stack([(ep > t).mean(axis=0) for t in _THRESHOLDS]),
        ]
    )  # (8, K)
    return stats.T.reshape(-1)


def ep_entropy(predictions: np.ndarray) -> np.ndarray:
    """Entropy of every segment's class distribution over ln K, shape ``(n_segments,)``: 1 is uniform.

    Args:
        predictions: segment probabilities, shape ``(n_segments, K)``.
    """
    q = np.asarray(predictions, dtype=np.float64)
    return -(q * np.log(np.clip(q, 1e-12, None))).sum(axis=1) / np.log(q.shape[1])


def utterance_features(predictions: np.ndarray, utterance_index: np.ndarray, n_utterances: int) -> np.ndarray:
    """:func:`ep_statistics` of every utterance, computed for all utterances at once.

    Args:
        predictions: segment probabilities, shape ``(n_segments, K)``.
        utterance_index: row of each segment's utterance in the output, int, shape
            ``(n_segments,)``, in ``[0, n_utterances)``; any order. Every utterance needs at least
            one segment.
        n_utterances: number of utterances.

    Returns:
        float64 features, shape ``(n_utterances, 8 * K)``, row ``u`` equal (to rounding) to
        ``ep_statistics(predictions[utterance_index == u])``.
    """
    q = _check_profile(predictions, argname="predictions")
    n, k = q.shape
    if isinstance(n_utterances, bool) or not isinstance(n_utterances, (int, np.integer)) or n_utterances < 1:
        raise EmorefineError(f"Received: n_utterances={n_utterances!r}; expected a positive integer")
    utt = np.asarray(utterance_index)
    if utt.shape != (n,) or not np.issubdtype(utt.dtype, np.integer):
        raise EmorefineError(
            f"utterance_index must be integers of shape ({n},). "
            f"Received: utterance_index of shape {utt.shape} and dtype {utt.dtype}"
        )
    if utt.min() < 0 or utt.max() >= n_utterances:
        raise EmorefineError(
            f"utterance_index must be in [0, {n_utterances}). Received: utterance_index in [{utt.min()}, {utt.max()}]"
        )
    counts = np.bincount(utt, minlength=n_utterances)
    if np.any(counts == 0):
        raise EmorefineError(
            f"every utterance needs at least one segment. Received: no segment for utterance_index="
            f"{int(np.flatnonzero(counts == 0)[0])}"
        )
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.empty((n_utterances, k, len(STATISTICS)), dtype=np.float64)
    for c in range(k):
        column = q[:, c]
        out[:, c, 0] = np.bincount(utt, weights=column, minlength=n_utterances) / counts
        # Sort by utterance, then by value: each utterance's values are sorted and contiguous.
        ordered = column[np.lexsort((column, utt))]
        for j, pct in enumerate(_PERCENTILES, start=1):
            # NumPy's "linear" method: position h = (n - 1)·p/100 between order statistics.
            h = (counts - 1) * (pct / 100.0)
            lo = np.floor(h).astype(np.int64)
            hi = np.minimum(lo + 1, counts - 1)
            a, b = ordered[starts + lo], ordered[starts + hi]
            out[:, c, j] = a + (b - a) * (h - lo)
        for j, t in enumerate(_THRESHOLDS, start=6):
            out[:, c, j] = np.bincount(utt, weights=(column > t).astype(np.float64), minlength=n_utterances) / counts
    return out.reshape(n_utterances, k * len(STATISTICS))


@dataclasses.dataclass(frozen=True)
class ForestResult:
    """Out-of-fold utterance classification.

    Attributes:
        wa: weighted accuracy (overall accuracy).
        ua: unweighted accuracy, the mean recall over the classes present in ``labels``.
        macro_f1: the mean F1 score over the classes present in ``labels`` (a class that is never
            predicted scores 0).
        confusion: int, shape ``(K, K)``; rows true class, columns predicted class.
        predictions: predicted class of every utterance, int, shape ``(n_utterances,)``.
        probabilities: forest class probabilities of every utterance, shape ``(n_utterances, K)``
            (zero for a class missing from a fold's training set).
    """

    wa: float
    ua: float
    macro_f1: float
    confusion: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray


def mean_ep_decisions(predictions: np.ndarray, utterance_index: np.ndarray, n_utterances: int) -> np.ndarray:
    """Each utterance's mean segment probability, ``(n_utterances, K)`` rows summing to 1 (its decision: the
    argmax). ``predictions``: segment probabilities ``(n_segments, K)``; ``utterance_index``: ``(n_segments,)``."""
    q = np.asarray(predictions, np.float64)
    total = np.zeros((n_utterances, q.shape[1]))
    np.add.at(total, np.asarray(utterance_index), q)
    return total / np.maximum(total.sum(axis=1, keepdims=True), 1e-12)


def fit_forest(features: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> RandomForestClassifier:
    """The utterance classifier: ``RandomForestClassifier(random_state=seed, n_jobs=1)``, otherwise
    scikit-learn's defaults, fitted on ``features`` ``(n, n_features)`` and class indices ``labels``."""
    return RandomForestClassifier(random_state=seed, n_jobs=1).fit(features, labels)


def forest_probabilities(forest: RandomForestClassifier, features: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` of :func:`fit_forest`'s forest; 0 for classes it never saw."""
    out = np.zeros((len(features), n_classes), dtype=np.float64)
    out[:, forest.classes_] = forest.predict_proba(features)
    return out


def evaluate_forest(
    features: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    *,
    seed: int = 0,
    n_classes: int,
    train_labels: np.ndarray | None = None,
) -> ForestResult:
    """Cross-validated random forest on utterance features.

    For every fold id ``f``, a ``RandomForestClassifier(random_state=seed, n_jobs=1)``
    (otherwise scikit-learn defaults) is trained on the utterances of the other folds and
    predicts those of fold ``f``. WA, UA and macro-F1 are computed on the pooled out-of-fold
    predictions; UA and macro-F1 average over the classes present in ``labels``, so a fold without
    some class (leave-one-speaker-out) is fine.

    Args:
        features: shape ``(n_utterances, n_features)``, e.g. from :func:`utterance_features`.
        labels: true class of each utterance, int, shape ``(n_utterances,)``, in ``[0, n_classes)``.
        folds: fold id of each utterance, int, shape ``(n_utterances,)``; at least two distinct ids.
        seed: ``random_state`` of every forest.
        n_classes: number of classes ``K``.
        train_labels: the classes the forests train on, if not ``labels`` (planted label noise: the
            forests learn from the noisy labels of the other folds and are scored on the true ones).

    Returns:
        :class:`ForestResult`.
    """
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2 or not np.issubdtype(x.dtype, np.number):
        raise EmorefineError(
            f"features must be numeric of shape (n_utterances, n_features). Received: features of shape {x.shape}"
        )
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise EmorefineError("features must be finite. Received: features with non-finite values")
    n = x.shape[0]
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise EmorefineError(f"Received: n_classes={n_classes!r}; expected an integer of at least 2")
    y = np.asarray(labels)
    f = np.asarray(folds)
    y_train = y if train_labels is None else np.asarray(train_labels)
    for argname, array in (("labels", y), ("folds", f), ("train_labels", y_train)):
        if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
            raise EmorefineError(
                f"{argname} must be integers of shape ({n},). Received: {argname} of shape {array.shape} "
                f"and dtype {array.dtype}"
            )
    for argname, array in (("labels", y), ("train_labels", y_train)):
        if array.min() < 0 or array.max() >= n_classes:
            raise EmorefineError(f"{argname} must be in [0, {n_classes}). Received: {argname} in "
                                 f"[{array.min()}, {array.max()}]")
    fold_ids = np.unique(f)
    if fold_ids.shape[0] < 2:
        raise EmorefineError(f"folds must hold at least two fold ids. Received: folds={fold_ids.tolist()}")

    probabilities = np.zeros((n, n_classes), dtype=np.float64)
    for fold in fold_ids:
        test = f == fold
        probabilities[test] = forest_probabilities(fit_forest(x[~test], y_train[~test], seed=seed), x[test], n_classes)
    predictions = probabilities.argmax(axis=1)  # a class the fold's forest never saw has probability 0

    scores = decision_scores(y, predictions, n_classes=n_classes)
    return ForestResult(**scores, predictions=predictions, probabilities=probabilities)


def decision_scores(labels: np.ndarray, predictions: np.ndarray, *, n_classes: int) -> dict[str, Any]:
    """WA, UA and macro-F1 of utterance decisions, and their confusion matrix.

    Args:
        labels, predictions: true and decided class of each utterance, int, shape ``(n,)``, in ``[0, n_classes)``.

    Returns:
        ``wa`` (accuracy), ``ua`` (mean recall over the classes present in ``labels``), ``macro_f1`` (mean
        F1 over the same classes) as floats, and ``confusion``, int64 ``(n_classes, n_classes)``, rows true,
        columns decided.
    """
    y, predictions = np.asarray(labels), np.asarray(predictions)
    confusion = confusion_matrix(y, predictions, labels=np.arange(n_classes)).astype(np.int64)
    support = confusion.sum(axis=1)
    present = support > 0
    recall = np.diag(confusion)[present] / support[present]
    return {
        "wa": float(np.trace(confusion) / len(y)),
        "ua": float(recall.mean()),
        "macro_f1": float(f1_score(y, predictions, labels=np.flatnonzero(present), average="macro", zero_division=0)),
        "confusion": confusion,
    }


def speaker_normalise(features: np.ndarray, speakers: list) -> np.ndarray:
    """Z-normalise each speaker's rows with that speaker's own mean and standard deviation (no labels).

    Args:
        features: ``(n_utterances, n_features)``.
        speakers: ``n_utterances`` speaker names, grouped by
            :func:`~emotion_refinery.records.speaker_norm.normalisation_groups`: a ``None`` entry is a group of
            its own (as the log-Mel bands group); give the same name to rows of one speaker.

    Returns:
        float64 ``(n_utterances, n_features)``; a feature constant within a speaker becomes 0 there.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(speakers) != x.shape[0]:
        raise EmorefineError(f"Received: features of shape {x.shape}, {len(speakers)} speakers; expected "
                             "(n_utterances, n_features) and one speaker per row")
    groups = np.array(normalisation_groups(list(speakers)))
    out = np.empty_like(x)
    for g in np.unique(groups):
        rows = groups == g
        std = x[rows].std(axis=0)
        out[rows] = (x[rows] - x[rows].mean(axis=0)) / np.where(std > 0, std, 1.0)
    return out
