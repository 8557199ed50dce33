"""MLEE: multi-label emotion existence, and the dominant-emotion classifiers it is compared with.

Targets from the votes ``v_c`` of an utterance (:mod:`emotion_refinery.data.votes`): hard (the one-hot
label), soft ``(α + v_c) / (α K + Σ v)`` with α = 0.75, and existence ``e_c = 1`` if any annotator
chose ``c`` (utterances without votes: their label alone). The variants (:data:`VARIANTS`):

=============  ===========================================================================
``hard``       the dominant-emotion classifier (softmax) on the one-hot labels, lr 5e-4
``soft``       the same on the soft targets, lr 5e-4
``mlee``       sigmoid outputs, class-wise binary cross-entropy on existence, lr 2e-4; an utterance
               is decided by its most present class
``pretrain``   a trained ``mlee`` model fine-tuned on the soft targets, lr 1e-4: its encoder frozen, its
               classifier part (the backbone's Dense 64 ``embedding``) trained on, and a new softmax layer
``fusion``     the encoders of a trained ``mlee`` and a trained ``soft`` model side by side, frozen but for their
               Dense 64 ``embedding`` layers, and a new softmax classifier on the soft targets, lr 5e-5
=============  ===========================================================================

The classifiers' losses weigh each utterance by the inverse frequency of its class in the training set
(:func:`inverse_frequency`). The existence loss weighs, for each class, the utterances where it exists and
those where it does not by the inverse of their own shares (:func:`existence_weights`), so that within
every class the present and the absent utterances weigh the same in total. The losses are written in
``keras.ops``, so they run on every Keras backend.

The new classifier of ``pretrain`` and ``fusion`` is one softmax layer: with ``head="probe"`` it is fitted
to convergence on the frozen embeddings (Dense 64 included, which then stays as the ``mlee`` / ``soft`` model
trained it) instead of by Adam (:func:`fit_probe`), which a small corpus needs: at the published rates (set
for IEMOCAP's ~5,500 utterances) 72 training utterances give the head a few dozen optimiser steps, and it
learns little more than the class prior.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["VARIANTS", "LEARNING_RATES", "HEADS", "PROBE_CS", "fit_probe", "existence_targets", "inverse_frequency",
           "existence_weights", "weighted_bce",
           "predicted_existence", "existence_scores"]

#: Variant → what it trains (see the module docstring).
VARIANTS = ("hard", "soft", "mlee", "pretrain", "fusion")
#: The publication's Adam learning rate of each variant's last stage.
#: How the new classifier of ``pretrain`` / ``fusion`` is trained: ``adam`` (the publication's) or ``probe``.
HEADS = ("adam", "probe")

#: Inverse L2 strengths the probe tries; the validation fold's loss chooses one.
PROBE_CS = (0.01, 0.1, 1.0, 10.0)

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


def existence_weights(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The existence loss's weights ``(w_pos (K,), w_neg (K,))`` from training existence targets ``(N, K)``:
    ``w_pos_c = N / (2 · n_pos_c)`` for the utterances where class ``c`` exists and ``w_neg_c = N / (2 · n_neg_c)``
    for those where it does not (``n_pos_c`` / ``n_neg_c``: how many there are; a side with none gets 0). Each
    class's present and absent utterances then weigh ``N / 2`` each."""
    targets = np.asarray(targets, np.float64)
    n = len(targets)
    positive = targets.sum(axis=0)
    negative = n - positive

    def inverse(count):
        return np.where(count > 0, n / (2 * np.maximum(count, 1e-12)), 0.0).astype(np.float32)

    return inverse(positive), inverse(negative)


def weighted_bce(positive_weights: np.ndarray, negative_weights: np.ndarray) -> Callable:
    """Class-wise binary cross-entropy of sigmoid outputs ``p`` on existence targets ``e``, the present and the absent
    side of each class weighted apart (:func:`existence_weights`):
    ``Σ_c −(w_pos_c · e_c log p_c + w_neg_c · (1 − e_c) log(1 − p_c)) / K``."""
    from keras import ops

    w_pos = np.asarray(positive_weights, np.float32)
    w_neg = np.asarray(negative_weights, np.float32)
    if w_pos.shape != w_neg.shape or w_pos.ndim != 1:
        raise ValueError(f"Received: positive_weights of shape {w_pos.shape} and negative_weights of shape "
                         f"{w_neg.shape}; expected two vectors of K weights")

    def loss(y_true, y_pred):
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        y = ops.cast(y_true, p.dtype)
        pos = ops.convert_to_tensor(w_pos, dtype=p.dtype)
        neg = ops.convert_to_tensor(w_neg, dtype=p.dtype)
        return ops.mean(-(pos * y * ops.log(p) + neg * (1.0 - y) * ops.log(1.0 - p)), axis=-1)

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


def _soft_cross_entropy(p: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> float:
    return float(np.mean(-(targets * np.log(np.clip(p, 1e-7, 1.0))).sum(axis=1) * weights))


def fit_probe(train_x: np.ndarray, train_targets: np.ndarray, train_weights: np.ndarray, val_x: np.ndarray,
              val_targets: np.ndarray, val_weights: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """A softmax layer on fixed embeddings fitted to convergence: multinomial logistic regression (L-BFGS) on
    standardised embeddings minimising ``Σ_n w_n · −Σ_c t_{n,c} log p_{n,c}`` for soft targets ``t`` (each
    utterance enters once per class with weight ``w_n · t_{n,c}``), one fit per C in :data:`PROBE_CS`, the C with
    the lowest weighted validation loss kept. The standardisation is folded into the weights, so the result is
    a plain Dense layer on the raw embeddings.

    Returns ``{"kernel" (d, K), "bias" (K,), "C", "val_loss"}``.
    """
    from sklearn.linear_model import LogisticRegression

    mean, scale = train_x.mean(axis=0), train_x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z, k = (train_x - mean) / scale, train_targets.shape[1]
    x = np.repeat(z, k, axis=0)
    y = np.tile(np.arange(k), len(z))
    w = (train_targets * train_weights[:, None]).reshape(-1)
    keep = w > 0
    best = None
    for c in PROBE_CS:
        clf = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x[keep], y[keep], sample_weight=w[keep])
        coef, intercept = np.zeros((k, z.shape[1])), np.zeros(k)
        coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
        intercept[np.setdiff1d(np.arange(k), clf.classes_)] = -1e9  # a class without weight is never predicted
        logits = ((val_x - mean) / scale) @ coef.T + intercept
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        loss = _soft_cross_entropy(p / p.sum(axis=1, keepdims=True), val_targets, val_weights)
        if best is None or loss < best["val_loss"]:
            best = {"kernel": (coef / scale).T.astype(np.float32),
                    "bias": (intercept - coef @ (mean / scale)).astype(np.float32), "C": c, "val_loss": loss}
    return best
