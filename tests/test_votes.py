"""Annotator votes as data: both cell forms, and the agreement figures `inspect` prints."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.votes import vote_statistics
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
    from emotion_refinery.corpora.csv_manifest import parse_votes

    utterances = [{"label": label, "votes": parse_votes(v) if v else None} for _, label, v in ROWS]
    assert vote_statistics(utterances, ["anger", "neutral"]) == EXPECTED
    assert vote_statistics([{"label": "anger"}], ["anger", "neutral"]) is None


def test_inspect_prints_the_agreement_of_a_votes_column(tmp_path):
    root = tmp_path / "corpus"
    for i, (path, label, _) in enumerate(ROWS):
        write_wav(root / path, (tone(200 + 150 * i, 0.8) + 0.01 * np.random.default_rng(i).standard_normal(12800))
                  .astype(np.float32))
    (root / "m.csv").write_text("path,label,votes\n" + "".join(f"{p},{l},{v}\n" for p, l, v in ROWS))
    runner = CliRunner()
    built = runner.invoke(main, ["build-records", str(root), "-o", str(tmp_path / "rec"), "--corpus", "csv",
                                 "--manifest", str(root / "m.csv"), "--folds", "3", "--segment-hop", "16",
                                 "--workers", "1"])
    assert built.exit_code == 0, built.output
    assert "votes       4 utterances, 2.8 votes each (min 2, max 4); clear majority 75 %" in built.output
    shown = json.loads(runner.invoke(main, ["inspect", str(tmp_path / "rec"), "--json"]).output)
    assert shown["votes"] == EXPECTED
