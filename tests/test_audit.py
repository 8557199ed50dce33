"""The leakage audit on hand-made manifest utterance entries: planted speaker, text and id overlaps."""

from __future__ import annotations

import pytest

from emotion_refinery.data.folds import split_folds
from emotion_refinery.records.audit import audit_markdown, audit_text, leakage_audit


def utt(uid, fold, speaker=None, text=None):
    return {"id": uid, "fold": fold, "speaker": speaker, "text": text}


# 3 folds: split k holds k out, stops early on k + 1 and trains on k + 2 (mod 3).
PLANTED = [
    utt("u0", 0, "A", "t1"), utt("u1", 0, "B", "t2"),
    utt("u2", 1, "C", "t3"), utt("u3", 1, "A", "t9"),
    utt("u4", 2, "A", "t1"), utt("u0", 2, "D", None),  # the id u0 again, in fold 2 (fold 0's training fold)
]


def test_split_folds_holds_k_out_and_stops_early_on_the_next_fold():
    for n in (3, 4, 10):
        for k in range(n):
            train, val = split_folds(n, k)
            assert val == (k + 1) % n and sorted(train + [k, val]) == list(range(n))
    assert split_folds(4, 3) == ([1, 2], 0)


def test_planted_overlaps_are_counted_exactly():
    audit = leakage_audit(PLANTED, 3)
    rows = {r["fold"]: r for r in audit["folds"]}
    assert [(r["validation_fold"], r["training_folds"]) for r in audit["folds"]] == [(1, [2]), (2, [0]), (0, [1])]
    # Fold 0 against fold 2: speaker A and text t1 shared, and the id u0; u0 has both, u1 neither.
    assert {k: rows[0][k] for k in ("utterances", "speakers", "shared_speakers", "texts", "shared_texts",
                                    "shared_ids", "speaker_share", "text_share")} == {
        "utterances": 2, "speakers": 2, "shared_speakers": 1, "texts": 2, "shared_texts": 1, "shared_ids": 1,
        "speaker_share": 0.5, "text_share": 0.5}
    # Fold 1 against fold 0: speaker A (u3) shared, no text (t3, t9 are not in fold 0).
    assert (rows[1]["shared_speakers"], rows[1]["shared_texts"], rows[1]["shared_ids"]) == (1, 0, 0)
    assert (rows[1]["speaker_share"], rows[1]["text_share"]) == (0.5, 0.0)
    # Fold 2 against fold 1: speaker A (u4) shared; t1 is not in fold 1; u0's text is unknown.
    assert (rows[2]["speakers"], rows[2]["texts"], rows[2]["shared_speakers"], rows[2]["shared_texts"]) == (2, 1, 1, 0)
    assert (rows[2]["speaker_share"], rows[2]["text_share"], rows[2]["shared_ids"]) == (0.5, 0.0, 0)
    s = audit["summary"]
    assert s == {"utterances": 6, "speaker_share": 0.5, "text_share": pytest.approx(1 / 6), "shared_ids": 1,
                 "speaker_dependent": True, "text_dependent": True,
                 "confound": {"speakers": 0, "single_class_speakers": 0, "single_class_share": None}}
    assert audit["warning"] == (
        "speaker-dependent protocol: 50 % of held-out utterances have their speaker in the training folds; "
        "text-dependent: 16.7 % have their text in the training folds; "
        "1 utterance id(s) are both held out and trained on")


def test_the_early_stopping_fold_is_not_a_training_fold():
    # 4 folds: split 0 trains on folds 2 and 3; speaker X is in folds 0 and 1 only.
    utts = [utt("a", 0, "X", "s"), utt("b", 1, "X", "s"), utt("c", 2, "Y", "r"), utt("d", 3, "Z", "q")]
    rows = leakage_audit(utts, 4)["folds"]
    assert (rows[0]["shared_speakers"], rows[0]["shared_texts"]) == (0, 0)
    # Split 1 holds fold 1 out and trains on folds 0 and 3: X and its text are shared.
    assert (rows[1]["training_folds"], rows[1]["shared_speakers"], rows[1]["shared_texts"]) == ([0, 3], 1, 1)


