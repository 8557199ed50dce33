"""The IEMOCAP adapter on a small tree in the release's own layout: labels, votes, speakers, sessions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emotion_refinery.data.corpora import CORPORA, scan_corpus
from emotion_refinery.records.build import build_records
from emotion_refinery.records.manifest import RecordsManifest
from tests.conftest import tone, write_wav

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"

#: dialog → [(turn suffix, summary code, [categorical lines]), …]; "-" as suffix prefix: no audio file.
DIALOGS = {
    "Ses01F_impro01": [("F000", "neu", ["Neutral;", "Neutral;", "Frustration;"]),
                       ("M000", "ang", ["Anger;", "Frustration; Anger;", "Anger;"]),
                       ("F001", "fru", ["Frustration;", "Anger;", "Frustration;"]),
                       ("M001", "exc", ["Excited;", "Happiness;", "Excited;"]),
                       ("F002", "xxx", ["Sadness;", "Neutral;", "Anger;"]),
                       ("-M002", "sad", ["Sadness;", "Sadness;", "Sadness;"])],
    "Ses01M_script01_1": [("F000", "hap", ["Happiness;", "Happiness;", "Other:amused;"]),
                          ("M000", "sad", ["Sadness;", "Neutral;", "Sadness;"])],
    "Ses02F_impro03": [("M000", "sad", ["Sadness;", "Sadness;"]),
                       ("F000", "hap", ["Happiness;", "Excited;", "Happiness;"]),
                       ("M001", "ang", ["Anger;", "Anger;", "Anger;"]),
                       ("F001", "neu", ["Neutral;", "Neutral;", "Neutral;"])],
}


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    rng = np.random.default_rng(0)
    for dialog, turns in DIALOGS.items():
        session = root / f"Session{int(dialog[3:5])}"
        lines = [HEADER]
        for i, (suffix, code, votes) in enumerate(turns):
            turn = f"{dialog}_{suffix.lstrip('-')}"
            lines.append(f"[{i * 3.0:.4f} - {i * 3.0 + 1.5:.4f}]\t{turn}\t{code}\t[2.5000, 3.0000, 3.0000]\n")
            lines += [f"C-E{j + 1}:\t{v}\t()\n" for j, v in enumerate(votes)]
            lines += ["A-E1:\tval 3; act 2; dom  2;\t()\n", "\n"]
            if not suffix.startswith("-"):
                write_wav(session / "sentences" / "wav" / dialog / f"{turn}.wav",
                          tone(200 + 40 * i, 0.5 + 0.1 * rng.random()))
        evaluation = session / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        evaluation.parent.mkdir(parents=True, exist_ok=True)
        evaluation.write_text("".join(lines))
        (evaluation.parent / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble: ignored
    return root


def test_labels_votes_speakers_sessions_and_texts(release):
    _, scan = scan_corpus(release, corpus="iemocap")
    assert scan.classes == ["neutral", "happy", "sad", "angry"]
    got = {u.id: u for u in scan.utterances}
    assert sorted(got) == sorted(["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_M001",
                                  "Ses01M_script01_1_F000", "Ses01M_script01_1_M000", "Ses02F_impro03_M000",
                                  "Ses02F_impro03_F000", "Ses02F_impro03_M001", "Ses02F_impro03_F001"])
    u = got["Ses01F_impro01_M000"]
    # The speaker is the turn's own letter (M), not the dialog's (F); "Frustration; Anger;" is two votes,
    # and frustration is no class.
    assert (u.label, u.speaker, u.session, u.text) == ("angry", "Ses01M", "Ses01", None)
    assert u.votes == {"angry": 3.0}
    assert got["Ses01F_impro01_M001"].label == "happy"  # excited merged into happy
    assert got["Ses01F_impro01_M001"].votes == {"happy": 3.0}
    assert got["Ses01F_impro01_F000"].votes == {"neutral": 2.0}
    assert got["Ses01M_script01_1_F000"].text == "script01_1"
    assert got["Ses01M_script01_1_F000"].votes == {"happy": 2.0}  # "Other:amused" is dropped
    assert got["Ses01F_impro01_F000"].path.endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in scan.skipped}
    assert "no audio file" in reasons["Ses01F_impro01_M002.wav"]
    assert len(scan.skipped) == 1
    # Turns without a label among the classes are unlabelled utterances, with their votes over the classes.
    unlabelled = {u.id: (u, why) for u, why in scan.unlabelled}
    assert sorted(unlabelled) == ["Ses01F_impro01_F001", "Ses01F_impro01_F002"]
    fru, why = unlabelled["Ses01F_impro01_F001"]
    assert fru.label is None and fru.votes == {"angry": 1.0} and fru.speaker == "Ses01F"
    assert "IEMOCAP label 'fru' is not one of the classes" in why
    xxx, why = unlabelled["Ses01F_impro01_F002"]
    assert xxx.votes == {"sad": 1.0, "neutral": 1.0, "angry": 1.0} and "'xxx'" in why


def test_variants_improvised_only_and_excited_kept_apart(release):
    impro = CORPORA["iemocap-impro"].scan(release)
    assert all("impro" in u.id for u in impro.utterances) and len(impro.utterances) == 7
    assert sum("scripted turn" in s.reason for s in impro.skipped) == 2
    strict = CORPORA["iemocap-no-excited"].scan(release)
    assert "Ses01F_impro01_M001" not in {u.id for u in strict.utterances}
    assert strict.utterances[0].votes is not None
    assert {u.id: u.votes for u in strict.utterances}["Ses02F_impro03_F000"] == {"happy": 2.0}


def test_a_folder_that_is_not_the_release_says_what_it_expects(tmp_path):
    write_wav(tmp_path / "a.wav", tone(200, 0.5))
    scan = CORPORA["iemocap"].scan(tmp_path)
    assert scan.utterances == [] and "expected the IEMOCAP release folder" in scan.skipped[0].reason


def test_leave_one_session_out_records_keep_votes_and_sessions(release, tmp_path):
    from emotion_refinery.data.feature_config import FeatureConfig

    build_records(release, tmp_path / "rec", corpus="iemocap", features=FeatureConfig(segment_hop=8), n_folds=2,
                  folds_by="session", workers=1)
    manifest = RecordsManifest.load(tmp_path / "rec")
    by_fold = {}
    for u in manifest.utterances:
        by_fold.setdefault(u["fold"], set()).add(u["session"])
        assert u["votes"] and u["speaker"].startswith(u["session"])
    assert by_fold == {0: {"Ses01"}, 1: {"Ses02"}}
    assert manifest.data["folds"]["by"] == "session"


@pytest.mark.slow
def test_unlabelled_turns_are_skipped_by_default_and_kept_as_vote_only_sequences(release, tmp_path):
    from emotion_refinery.data.feature_config import FeatureConfig
    from emotion_refinery.errors import RecordsError
    from emotion_refinery.records.datasets import sequence_dataset

    features = FeatureConfig(segment_hop=8)
    build_records(release, tmp_path / "skip", corpus="iemocap", features=features, n_folds=4, folds_by="speaker",
                  workers=1, sequences="log-mel")
    skipped = RecordsManifest.load(tmp_path / "skip")
    assert skipped.vote_only == [] and "vote_only" not in skipped.data
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in skipped.data["skipped"]}
    assert "IEMOCAP label 'fru' is not one of the classes" in reasons["Ses01F_impro01_F001.wav"]
    with pytest.raises(RecordsError, match="no_majority='keep' without sequences"):
        build_records(release, tmp_path / "bad", corpus="iemocap", features=features, n_folds=4,
                      folds_by="speaker", workers=1, no_majority="keep")
    with pytest.raises(RecordsError, match="Received: no_majority='some'; expected one of skip, keep"):
        build_records(release, tmp_path / "bad", corpus="iemocap", features=features, n_folds=4,
                      folds_by="speaker", workers=1, sequences="log-mel", no_majority="some")

    build_records(release, tmp_path / "keep", corpus="iemocap", features=features, n_folds=4, folds_by="speaker",
                  workers=1, sequences="log-mel", no_majority="keep")
    manifest = RecordsManifest.load(tmp_path / "keep")
    assert manifest.utterances == skipped.utterances  # the labelled part is unchanged
    assert not any("IEMOCAP label" in s["reason"] for s in manifest.data["skipped"])
    n = len(manifest.utterances)
    fold = next(u["fold"] for u in manifest.utterances if u["speaker"] == "Ses01F")
    assert [(u["id"], u["index"], u["fold"], u["votes"]) for u in manifest.vote_only] == [
        ("Ses01F_impro01_F001", n, fold, {"angry": 1.0}),
        ("Ses01F_impro01_F002", n + 1, fold, {"sad": 1.0, "neutral": 1.0, "angry": 1.0})]
    assert [s["fold"] for s in manifest.vote_only_shards] == [fold]
    assert manifest.verify() == {} and manifest.summary()["vote_only"] == 2
    seen = {}
    for x, y in sequence_dataset(manifest, folds=[fold], vote_only=True):
        for utt, n_frames, target in zip(x["utt"].numpy(), x["mask"].numpy().sum(axis=1), y.numpy()):
            seen[int(utt)] = (int(n_frames), target.sum())
    for u in manifest.vote_only:  # whole sequences, no label
        assert seen[u["index"]] == (u["sequence_frames"], 0.0)
    assert n not in {int(u) for x, _ in sequence_dataset(manifest, folds=[fold]) for u in x["utt"].numpy()}
    # A damaged vote-only shard is found by verify.
    shard = tmp_path / "keep" / manifest.vote_only_shards[0]["path"]
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert list(manifest.verify()) == [manifest.vote_only_shards[0]["path"]]


def _cremad_records(tmp_path):
    """CREMA-D's own layout (AudioWAV/ and the tabulated votes beside it) → voted records (3 speaker folds)."""
    from emotion_refinery.data.feature_config import FeatureConfig

    root = tmp_path / "CREMA-D"
    rows = ['"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote"']
    codes = {"ANG": "A", "DIS": "D", "FEA": "F", "HAP": "H", "NEU": "N", "SAD": "S"}
    for a, actor in enumerate(("1001", "1002", "1003")):
        for e, (code, letter) in enumerate(codes.items()):
            name = f"{actor}_DFA_{code}_XX"
            write_wav(root / "AudioWAV" / f"{name}.wav", tone(180 + 60 * e + 7 * a, 0.5))
            counts = {k: 0 for k in "ADFHNS"} | {letter: 6, "N": 2 if letter != "N" else 8}
            rows.append(f'"{len(rows)}",' + ",".join(str(counts[k]) for k in "ADFHNS") + f',"{name}",8,0.75,"{letter}"')
    (root / "processedResults").mkdir()
    (root / "processedResults" / "tabulatedVotes.csv").write_text("\n".join(rows) + "\n")
    build_records(root / "AudioWAV", tmp_path / "rec", corpus="cremad", features=FeatureConfig(segment_hop=16),
                  n_folds=3, folds_by="speaker", workers=1, sequences="spectrogram")
    return RecordsManifest.load(tmp_path / "rec")


