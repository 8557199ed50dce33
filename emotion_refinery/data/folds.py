"""Utterance-level cross-validation folds.

``by="label"`` gives the papers' protocol: K folds stratified by label over
utterances, shuffled with a seed. ``by="speaker"`` keeps every speaker in one fold
(stratified where it can be); with K equal to the number of speakers that is
leave-one-speaker-out. ``by="session"`` does the same with recording sessions (IEMOCAP's
leave-one-session-out: both speakers of a dialogue in the same fold).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from emotion_refinery.errors import EmorefineError

__all__ = ["FOLD_METHODS", "FoldAssignment", "assign_folds", "split_folds", "fold_seed"]

FOLD_METHODS = ("label", "speaker", "session")


def split_folds(n_folds: int, k: int, *, validation: bool = True) -> tuple[list[int], int | None]:
    """``(training folds, validation fold)`` of the split that holds fold ``k`` out.

    Fold ``(k + 1) mod K`` stops training early and the other ``K - 2`` folds train. Refine
    (:mod:`emotion_refinery.refine.training`), its record checks and the leakage audit all split this way.
    ``validation=False`` (``refine --early-stopping none``): the other ``K - 1`` folds train; no validation fold.
    """
    if not validation:
        return [f for f in range(n_folds) if f != k], None
    val = (k + 1) % n_folds
    return [f for f in range(n_folds) if f not in (k, val)], val


def fold_seed(seed: int, t: int, k: int) -> int:
    """A distinct, stable seed for the training of round ``t``, held-out fold ``k`` of a run seeded ``seed``
    (refine's rounds; ``lcw`` and ``mlee`` train one round, ``t = 0``)."""
    return (seed * 1_000_003 + t * 1_009 + k) % (2**31 - 1)


@dataclasses.dataclass(frozen=True)
class FoldAssignment:
    """Fold id per utterance plus a description of the protocol (stored in the manifest)."""

    folds: np.ndarray  # (n_utterances,) int
    n_folds: int
    by: str
    seed: int
    speakers_in_several_folds: int
    warnings: tuple[str, ...]

    @property
    def protocol(self) -> str:
        if self.by == "speaker":
            return f"{self.n_folds}-fold speaker-independent (speakers grouped), utterance level"
        return f"{self.n_folds}-fold stratified by label, utterance level, shuffled with seed {self.seed}"

    def to_dict(self) -> dict:
        return {
            "n_folds": self.n_folds,
            "by": self.by,
            "seed": self.seed,
            "protocol": self.protocol,
            "speakers_in_several_folds": self.speakers_in_several_folds,
        }


def assign_folds(
    labels: Sequence[int],
    *,
    speakers: Sequence[str | None] | None = None,
    sessions: Sequence[str | None] | None = None,
    n_folds: int = 10,
    by: str = "label",
    seed: int = 0,
) -> FoldAssignment:
    """Assign each utterance to one of ``n_folds`` folds.

    Args:
        labels: class index per utterance, shape ``(n_utterances,)``, in a stable order.
        speakers: speaker per utterance (required for ``by="speaker"``).
        sessions: recording session per utterance (required for ``by="session"``).
        n_folds: number of folds K (≥ 2).
        by: ``"label"`` (stratified), ``"speaker"`` or ``"session"`` (grouped by speaker or session).
        seed: shuffling seed.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if by not in FOLD_METHODS:
        raise EmorefineError(f"Received: folds_by={by!r}; expected one of {', '.join(FOLD_METHODS)}")
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise EmorefineError(f"Received: folds={n_folds!r}; expected an integer of at least 2")
    if n_folds > n:
        raise EmorefineError(f"Received: folds={n_folds}; expected at most the number of utterances ({n})")
    notes: list[str] = []
    folds = np.full(n, -1, dtype=np.int64)
    dummy = np.zeros((n, 1))

    if by in ("speaker", "session"):
        of = speakers if by == "speaker" else sessions
        if of is None or any(s is None for s in of):
            raise EmorefineError(f"folds_by={by!r} needs a {by} for every utterance; "
                                 "this corpus does not give one for each")
        names, groups = np.unique(np.asarray(of, dtype=str), return_inverse=True)
        if n_folds > len(names):
            raise EmorefineError(
                f"Received: folds={n_folds}; expected at most the number of {by}s ({len(names)}) "
                f"with folds_by={by!r}"
            )
        if n_folds == len(names):
            folds = groups.astype(np.int64)  # leave-one-group-out, folds in name order
        else:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            for k, (_, test) in enumerate(splitter.split(dummy, labels, groups)):
                folds[test] = k
    else:
        counts = np.bincount(labels)
        if counts.max() < n_folds:
            raise EmorefineError(
                f"Received: folds={n_folds}; stratified folds need at least one class with as many utterances "
                f"as folds (the largest class has {counts.max()}): "
                + (f"use folds={int(counts.max())} or fewer" if counts.max() >= 2 else
                   "2 folds need 2 utterances of some class")
            )
        rare = [int(c) for c in np.flatnonzero((counts > 0) & (counts < n_folds))]
        if rare:
            notes.append(f"classes {rare} have fewer utterances than folds ({n_folds}); "
                            "some folds will miss them")
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the rare-class warning is recorded above
            for k, (_, test) in enumerate(splitter.split(dummy, labels)):
                folds[test] = k

    several = 0
    if speakers is not None and all(s is not None for s in speakers):
        per_speaker: dict[str, set[int]] = {}
        for s, f in zip(speakers, folds):
            per_speaker.setdefault(s, set()).add(int(f))
        several = sum(len(v) > 1 for v in per_speaker.values())
    return FoldAssignment(folds, int(n_folds), by, int(seed), several, tuple(notes))
