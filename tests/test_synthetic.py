"""The synthetic corpus's segment truth and ``truth_agreement`` (``emorefine inspect RUN_DIR --truth``).

Most tests use a hand-made run directory (records built from the session's synthetic corpus, label
shards and predictions written directly, no training); one checks the trained ``finished_run``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.synthetic import segment_truth, segment_truths
from emotion_refinery.errors import EmorefineError
from emotion_refinery.outputs.truth import truth_agreement
from emotion_refinery.records.build import build_records
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from tf_records.atomic import write_json

FEATURES = FeatureConfig(segment_hop=8)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    root, csv = synthetic_corpus
    out = tmp_path_factory.mktemp("synthetic-records") / "rec"
    build_records(root, out, manifest=csv, features=FEATURES, n_folds=3, workers=1)
    return out


@pytest.fixture(scope="module")
def truth(synthetic_corpus):
    return json.loads((synthetic_corpus[0] / "truth.json").read_text())


def _direct_truth(manifest, truth):
    return np.concatenate([segment_truth(truth[u["id"]], u["segments"], manifest.features)
                           for u in manifest.utterances])


@pytest.fixture(scope="module")
def hand_made_run(records, truth, tmp_path_factory):
    """Rounds 0 and 1 finished, round 2 with labels and one fold done (unfinished).

    Round 0: the utterance labels, random predictions; round 1: labels = the segment truth with every
    7th segment set to class 0, predictions = the utterance labels; round 2: any labels.
    """
    manifest = RecordsManifest.load(records)
    out = tmp_path_factory.mktemp("hand-made-run") / "run"
    run = RunDir(out)
    write_json(run.config, {"config": {}, "records": {"path": str(records.resolve())}})
    k = len(manifest.classes)
    eye = np.eye(k, dtype=np.float32)
    labels = manifest.segment_table()["label"]
    true = np.array([manifest.classes.index(c) for c in _direct_truth(manifest, truth)])
    noisy = true.copy()
    noisy[::7] = 0
    rng = np.random.default_rng(0)
    rounds = {
        0: (eye[labels], rng.dirichlet(np.ones(k), size=len(labels)).astype(np.float32)),
        1: (0.6 * eye[noisy] + 0.4 / k, 0.9 * eye[labels] + 0.1 / k),
        2: (np.full((len(labels), k), 1 / k, dtype=np.float32), eye[true]),
    }
    for t, (targets, predictions) in rounds.items():
        for fold in range(manifest.n_folds):
            lo, hi = manifest.fold_segments(fold)
            run.write_labels(t, manifest, fold, targets[lo:hi])
            if t < 2 or fold == 0:
                run.save_predictions(t, fold, predictions[lo:hi])
                run.write_done(t, fold, {"round": t, "fold": fold})
    return out, rounds


def test_agreement_equals_a_direct_computation_on_a_hand_made_run(hand_made_run, records, truth, synthetic_corpus):
    out, rounds = hand_made_run
    manifest = RecordsManifest.load(records)
    classes = np.array(manifest.classes)
    true = _direct_truth(manifest, truth)
    got = truth_agreement(out, synthetic_corpus[0] / "truth.json")
    assert [r["round"] for r in got] == [0, 1]  # round 2 is unfinished
    for r in got:
        targets, predictions = rounds[r["round"]]
        assert set(r) == {"round", "label_agreement", "prediction_agreement"}
        assert r["label_agreement"] == pytest.approx(np.mean(classes[targets.argmax(1)] == true))
        assert r["prediction_agreement"] == pytest.approx(np.mean(classes[predictions.argmax(1)] == true))
    # Round 0's labels are the utterance labels: its agreement is the share of segments the emotion
    # covers (all of a neutral utterance), below 1 since emotions cover only part of each utterance.
    utterance_label = np.repeat([u["label"] for u in manifest.utterances], [u["segments"] for u in manifest.utterances])
    assert got[0]["label_agreement"] == pytest.approx(np.mean(utterance_label == true))
    assert 0.5 < got[0]["label_agreement"] < 0.95
    # Round 1's labels: the truth but for every 7th segment (class 0 there, right only where the truth is 0).
    assert got[1]["label_agreement"] == pytest.approx(1 - np.mean(true[::7] != classes[0]) * len(true[::7]) / len(true))
    assert got[1]["prediction_agreement"] == pytest.approx(got[0]["label_agreement"])


def test_segment_truths_fall_back_to_the_source_path(records, truth, synthetic_corpus):
    """Records built with their own ids (a CSV ``id`` column) still find their truth by source path."""
    manifest = RecordsManifest.load(records)
    renamed = [{**u, "id": f"utt{i}"} for i, u in enumerate(manifest.utterances)]
    np.testing.assert_array_equal(segment_truths(renamed, truth, FEATURES, truth_dir=synthetic_corpus[0]),
                                  _direct_truth(manifest, truth))
    with pytest.raises(EmorefineError, match=r"Received: 16 of 16 utterance\(s\) without a truth entry "
                                             r"\('utt0', 'utt1', 'utt2' and 13 more\); expected"):
        segment_truths(renamed, truth, FEATURES)


def test_inspect_truth_prints_every_round_and_json(hand_made_run, synthetic_corpus):
    out, _ = hand_made_run
    truth_json = synthetic_corpus[0] / "truth.json"
    expected = truth_agreement(out, truth_json)
    result = invoke("inspect", out, "--truth", truth_json, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected
    result = invoke("inspect", out, "--truth", truth_json)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Agreement with the segment truth" in lines[0] and "training labels" in lines[1]
    for line, r in zip(lines[2:], expected, strict=True):
        assert line.split() == [str(r["round"]), f"{100 * r['label_agreement']:.2f}", "%",
                                f"{100 * r['prediction_agreement']:.2f}", "%"]


def test_inspect_truth_errors(hand_made_run, records, synthetic_corpus, tmp_path):
    out, _ = hand_made_run
    truth_json = synthetic_corpus[0] / "truth.json"
    result = invoke("inspect", records, "--truth", truth_json)
    assert result.exit_code == 2 and "a records folder; expected a run directory" in result.output
    result = invoke("inspect", out, "--truth", tmp_path / "nope.json")
    assert result.exit_code == 2
    assert f"Received: truth={str(tmp_path / 'nope.json')!r} (No such file or directory); expected" in result.output
    (tmp_path / "bad.json").write_text("[1, 2]")
    result = invoke("inspect", out, "--truth", tmp_path / "bad.json")
    assert result.exit_code == 2 and "not a mapping of utterance id" in result.output
    partial = json.loads(truth_json.read_text())
    partial.pop(sorted(partial)[0])
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    result = invoke("inspect", out, "--truth", tmp_path / "partial.json")
    assert result.exit_code == 2 and "Received: 1 of 16 utterance(s) without a truth entry" in result.output
    result = invoke("inspect", out, "--truth", truth_json, "--round", 0, "--utterance", "x", "--dump",
                    tmp_path / "x.npz")
    assert result.exit_code == 2 and "expected one of them" in result.output


def test_no_finished_round_is_refused(records, synthetic_corpus, tmp_path):
    run = RunDir(tmp_path / "run")
    write_json(run.config, {"config": {}, "records": {"path": str(records.resolve())}})
    with pytest.raises(EmorefineError, match="with no finished round; expected"):
        truth_agreement(run.root, synthetic_corpus[0] / "truth.json")


@pytest.mark.slow
def test_agreement_of_a_trained_run(finished_run, synthetic_corpus, truth):
    run = RunDir(finished_run)
    manifest = RecordsManifest.load(json.loads(run.config.read_text())["records"]["path"])
    classes = np.array(manifest.classes)
    true = _direct_truth(manifest, truth)
    got = truth_agreement(finished_run, Path(synthetic_corpus[0]) / "truth.json")
    assert [r["round"] for r in got] == [0, 1]
    for r in got:
        t = r["round"]
        assert r["label_agreement"] == pytest.approx(np.mean(classes[run.load_targets(t, manifest).argmax(1)] == true))
        assert r["prediction_agreement"] == pytest.approx(
            np.mean(classes[run.load_predictions(t, manifest).argmax(1)] == true))


def test_simulated_annotators_vote_for_the_emotions_present(tmp_path):
    import csv

    from emotion_refinery.data.corpora.csv_manifest import parse_votes
    from emotion_refinery.data.synthetic import make_corpus

    plain = make_corpus(tmp_path / "plain", per_class=4, seed=2)
    voted = make_corpus(tmp_path / "voted", per_class=4, seed=2, annotators=7, annotator_noise=0.0)
    # The audio does not depend on the annotators.
    for name in ("s1_anger_00", "s2_sadness_01", "s4_neutral_03"):
        assert (tmp_path / "plain" / "wav" / f"{name}.wav").read_bytes() == (tmp_path / "voted" / "wav" /
                                                                            f"{name}.wav").read_bytes()
    assert "votes" not in open(plain).readline()
    truth = json.loads((tmp_path / "voted" / "truth.json").read_text())
    rows = list(csv.DictReader(open(voted)))
    assert len(rows) == 16
    for row in rows:
        entry = truth[row["path"][:-4]]
        votes = parse_votes(row["votes"])
        assert sum(votes.values()) == 7
        # Without noise, every vote names an emotion that is present.
        assert set(votes) <= set(entry["present"])
        assert entry["present"] == (["neutral"] if row["label"] == "neutral" else sorted([row["label"], "neutral"]))
    noisy = make_corpus(tmp_path / "noisy", per_class=4, seed=2, annotators=7, annotator_noise=1.0)
    counts = [parse_votes(r["votes"]) for r in csv.DictReader(open(noisy))]
    assert len(set().union(*counts)) == 4  # random votes reach every class
    four = make_corpus(tmp_path / "four", per_class=4, seed=2, annotators=4, annotator_noise=0.0)
    majority = make_corpus(tmp_path / "majority", per_class=4, seed=2, annotators=4, annotator_noise=0.0,
                           majority_labels=True)
    blank = 0
    for row, plain_row in zip(csv.DictReader(open(majority)), csv.DictReader(open(four))):
        votes = parse_votes(row["votes"])
        assert votes == parse_votes(plain_row["votes"])  # the same votes, labelled by their majority
        top = max(votes, key=votes.get)
        assert row["label"] == (top if votes[top] > 2 else "")  # a 2–2 tie has no majority
        blank += row["label"] == ""
        assert truth[row["path"][:-4]]["label"] == plain_row["label"]
    assert 0 < blank < 16


def _band_energy(path, low, high):
    y, sr = soundfile.read(path, always_2d=True)
    spectrum = np.abs(np.fft.rfft(y[:, 0])) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    return spectrum[(freqs >= low) & (freqs <= high)].sum() / spectrum.sum()


def test_speaker_habits_and_fainter_patterns_make_the_corpus_harder(tmp_path):
    from emotion_refinery.data.synthetic import make_corpus

    make_corpus(tmp_path / "plain", per_class=4, seed=2)
    make_corpus(tmp_path / "habit", per_class=4, seed=2, speaker_habit=0.5)
    make_corpus(tmp_path / "faint", per_class=4, seed=2, pattern_level=0.25)
    wav = lambda corpus, name: tmp_path / corpus / "wav" / f"{name}.wav"  # noqa: E731
    # s1 has no habit; s2's neutral speech carries anger's 2–4 kHz noise, s3's happiness' 1–2 kHz chirps.
    assert wav("plain", "s1_neutral_00").read_bytes() == wav("habit", "s1_neutral_00").read_bytes()
    assert _band_energy(wav("habit", "s2_neutral_01"), 2000, 4000) > 5 * _band_energy(wav("plain", "s2_neutral_01"),
                                                                                      2000, 4000)
    assert _band_energy(wav("habit", "s3_neutral_02"), 1000, 2000) > 2 * _band_energy(wav("plain", "s3_neutral_02"),
                                                                                      1000, 2000)
    # Fainter patterns: an angry utterance has less of its band; neutral ones (no pattern) are unchanged.
    assert _band_energy(wav("faint", "s1_anger_00"), 2000, 4000) < 0.5 * _band_energy(wav("plain", "s1_anger_00"),
                                                                                      2000, 4000)
    assert wav("plain", "s2_neutral_01").read_bytes() == wav("faint", "s2_neutral_01").read_bytes()
    # The segment truth does not change.
    assert (tmp_path / "plain" / "truth.json").read_text() == (tmp_path / "habit" / "truth.json").read_text()
    for kwargs, name in (({"pattern_level": 0}, "pattern_level=0"), ({"speaker_habit": -1}, "speaker_habit=-1")):
        with pytest.raises(EmorefineError, match=f"Received: {name}; expected"):
            make_corpus(tmp_path / "bad", per_class=2, **kwargs)
