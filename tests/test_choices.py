"""Per-split choices made without the test fold: speaker normalisation, the decision rule, the round."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_refinery.decision.choices import (
    DECISION_RULES,
    ProfileDecider,
    band_functionals,
    choose_speaker_norm,
    majority,
    nested_decisions,
    nested_rounds,
    speaker_norm_choices,
)
from emotion_refinery.decision.utterance import evaluate_forest, utterance_features
from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.audit import speaker_confound


def _utterances(*, confounded: bool, n_speakers: int = 8, per_speaker: int = 12, seed: int = 0):
    """Features of 2 classes: a class cue on feature 0, a speaker offset on every feature.

    ``confounded``: each speaker shows one class (as most of URDU's), the cue stronger than the speaker offsets;
    else every speaker shows both classes (Emo-DB) and the speaker offsets swamp the cue."""
    rng = np.random.default_rng(seed)
    x, y, speakers, folds = [], [], [], []
    for s in range(n_speakers):
        offset = rng.normal(0, 0.5 if confounded else 4, 6)
        for i in range(per_speaker):
            c = s % 2 if confounded else i % 2
            x.append(offset + rng.normal(0, 0.5, 6) + np.eye(6)[0] * ((3 if confounded else 1.5) * c))
            y.append(c), speakers.append(f"speaker:{s}"), folds.append(s % 4)
    return np.array(x), np.array(y), speakers, np.array(folds)


def test_speaker_norm_is_chosen_where_every_speaker_shows_every_class():
    x, y, groups, folds = _utterances(confounded=False)
    choices = speaker_norm_choices(x, y, folds, groups, n_classes=2)
    assert [c["fold"] for c in choices] == [0, 1, 2, 3]
    assert all(c["speaker_norm"] and c["on"] > c["off"] + 0.2 for c in choices)


def test_speaker_norm_is_refused_where_speakers_show_one_class():
    x, y, groups, folds = _utterances(confounded=True)
    choices = speaker_norm_choices(x, y, folds, groups, n_classes=2)
    assert not any(c["speaker_norm"] for c in choices)
    assert all(c["off"] > c["on"] for c in choices)  # normalised, each speaker's one class is its mean: erased


def test_a_splits_choice_never_reads_its_held_out_folds_labels():
    x, y, groups, folds = _utterances(confounded=False)
    scrambled = y.copy()
    held = folds == 2
    scrambled[held] = 1 - scrambled[held]
    assert choose_speaker_norm(x, y, folds, groups, held_out=2, n_classes=2) == \
        choose_speaker_norm(x, scrambled, folds, groups, held_out=2, n_classes=2)
    assert choose_speaker_norm(x, y, folds, groups, held_out=1, n_classes=2) != \
        choose_speaker_norm(x, scrambled, folds, groups, held_out=1, n_classes=2)  # fold 2 is one of split 1's


def test_too_few_folds_to_choose_are_refused():
    x, y, groups, _ = _utterances(confounded=False)
    with pytest.raises(EmorefineError, match="at least three"):
        choose_speaker_norm(x, y, np.arange(len(y)) % 2, groups, held_out=0, n_classes=2)


def test_band_functionals_are_the_means_and_deviations_of_the_frames():
    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(n, 3)) for n in (5, 9)]
    stats = {"count": np.array([len(f) for f in frames]), "sum": np.stack([f.sum(0) for f in frames]),
             "sum_sq": np.stack([(f * f).sum(0) for f in frames])}
    expected = np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in frames])
    np.testing.assert_allclose(band_functionals(stats), expected, atol=1e-12)


def test_speaker_confound_counts_utterances_of_single_class_speakers():
    assert speaker_confound(["a", "a", "b", "a", "b", None], ["S1", "S1", "S2", "S3", "S3", "S4"]) == \
        {"speakers": 3, "single_class_speakers": 2, "single_class_share": 0.6}
    assert speaker_confound(["a", "b"], [None, None])["single_class_share"] is None


def _profiles(seed=0, n_utts=40, n_folds=4, k=3):
    """Random profiles whose mean points at the utterance's class for 70 % of the utterances."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n_utts)
    labels[:k] = np.arange(k)
    counts = rng.integers(3, 8, n_utts)
    index = np.repeat(np.arange(n_utts), counts)
    logits = rng.normal(0, 1, (len(index), k))
    cue = np.where(rng.random(n_utts) < 0.7, labels, rng.integers(0, k, n_utts))
    logits[np.arange(len(index)), cue[index]] += 1.5
    q = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    folds = np.arange(n_utts) % n_folds
    speakers = [f"s{i % 6}" for i in range(n_utts)]
    return q, index, labels, folds, speakers


def test_a_fixed_rule_decides_each_fold_as_the_papers_forest_does():
    q, index, labels, folds, speakers = _profiles()
    decider = ProfileDecider(q, index, labels, folds, speakers, n_classes=3, seed=5)
    probabilities, splits = nested_decisions(decider, ("forest",))
    expected = evaluate_forest(utterance_features(q, index, len(labels)), labels, folds, seed=5, n_classes=3)
    np.testing.assert_allclose(probabilities, expected.probabilities)
    assert [s["rule"] for s in splits] == ["forest"] * 4 and all(set(s["scores"]) == {"forest"} for s in splits)


def test_auto_rule_is_chosen_per_split_on_the_other_folds_only():
    q, index, labels, folds, speakers = _profiles(seed=1)
    decider = ProfileDecider(q, index, labels, folds, speakers, n_classes=3)
    probabilities, splits = nested_decisions(decider, DECISION_RULES)
    for s in splits:
        assert set(s["scores"]) == set(DECISION_RULES)
        assert s["rule"] == max(DECISION_RULES, key=lambda r: (s["scores"][r], -DECISION_RULES.index(r)))
        rows = folds == s["fold"]
        np.testing.assert_allclose(probabilities[rows], decider.probabilities(s["rule"], s["fold"]))
    # Scrambling fold 3's labels leaves split 3's inner scores (and choice) as they were.
    scrambled = labels.copy()
    scrambled[folds == 3] = (scrambled[folds == 3] + 1) % 3
    other = ProfileDecider(q, index, scrambled, folds, speakers, n_classes=3)
    assert other.inner_scores(3, DECISION_RULES) == decider.inner_scores(3, DECISION_RULES)
    assert other.inner_scores(0, DECISION_RULES) != decider.inner_scores(0, DECISION_RULES)


def test_a_kept_rule_decides_its_split_whatever_the_inner_scores_say():
    q, index, labels, folds, speakers = _profiles(seed=1)
    decider = ProfileDecider(q, index, labels, folds, speakers, n_classes=3)
    _, free = nested_decisions(decider, DECISION_RULES)
    kept = {s["fold"]: min(DECISION_RULES, key=lambda r: s["scores"][r]) for s in free}  # each split's worst rule
    probabilities, splits = nested_decisions(decider, DECISION_RULES, kept=kept)
    for s, before in zip(splits, free):
        assert s["rule"] == kept[s["fold"]] and s["scores"] == before["scores"]  # the evidence is still shown
        np.testing.assert_allclose(probabilities[folds == s["fold"]], decider.probabilities(s["rule"], s["fold"]))
    _, only = nested_decisions(decider, ("mean-ep",), kept=kept)  # a kept rule that is not allowed is ignored
    assert {s["rule"] for s in only} == {"mean-ep"}


def test_the_mean_ep_rule_needs_no_training():
    q, index, labels, folds, speakers = _profiles()
    decider = ProfileDecider(q, index, labels, folds, speakers, n_classes=3)
    probabilities, _ = nested_decisions(decider, ("mean-ep",))
    means = np.stack([q[index == u].mean(0) for u in range(len(labels))])
    np.testing.assert_allclose(probabilities, means / means.sum(1, keepdims=True))
    with pytest.raises(EmorefineError, match="Received: rule='svm'"):
        decider.probabilities("svm", 0)


def test_each_split_picks_its_best_round_and_the_majority_breaks_ties_early():
    def split(score):
        return {"rule": "forest", "scores": {"forest": score, "mean-ep": 1.0}}  # the chosen rule's score counts

    rounds = [[split(0.5), split(0.7), split(0.6)], [split(0.6), split(0.7), split(0.4)]]
    assert nested_rounds(rounds) == [1, 0, 0]  # split 1 ties: the earlier round
    assert majority([1, 0, 0], [0, 1]) == 0 and majority([1, 1, 0], [0, 1]) == 1
    assert majority([True, False], [False, True]) is False
