"""Utterance-level folds: stratified by label, or grouped by speaker."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_refinery.data.folds import assign_folds
from emotion_refinery.errors import EmorefineError

LABELS = np.repeat(np.arange(4), [30, 20, 12, 40])
SPEAKERS = [f"spk{i % 6}" for i in range(len(LABELS))]


def test_stratified_folds_balance_every_class():
    a = assign_folds(LABELS, speakers=SPEAKERS, n_folds=10, seed=0)
    assert sorted(set(a.folds)) == list(range(10))
    for c in range(4):
        per_fold = np.bincount(a.folds[LABELS == c], minlength=10)
        assert per_fold.max() - per_fold.min() <= 1
    assert a.speakers_in_several_folds == 6
    assert "stratified" in a.protocol


def test_folds_are_seeded():
    a = assign_folds(LABELS, n_folds=5, seed=1).folds
    np.testing.assert_array_equal(a, assign_folds(LABELS, n_folds=5, seed=1).folds)
    assert not np.array_equal(a, assign_folds(LABELS, n_folds=5, seed=2).folds)


def test_speaker_folds_keep_each_speaker_in_one_fold():
    a = assign_folds(LABELS, speakers=SPEAKERS, n_folds=3, by="speaker", seed=0)
    for s in set(SPEAKERS):
        assert len({f for f, t in zip(a.folds, SPEAKERS) if t == s}) == 1
    assert a.speakers_in_several_folds == 0 and sorted(set(a.folds)) == [0, 1, 2]


def test_leave_one_speaker_out_when_folds_equal_speakers():
    a = assign_folds(LABELS, speakers=SPEAKERS, n_folds=6, by="speaker")
    assert [int(a.folds[SPEAKERS.index(f"spk{i}")]) for i in range(6)] == list(range(6))


def test_rare_class_is_reported():
    labels = np.array([0] * 20 + [1] * 3)
    assert any("fewer utterances than folds" in w for w in assign_folds(labels, n_folds=5).warnings)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_folds": 1}, "Received: folds=1"),
    ({"n_folds": 1000}, "at most the number of utterances"),
    ({"by": "gender"}, "Received: folds_by='gender'"),
    ({"by": "speaker", "n_folds": 7, "speakers": SPEAKERS}, "at most the number of speakers"),
    ({"by": "speaker", "speakers": None}, "needs a speaker"),
])
def test_bad_fold_settings(kwargs, message):
    with pytest.raises(EmorefineError, match=message):
        assign_folds(LABELS, **kwargs)
