"""Planted label noise, for measuring how methods cope with wrong labels.

A share of the utterances get another class, drawn uniformly among the other classes; which ones, and
their new classes, depend only on the seed, so every split of a run sees the same noisy labels. The
training and early-stopping folds train on the noisy labels; the held-out fold is scored on its true
labels, as a user's corpus would be scored against a trustworthy test set.
"""

from __future__ import annotations

import numpy as np

from emotion_refinery.util.ranges import SHARE

__all__ = ["flip_labels", "training_labels"]


def flip_labels(labels, n_classes: int, share: float, seed: int = 0) -> np.ndarray:
    """``labels`` (class indices ``(n,)``) with ``round(share · n)`` of them, chosen at random, changed to
    another class drawn uniformly (reproducible from ``seed``)."""
    SHARE.check("label_noise", share)
    labels = np.asarray(labels, np.int64)
    rng = np.random.default_rng([int(seed), 7_001])
    flipped = rng.permutation(len(labels))[: int(round(share * len(labels)))]
    out = labels.copy()
    out[flipped] = (labels[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    return out


def training_labels(manifest, share: float, seed: int = 0) -> np.ndarray:
    """The class index of every utterance of ``manifest`` as training sees it: its label, or with ``share``
    > 0 the labels of :func:`flip_labels` (the same for every fold of a run with this ``seed``)."""
    labels = np.array([u["label_index"] for u in manifest.utterances], np.int64)
    return flip_labels(labels, len(manifest.classes), share, seed) if share else labels
