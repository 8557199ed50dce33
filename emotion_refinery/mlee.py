"""MLEE: multi-label emotion existence, and the dominant-emotion classifiers it is compared with.

Targets from the votes ``v_c`` of an utterance (:mod:`emotion_refinery.votes`): hard (the one-hot
label), soft ``(α + v_c) / (α K + Σ v)`` with α = 0.75, and existence ``e_c = 1`` if any annotator
chose ``c`` (utterances without votes: their label alone). The variants (:data:`VARIANTS`):

=============  ===========================================================================
``hard``       the dominant-emotion classifier (softmax) on the one-hot labels, lr 5e-4
``soft``       the same on the soft targets, lr 5e-4
``mlee``       sigmoid outputs, class-wise binary cross-entropy on existence, lr 2e-4; an utterance
               is decided by its most present class
``pretrain``   a trained ``mlee`` encoder, frozen, and a new softmax classifier on the soft targets, lr 1e-4
``fusion``     the frozen encoders of a trained ``mlee`` and a trained ``soft`` model side by side, and a new
               softmax classifier on the soft targets, lr 5e-5
=============  ===========================================================================

Every loss weighs classes by their inverse frequency in the training set. The losses are written in
``keras.ops``, so they run on every Keras backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["VARIANTS", "LEARNING_RATES", "existence_targets", "inverse_frequency", "weighted_bce",
           "predicted_existence", "existence_scores"]

#: Variant → what it trains (see the module docstring).
VARIANTS = ("hard", "soft", "mlee", "pretrain", "fusion")
#: The publication's Adam learning rate of each variant's last stage.
LEARNING_RATES = {"hard": 5e-4, "soft": 5e-4, "mlee": 2e-4, "pretrain": 1e-4, "fusion": 5e-5}


def existence_targets(utterances: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> np.ndarray:
    """``(n_utterances, K)`` float32 0/1: 1 where any annotator chose the class (without votes: the label)."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(utterances), len(classes)), np.float32)
    for row, u in zip(out, utterances):
        present = [c for c, n in (u.get("votes") or {}).items() if n > 0] or [u["label"]]
        row[[index[c] for c in present]] = 1.0
    return out


def inverse_frequency(targets: np.ndarray) -> np.ndarray:
    """Class weights ``N / (K · N_c)`` from training targets ``(N, K)`` (``N_c``: the column sums; a class
    that never occurs gets weight 0), so that every class weighs the same in total."""
    counts = np.asarray(targets, np.float64).sum(axis=0)
    n, k = len(targets), counts.shape[0]
    return np.where(counts > 0, n / (k * np.maximum(counts, 1e-12)), 0.0).astype(np.float32)


def weighted_bce(class_weights: np.ndarray) -> Callable:
    """Class-wise binary cross-entropy ``Σ_c w_c · BCE(e_c, p_c) / K`` of sigmoid outputs ``p``."""
    from keras import ops

    w = np.asarray(class_weights, np.float32)

    def loss(y_true, y_pred):
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        y = ops.cast(y_true, p.dtype)
        bce = -(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))
        return ops.mean(bce * ops.convert_to_tensor(w, dtype=p.dtype), axis=-1)

    return loss


def predicted_existence(probabilities: np.ndarray, *, sigmoid: bool) -> np.ndarray:
    """Which classes a model says are present, ``(n, K)`` bool: sigmoid outputs above 0.5; softmax outputs at
    least the uniform share ``1 / K`` (a single-label classifier names the classes it finds likelier than chance)."""
    p = np.asarray(probabilities)
    return p > 0.5 if sigmoid else p >= 1.0 / p.shape[1]


def existence_scores(truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Per-class precision, recall and F1 of presence, and their macro averages (over the classes present in
    ``truth``)."""
    from sklearn.metrics import precision_recall_fscore_support

    truth, predicted = np.asarray(truth).astype(bool), np.asarray(predicted).astype(bool)
    p, r, f, support = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    present = support > 0
    return {
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
        "macro_precision": float(p[present].mean()), "macro_recall": float(r[present].mean()),
        "macro_f1": float(f[present].mean()),
    }