def test_no_overlap_and_unknown_fields():
    loso = [utt(f"u{i}", i, f"spk{i}", f"text{i}") for i in range(4)]
    audit = leakage_audit(loso, 4)
    assert audit["summary"] == {"utterances": 4, "speaker_share": 0.0, "text_share": 0.0, "shared_ids": 0,
                                "speaker_dependent": False, "text_dependent": False,
                                "confound": {"speakers": 0, "single_class_speakers": 0, "single_class_share": None}}
    assert audit["warning"] == ("speaker-independent: no held-out utterance has its speaker in the training folds; "
                                "text-independent: no held-out utterance has its text in the training folds")
    # Entries of a manifest made before texts were stored (no "text" key), and a corpus without speakers.
    old = [{"id": f"u{i}", "fold": i % 3} for i in range(6)]
    audit = leakage_audit(old, 3)
    assert audit["summary"]["speaker_share"] is None and audit["summary"]["text_share"] is None
    assert all(r["speaker_share"] is None and r["shared_speakers"] == 0 for r in audit["folds"])
    assert audit["warning"] == "speakers unknown (the corpus gives none); texts unknown (the corpus gives none)"


def test_speakers_who_show_a_single_class_are_counted_and_warned_about():
    # URDU-like: speakers A and B show one class each; C shows two. 4 of the 6 labelled utterances are A's or B's.
    utts = [{**utt(f"u{i}", i % 3, s), "label": c} for i, (s, c) in enumerate(
        [("A", "sad"), ("A", "sad"), ("B", "angry"), ("B", "angry"), ("C", "sad"), ("C", "happy")])]
    utts.append({**utt("u6", 0, "C"), "label": None})  # unlabelled: not counted
    audit = leakage_audit(utts, 3)
    assert audit["summary"]["confound"] == {"speakers": 3, "single_class_speakers": 2,
                                            "single_class_share": pytest.approx(4 / 6)}
    assert audit["warning"].endswith("66.7 % of utterances come from the 2 of 3 speakers who show a single class "
                                     "(speakers and emotions confounded: normalising a speaker by their own "
                                     "statistics would erase the emotion)")
    balanced = [{**u, "label": ("sad", "happy")[i % 2]} for i, u in enumerate(utts[:6])]  # every speaker: both
    audit = leakage_audit(balanced, 3)
    assert audit["summary"]["confound"]["single_class_share"] == 0.0
    assert audit["warning"].endswith("0 % of utterances come from the 0 of 3 speakers who show a single class")


def test_everything_shared_as_in_stratified_folds_of_an_acted_corpus():
    # 2 speakers x 3 texts in every fold: every held-out utterance's speaker and text are trained on.
    utts = [utt(f"{s}{t}{k}", k, s, t) for k in range(3) for s in "AB" for t in ("t1", "t2", "t3")]
    audit = leakage_audit(utts, 3)
    assert audit["summary"]["speaker_share"] == audit["summary"]["text_share"] == 1.0
    assert audit["warning"].startswith("speaker-dependent protocol: 100 % of held-out utterances have their "
                                       "speaker in the training folds; text-dependent: 100 %")
    assert all((r["shared_speakers"], r["shared_texts"]) == (2, 3) for r in audit["folds"])


def test_renderings():
    audit = leakage_audit(PLANTED, 3)
    md = audit_markdown(audit)
    assert md[0] == audit["warning"] + "."
    table = [line for line in md if line.startswith("| ")]
    assert len(table) == 1 + 3 and table[1] == "| 0 | 2 | 2 | 1 | 2 | 1 | 1 | 50 | 50 |"
    text = audit_text(audit)
    assert len(text) == 4 and text[0].split()[:2] == ["held-out", "fold"]
    assert text[3].split() == ["2", "2", "2", "1", "1", "0", "0", "50", "0"]
    unknown = audit_markdown(leakage_audit([{"id": "a", "fold": 0}, {"id": "b", "fold": 1}, {"id": "c", "fold": 2}], 3))
    assert unknown[-1].endswith("| – | – |")