def test_a_cremad_tree_with_votes_builds_voted_records(tmp_path):
    manifest = _cremad_records(tmp_path)
    assert all(u["votes"] for u in manifest.utterances) and len(manifest.utterances) == 18
    assert sorted({u["speaker"] for u in manifest.utterances}) == ["1001", "1002", "1003"]
    assert manifest.data["settings"]["sequences"] == "spectrogram"


@pytest.mark.slow  # trains (one MLEE model per fold)
def test_mlee_trains_on_voted_cremad_records(tmp_path):
    from emotion_refinery.methods.mlee import MLEEConfig, run_mlee

    manifest = _cremad_records(tmp_path)
    config = MLEEConfig(variant="mlee", backbone="blstm_attention", epochs=1, batch_size=8)
    report = run_mlee(tmp_path / "rec", tmp_path / "run", config, log=lambda s: None)
    assert report["voted_utterances"] == 18 and set(report["existence"]["per_class"]) == set(manifest.classes)


@pytest.mark.slow  # trains
def test_mlee_trains_on_all_utterances_with_the_unlabelled_ones_as_existence_targets(release, tmp_path):
    from emotion_refinery.data.feature_config import FeatureConfig
    from emotion_refinery.errors import EmorefineError
    from emotion_refinery.methods.mlee import MLEEConfig, _Tables, run_mlee

    build_records(release, tmp_path / "rec", corpus="iemocap", features=FeatureConfig(segment_hop=8), n_folds=4,
                  folds_by="speaker", workers=1, sequences="log-mel", no_majority="keep")
    manifest = RecordsManifest.load(tmp_path / "rec")
    tables = _Tables(manifest)
    n = len(manifest.utterances)
    # neutral, happy, sad, angry: fru's one vote for anger; xxx's votes for sadness, neutral and anger.
    np.testing.assert_array_equal(tables.existence[n:], [[0, 0, 0, 1], [1, 0, 1, 1]])
    assert not tables.hard[n:].any() and not tables.soft[n:].any()
    config = MLEEConfig(variant="mlee", backbone="blstm_attention", epochs=1, batch_size=4, train_on="all")
    report = run_mlee(tmp_path / "rec", tmp_path / "all", config, log=lambda s: None)
    dominant = run_mlee(tmp_path / "rec", tmp_path / "dominant", dataclasses.replace(config, train_on="dominant"),
                        log=lambda s: None)
    assert report["vote_only_utterances"] == 2 and sum(map(sum, report["confusion"])) == n  # tested: labelled
    fold = manifest.vote_only[0]["fold"]
    for a, b in zip(report["folds"], dominant["folds"]):
        trains_on_them = a["fold"] != fold and a["validation_fold"] != fold
        assert a["train_utterances"] - b["train_utterances"] == (2 if trains_on_them else 0)
    assert "also trained on the 2 unlabelled utterances" in (tmp_path / "all" / "report.md").read_text()
    build_records(release, tmp_path / "rec-none", corpus="iemocap", features=FeatureConfig(segment_hop=8),
                  n_folds=4, folds_by="speaker", workers=1, sequences="log-mel")
    with pytest.raises(EmorefineError, match="Received: train_on='all' with records"):
        run_mlee(tmp_path / "rec-none", tmp_path / "x", config, log=lambda s: None)
