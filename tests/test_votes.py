"""Annotator votes as data: both cell forms, and the agreement figures `inspect` prints."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.votes import soft_targets, vote_statistics
from tests.conftest import tone, write_wav

ROWS = [  # path, label, votes
    ("a1.wav", "anger", "anger:3;neutral:1"),   # clear majority, label the most voted
    ("n1.wav", "neutral", "anger;neutral"),     # one label per annotator: a tie, no clear majority
    ("a2.wav", "anger", "neutral:2;anger:1"),   # the label is not the most voted
    ("a3.wav", "anger", "anger:2"),
    ("n2.wav", "neutral", ""),
    ("n3.wav", "neutral", ""),
]
EXPECTED = {"utterances": 4, "votes_per_utterance": {"mean": 2.75, "min": 2.0, "max": 4.0}, "clear_majority": 0.75,
            "label_is_plurality": 0.75, "cooccurrence": [[4, 3], [3, 3]]}


def test_vote_statistics_by_hand():
    from emotion_refinery.data.corpora.csv_manifest import parse_votes

    utterances = [{"label": label, "votes": parse_votes(v) if v else None} for _, label, v in ROWS]
    assert vote_statistics(utterances, ["anger", "neutral"]) == EXPECTED
    assert vote_statistics([{"label": "anger"}], ["anger", "neutral"]) is None


def test_soft_targets_by_hand():
    utterances = [{"label": "a", "votes": {"a": 3, "b": 1}}, {"label": "c", "votes": None}]
    q = soft_targets(utterances, ["a", "b", "c"])
    np.testing.assert_allclose(q, [[3.75 / 6.25, 1.75 / 6.25, 0.75 / 6.25], [0, 0, 1]])  # α = 0.75, K = 3


def _voted_records(tmp_path):
    root = tmp_path / "corpus"
    for i, (path, _label, _) in enumerate(ROWS):
        write_wav(root / path, (tone(200 + 150 * i, 0.8) + 0.01 * np.random.default_rng(i).standard_normal(12800))
                  .astype(np.float32))
    (root / "m.csv").write_text("path,label,votes\n" + "".join(f"{p},{label},{v}\n" for p, label, v in ROWS))
    runner = CliRunner()
    built = runner.invoke(main, ["build-records", str(root), "-o", str(tmp_path / "rec"), "--corpus", "csv",
                                 "--manifest", str(root / "m.csv"), "--folds", "3", "--segment-hop", "16",
                                 "--workers", "1"])
    assert built.exit_code == 0, built.output
    return built


def test_inspect_prints_the_agreement_of_a_votes_column(tmp_path):
    built, runner = _voted_records(tmp_path), CliRunner()
    assert "votes       4 utterances, 2.8 votes each (min 2, max 4); clear majority 75 %" in built.output
    shown = json.loads(runner.invoke(main, ["inspect", str(tmp_path / "rec"), "--json"]).output)
    assert shown["votes"] == EXPECTED


def test_round_zero_targets_from_votes_and_the_rules_mix_them_in(tmp_path):
    from emotion_refinery.records.manifest import RecordsManifest
    from emotion_refinery.refine.training import given_targets, next_targets

    _voted_records(tmp_path)
    manifest = RecordsManifest.load(tmp_path / "rec")
    table = manifest.segment_table()
    expected = soft_targets(manifest.utterances, manifest.classes)
    for fold in range(manifest.n_folds):
        lo, hi = manifest.fold_segments(fold)
        votes = given_targets(manifest, fold, "votes")
        np.testing.assert_allclose(votes, expected[table["utterance"][lo:hi]], rtol=1e-6)
        np.testing.assert_array_equal(given_targets(manifest, fold, "labels").argmax(axis=1), table["label"][lo:hi])
        q = np.full((hi - lo, 2), 0.5)
        wdsl = next_targets(manifest, fold, q, rule="wdsl", alpha=0.2, source="votes")
        np.testing.assert_allclose(wdsl, 0.8 * q + 0.2 * votes, rtol=1e-5)
    assert any(not np.isin(row, (0.0, 1.0)).all() for row in expected)  # some rows really are soft


def test_csv_rows_with_votes_and_no_label_are_unlabelled_utterances(tmp_path):
    from emotion_refinery.data.corpora import scan_corpus

    rows = ROWS + [("u1.wav", "", "anger;neutral"), ("u2.wav", "", "joy:2"), ("u3.wav", "", "")]
    for path, _, _ in rows:
        write_wav(tmp_path / path, tone(220, 0.5))
    (tmp_path / "m.csv").write_text("path,label,votes\n" + "".join(f"{p},{label},{v}\n" for p, label, v in rows))
    _, scan = scan_corpus(tmp_path, corpus="csv", manifest=tmp_path / "m.csv")
    assert [(u.id, u.label, u.votes) for u, _ in scan.unlabelled] == [("u1", None, {"anger": 1.0, "neutral": 1.0})]
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in scan.skipped}
    assert reasons["u3.wav"] == "empty label"  # neither label nor votes
    assert reasons["u2.wav"].startswith("votes name joy, which no usable row has as label")
    assert scan.classes == ["anger", "neutral"] and len(scan.utterances) == len(ROWS)
