"""Annotator votes: agreement statistics (what `inspect` reports) and soft targets from the votes.

Soft targets follow the multi-label emotion existence (MLEE) literature: with ``v_c`` the votes for
class ``c`` of an utterance, ``q(c) = (α + v_c) / (α K + Σ_c' v_c')``, α = 0.75.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["vote_statistics", "soft_targets", "SOFT_ALPHA", "LABEL_SOURCES"]

#: The smoothing α of :func:`soft_targets`.
SOFT_ALPHA = 0.75
#: What round 0 trains on: the one-hot utterance labels, or soft targets from the votes.
LABEL_SOURCES = ("labels", "votes")


def vote_statistics(utterances: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> dict[str, Any] | None:
    """Agreement figures over the utterances with ``votes`` (``{class: count}``), or ``None`` when none has any.

    Returns:
        ``utterances`` (with votes), ``votes_per_utterance`` (mean, min, max of the vote totals),
        ``clear_majority`` (share whose top class has more than half of the votes),
        ``label_is_plurality`` (share whose label is among the classes with the most votes), and
        ``cooccurrence``, ``(K, K)`` int: utterances in which both classes got at least one vote (the
        diagonal: in which the class got any).
    """
    voted = [u for u in utterances if u.get("votes")]
    if not voted:
        return None
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(voted), len(classes)))
    for row, u in zip(counts, voted):
        for name, n in u["votes"].items():
            row[index[name]] += n
    totals = counts.sum(axis=1)
    top = counts.max(axis=1)
    present = (counts > 0).astype(np.int64)
    labels = np.array([index[u["label"]] for u in voted])
    return {
        "utterances": len(voted),
        "votes_per_utterance": {"mean": float(totals.mean()), "min": float(totals.min()), "max": float(totals.max())},
        "clear_majority": float(np.mean(top > totals / 2)),
        "label_is_plurality": float(np.mean(counts[np.arange(len(voted)), labels] == top)),
        "cooccurrence": (present.T @ present).tolist(),
    }


def soft_targets(utterances: Sequence[Mapping[str, Any]], classes: Sequence[str], *,
                 alpha: float = SOFT_ALPHA) -> np.ndarray:
    """``(n_utterances, K)`` float64 rows summing to 1: ``(α + v_c) / (α K + Σ v)`` from each utterance's
    ``votes`` (``{class: count}``); an utterance without votes keeps its one-hot ``label``."""
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    out = np.zeros((len(utterances), k))
    for row, u in zip(out, utterances):
        if u.get("votes"):
            for name, n in u["votes"].items():
                row[index[name]] += n
            row += alpha
            row /= row.sum()
        else:
            row[index[u["label"]]] = 1.0
    return out
