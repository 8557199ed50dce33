"""Settings chosen per split, without its test fold: speaker normalisation, the utterance decision rule, the round.

Corpora disagree on what helps. Per-speaker normalisation gains 11 points for the SVM on Emo-DB (every
speaker shows every emotion) and loses 45 on URDU (most speakers show one emotion, so a speaker's own
statistics are that emotion's). The decision rule that turns a profile into an utterance class and the
refinement round that helps differ as well. A setting whose best value differs between corpora is therefore
chosen per split: split ``k`` (fold ``k`` held out) decides from the folds other than ``k`` alone, by a
leave-one-fold-out cross-validation over them, so the test fold's labels never enter its choice.

- Speaker normalisation of the log-Mel bands (needs training, so it is chosen before any training by a cheap
  proxy): an RBF SVM on each utterance's per-band log-Mel mean and standard deviation, with and without
  z-normalising those per speaker (:func:`choose_speaker_norm`).
- The decision rule and the round (need no training): the stored out-of-fold profiles of folds ≠ k, decided by
  each rule under the same inner folds (:func:`nested_decisions`). Split ``k`` chooses its rule on round 0's
  profiles and keeps it; the refined rounds' inner scores under that rule then choose its round. The rule and
  round the report's figures use for fold ``k`` are the ones split ``k`` chose; ``predict`` takes the choice
  most splits made.

Inner scores are UA (mean per-class recall) on the labels training sees; ties go to the earlier candidate.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import numpy as np

from emotion_refinery.decision.deciders import UTTERANCE_RULES, utterance_rule
from emotion_refinery.decision.utterance import decision_scores, fit_forest, speaker_normalise
from emotion_refinery.errors import EmorefineError

__all__ = ["SPEAKER_NORM_MODES", "DECISION_RULES", "band_functionals", "choose_speaker_norm", "speaker_norm_choices",
           "ProfileDecider", "nested_decisions", "nested_rounds", "majority"]

#: ``--speaker-norm``: chosen per split (auto), always, never.
SPEAKER_NORM_MODES = ("auto", "on", "off")

#: The names of the utterance decision rules (:data:`~emotion_refinery.decision.deciders.UTTERANCE_RULES`), simplest
#: first (ties go to the earlier one).
DECISION_RULES = tuple(UTTERANCE_RULES)


def band_functionals(stats: dict[str, np.ndarray]) -> np.ndarray:
    """Each utterance's log-Mel band means and standard deviations, ``(n_utterances, 2 · n_mels)``, from
    :func:`emotion_refinery.records.speaker_norm.utterance_statistics` (``count``, ``sum``, ``sum_sq``)."""
    count = np.maximum(np.asarray(stats["count"], np.float64), 1.0)[:, None]
    mean = np.asarray(stats["sum"], np.float64) / count
    var = np.maximum(np.asarray(stats["sum_sq"], np.float64) / count - mean**2, 0.0)
    return np.concatenate([mean, np.sqrt(var)], axis=1)


def _inner_ua(x: np.ndarray, y: np.ndarray, folds: np.ndarray, n_classes: int) -> float:
    """UA of the baseline's SVM under leave-one-fold-out over the fold ids of ``folds``."""
    from emotion_refinery.decision.baseline import make_classifier

    predicted = np.empty_like(y)
    for j in np.unique(folds):
        test = folds == j
        if len(np.unique(y[~test])) < 2:  # one class left to learn from: predict it
            predicted[test] = y[~test][0]
            continue
        predicted[test] = make_classifier().fit(x[~test], y[~test]).predict(x[test])
    return decision_scores(y, predicted, n_classes=n_classes)["ua"]


def choose_speaker_norm(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, groups: Sequence[str], *,
                        held_out: int, n_classes: int) -> dict[str, Any]:
    """Whether split ``held_out`` normalises by speaker: the proxy's inner UA without (``off``) and with (``on``)
    per-speaker z-normalisation of ``features``, over the folds ≠ ``held_out`` only.

    Args:
        features: ``(n_utterances, n_features)``, e.g. :func:`band_functionals`.
        labels, folds: class and fold of every utterance, ``(n_utterances,)``.
        groups: the normalisation group of every utterance (its speaker).

    Returns:
        ``{"fold": held_out, "off": UA, "on": UA, "speaker_norm": on > off}``.
    """
    inner = np.asarray(folds) != held_out
    if len(np.unique(np.asarray(folds)[inner])) < 2:
        raise EmorefineError(f"Received: folds with {len(np.unique(folds))} fold ids; choosing per split needs "
                             "at least three (two outside the held-out one)")
    x, y, f = np.asarray(features, np.float64)[inner], np.asarray(labels)[inner], np.asarray(folds)[inner]
    g = [groups[i] for i in np.flatnonzero(inner)]
    off = _inner_ua(x, y, f, n_classes)
    on = _inner_ua(speaker_normalise(x, g), y, f, n_classes)
    return {"fold": int(held_out), "off": off, "on": on, "speaker_norm": bool(on > off)}


def speaker_norm_choices(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, groups: Sequence[str], *,
                         n_classes: int) -> list[dict[str, Any]]:
    """:func:`choose_speaker_norm` of every split, in fold order."""
    return [choose_speaker_norm(features, labels, folds, groups, held_out=k, n_classes=n_classes)
            for k in sorted(np.unique(folds).tolist())]


def majority(values: Sequence[Any], order: Sequence[Any]) -> Any:
    """The most frequent of ``values``; ties go to the one earliest in ``order``."""
    counts = collections.Counter(values)
    return max(order, key=lambda v: (counts[v], -list(order).index(v)))


class ProfileDecider:
    """Utterance decisions of one round's out-of-fold profiles by each decision rule, trained on any set of folds.

    Args:
        profiles: segment probabilities ``(n_segments, K)``; ``utterance_index``: ``(n_segments,)``.
        labels: the classes the forests train on, ``(n_utterances,)``; ``folds``: fold of every utterance.
        speakers: speaker per utterance (``None``: a group of its own) for ``speaker-forest``.
    """

    def __init__(self, profiles: np.ndarray, utterance_index: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                 speakers: Sequence[str | None], *, n_classes: int, seed: int = 0):
        n = len(labels)
        self.labels, self.folds, self.n_classes, self.seed = np.asarray(labels), np.asarray(folds), n_classes, seed
        self._profiles, self._utterance_index, self._n = profiles, utterance_index, n
        self.features = {r.name: r.statistics(profiles, utterance_index, n, list(speakers))
                         for r in UTTERANCE_RULES.values() if r.forest}
        self._decided: dict[str, np.ndarray] = {}
        self._forests: dict[tuple, Any] = {}

    def probabilities(self, rule: str, test_fold: int, excluded: frozenset = frozenset()) -> np.ndarray:
        """Class probabilities of fold ``test_fold``'s utterances by ``rule``, a forest trained on the folds
        neither ``test_fold`` nor in ``excluded``: ``(n_test, K)``."""
        test = self.folds == test_fold
        decider = utterance_rule(rule)
        if not decider.forest:
            if rule not in self._decided:
                self._decided[rule] = decider.decide(self._profiles, self._utterance_index, self._n,
                                                     n_classes=self.n_classes)
            return self._decided[rule][test]
        left_out = frozenset({test_fold}) | excluded  # split k's inner fold j trains as split j's inner fold k
        if (rule, left_out) not in self._forests:
            train = ~np.isin(self.folds, list(left_out))
            self._forests[rule, left_out] = fit_forest(self.features[rule][train], self.labels[train], seed=self.seed)
        return decider.decide(self._profiles, self._utterance_index, self._n, n_classes=self.n_classes,
                              forest=self._forests[rule, left_out], statistics=self.features[rule][test])

    def inner_scores(self, held_out: int, rules: Sequence[str]) -> dict[str, float]:
        """UA of each rule by leave-one-fold-out over the folds ≠ ``held_out`` (its labels never used)."""
        inner = [int(j) for j in np.unique(self.folds) if j != held_out]
        rows = np.isin(self.folds, inner)
        y = self.labels[rows]
        scores = {}
        for rule in rules:
            decided = np.empty(len(self.labels), np.int64)
            for j in inner:
                decided[self.folds == j] = self.probabilities(rule, j, frozenset({held_out})).argmax(axis=1)
            scores[rule] = decision_scores(y, decided[rows], n_classes=self.n_classes)["ua"]
        return scores


def nested_rounds(splits_per_round: Sequence[Sequence[dict[str, Any]]]) -> list[int]:
    """Per split, the position (in ``splits_per_round``) of the round whose chosen rule scored best on the
    inner folds (ties: the earlier round). ``splits_per_round``: each round's ``splits`` of :func:`nested_decisions`."""
    n_splits = len(splits_per_round[0])
    return [max(range(len(splits_per_round)),
                key=lambda t: (splits_per_round[t][i]["scores"][splits_per_round[t][i]["rule"]], -t))
            for i in range(n_splits)]


def nested_decisions(decider: ProfileDecider, rules: Sequence[str],
                     kept: dict[int, str] | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Every fold decided by the rule its split chose on the other folds.

    Args:
        kept: ``{fold: rule}`` a rule each split chose before (in round 0) and keeps: the split then decides by
            it, and its inner scores only choose the round. Choosing rule and round jointly among rules ×
            rounds candidates would pick more often a candidate whose inner score is high by chance.

    Returns:
        ``(probabilities (n_utterances, K), splits)``; ``splits[i]``: ``{"fold", "rule", "scores"}`` — the inner
        UA of every candidate rule (all of ``rules``; the one rule when only one is allowed, scored all the same,
        since the score also chooses the round).
    """
    probabilities = np.zeros((len(decider.labels), decider.n_classes))
    splits = []
    for k in sorted(np.unique(decider.folds).tolist()):
        scores = decider.inner_scores(k, rules)
        rule = (kept[int(k)] if kept and int(k) in kept and kept[int(k)] in rules
                else max(rules, key=lambda r: (scores[r], -list(rules).index(r))))
        probabilities[decider.folds == k] = decider.probabilities(rule, k)
        splits.append({"fold": int(k), "rule": rule, "scores": scores})
    return probabilities, splits
