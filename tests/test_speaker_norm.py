"""Per-speaker normalisation of the log-Mel bands: statistics from each speaker's own audio, no labels,
applied the same way in training, out-of-fold prediction and `predict`."""

from __future__ import annotations

import copy
import csv
import shutil

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.audio import load
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.features import segments_of
from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.build import build_records
from emotion_refinery.records.datasets import evaluation_dataset
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.speaker_norm import EPSILON, speaker_groups, speaker_tables

FEATURES = FeatureConfig(segment_hop=8)
TILE = FEATURES.segment_frames // FEATURES.segment_hop


def _build(root, csv_path, out):
    build_records(root, out, corpus="csv", manifest=csv_path, features=FEATURES, n_folds=3, workers=1)
    return RecordsManifest.load(out)


@pytest.fixture(scope="module")
def built(synthetic_corpus, tmp_path_factory):
    root, csv_path = synthetic_corpus
    return _build(root, csv_path, tmp_path_factory.mktemp("speaker-norm") / "rec")


def _audio_segments(u, features=FEATURES):
    """The tiling segments of utterance ``u``, computed from its audio file, as the records store them."""
    y = load(u["path"], sr=features.sr)
    return segments_of(y, features).astype(features.dtype).astype(np.float64)[::TILE]


def test_each_speakers_statistics_are_those_of_their_own_frames(built):
    shift, scale = speaker_tables(built)
    speakers = sorted({u["speaker"] for u in built.utterances})
    assert len(speakers) > 1
    for s in speakers:
        mine = [u for u in built.utterances if u["speaker"] == s]
        frames = np.concatenate([_audio_segments(u).reshape(-1, FEATURES.n_mels) for u in mine])
        for u in mine:
            np.testing.assert_allclose(shift[u["index"]], frames.mean(axis=0), atol=2e-3)
            np.testing.assert_allclose(scale[u["index"]], np.sqrt(frames.var(axis=0) + EPSILON), atol=2e-3)
    # Speakers differ (their voices do), so the tables are not one global normalisation.
    rows = [next(u["index"] for u in built.utterances if u["speaker"] == s) for s in speakers]
    assert np.abs(shift[rows[0]] - shift[rows[1]]).max() > 0.5


def test_labels_play_no_part(built):
    relabelled = copy.deepcopy(built.data)
    n = len(built.classes)
    for u in relabelled["utterances"]:
        u["label_index"] = (u["label_index"] + 1) % n
        u["label"] = built.classes[u["label_index"]]
    for a, b in zip(speaker_tables(built), speaker_tables(RecordsManifest(built.root, relabelled))):
        np.testing.assert_array_equal(a, b)


def test_another_speakers_audio_changes_only_that_speakers_rows(synthetic_corpus, built, tmp_path):
    root, csv_path = synthetic_corpus
    copy_root = tmp_path / "corpus"
    shutil.copytree(root, copy_root)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    loud = rows[0]["speaker"]
    for r in rows:
        if r["speaker"] == loud:  # the same speaker, 4 × louder: +12 dB in every band
            path = copy_root / r["path"]
            y, sr = soundfile.read(path, dtype="float32")
            soundfile.write(path, np.clip(4 * y, -1, 1), sr)
    changed = _build(copy_root, copy_root / csv_path.name, tmp_path / "rec")
    before, after = speaker_tables(built), speaker_tables(changed)
    by_id = {u["id"]: u for u in changed.utterances}
    for u in built.utterances:
        v = by_id[u["id"]]
        if u["speaker"] == loud:
            assert after[0][v["index"]].mean() > before[0][u["index"]].mean() + 6
        else:
            np.testing.assert_array_equal(after[0][v["index"]], before[0][u["index"]])
            np.testing.assert_array_equal(after[1][v["index"]], before[1][u["index"]])


def test_an_utterance_without_speaker_is_normalised_by_its_own_frames(built):
    data = copy.deepcopy(built.data)
    alone = data["utterances"][0]
    alone["speaker"] = None
    manifest = RecordsManifest(built.root, data)
    assert speaker_groups(manifest)[0] == f"utterance:{alone['id']}"
    shift, scale = speaker_tables(manifest)
    frames = _audio_segments(alone).reshape(-1, FEATURES.n_mels)
    np.testing.assert_allclose(shift[0], frames.mean(axis=0), atol=2e-3)
    np.testing.assert_allclose(scale[0], np.sqrt(frames.var(axis=0) + EPSILON), atol=2e-3)


def test_the_bands_and_the_speaker_forest_group_utterances_alike(built):
    """One grouping: the log-Mel tables' groups and the speaker-forest's statistics put an utterance without
    speaker in a group of its own, and predict's files of one call in one group."""
    from emotion_refinery.decision.deciders import UTTERANCE_RULES
    from emotion_refinery.decision.utterance import ep_statistics, speaker_normalise
    from emotion_refinery.records.speaker_norm import ONE_SPEAKER

    data = copy.deepcopy(built.data)
    for u in data["utterances"][:2]:
        u["speaker"] = None
    manifest = RecordsManifest(built.root, data)
    speakers = [u.get("speaker") for u in manifest.utterances]
    groups = speaker_groups(manifest)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(speakers), 5))
    # the same partition: normalising by the bands' groups equals normalising by the speakers
    np.testing.assert_array_equal(speaker_normalise(x, speakers), speaker_normalise(x, groups))
    assert np.all(speaker_normalise(x, speakers)[:2] == 0)  # each alone, not pooled with the other
    # the speaker-forest's statistics of the run's utterances group the same way
    q = rng.dirichlet(np.ones(3), size=len(speakers))
    each, n = np.arange(len(speakers)), len(speakers)  # one segment per utterance
    plain = UTTERANCE_RULES["forest"].statistics(q, each, n)
    np.testing.assert_allclose(UTTERANCE_RULES["speaker-forest"].statistics(q, each, n, speakers),
                               speaker_normalise(plain, groups))
    # predict's files of one call: one speaker
    profiles = [rng.dirichlet(np.ones(3), size=4) for _ in range(3)]
    plain = np.stack([ep_statistics(p) for p in profiles])
    np.testing.assert_allclose(speaker_normalise(plain, [ONE_SPEAKER] * 3), speaker_normalise(plain, ["s"] * 3))


def test_normalised_segments_have_zero_mean_and_unit_variance_per_speaker(built):
    tables = speaker_tables(built)
    x = np.concatenate([b.numpy()[..., 0] for b in
                        evaluation_dataset(built, folds=range(built.n_folds), normalize=tables)])
    raw = np.concatenate([b.numpy()[..., 0] for b in evaluation_dataset(built, folds=range(built.n_folds))])
    utterance = built.segment_table()["utterance"]
    position = np.concatenate([np.arange(u["segments"]) for u in built.utterances])
    for s in {u["speaker"] for u in built.utterances}:
        rows = np.isin(utterance, [u["index"] for u in built.utterances if u["speaker"] == s]) & (position % TILE == 0)
        frames = x[rows].reshape(-1, FEATURES.n_mels)
        np.testing.assert_allclose(frames.mean(axis=0), 0, atol=2e-2)
        loud = raw[rows].reshape(-1, FEATURES.n_mels).std(axis=0) > 1  # bands that are not near-constant
        np.testing.assert_allclose(frames.std(axis=0)[loud], 1, atol=2e-2)


@pytest.mark.slow
def test_refine_and_predict_normalise_alike(built, tmp_path):
    """A run with speaker_norm: the model's own normalisation is the identity, its out-of-fold predictions come
    from normalised segments, and `predict` reproduces them from the speaker's audio files."""
    import keras

    from emotion_refinery.outputs.inference import Predictor, ensemble_model
    from emotion_refinery.records.run_dir import RunDir
    from emotion_refinery.refine.rounds import refine
    from emotion_refinery.refine.settings import resolve_config

    run_dir = tmp_path / "run"
    config = resolve_config(backbone="small", rounds=1, epochs=1, batch_size=64, preset="fast", speaker_norm=True)
    refine(built.root, run_dir, config, verbose=0, log=lambda s: None, verify=False)
    run = RunDir(run_dir)
    tables = run.load_speaker_norm()
    np.testing.assert_array_equal(tables[0], speaker_tables(built)[0])
    layer = keras.models.load_model(run.model_path(0, 0)).get_layer("band_normalization")
    np.testing.assert_allclose(np.ravel(layer.mean), 0)
    np.testing.assert_allclose(np.ravel(layer.variance), 1)

    speaker = built.utterances[0]["speaker"]
    files = [u["path"] for u in built.utterances if u["speaker"] == speaker]
    u = built.utterances[0]
    predictor = Predictor(run_dir, t=0)
    assert predictor.speaker_norm
    with pytest.raises(EmorefineError, match="set_speaker"):
        predictor.profile(u["path"])
    predictor.set_speaker(files)
    model = ensemble_model(run_dir, 0)
    expected = model.predict(evaluation_dataset(built, folds=[u["fold"]], normalize=tables), verbose=0)
    start, _ = built.fold_segments(u["fold"])
    lo = u["first_segment"] - start
    np.testing.assert_allclose(predictor.profile(u["path"]), expected[lo:lo + u["segments"]], atol=1e-5)

    result = CliRunner().invoke(main, ["predict", str(run_dir), *files[:2], "--round", "0"])
    assert result.exit_code == 0, result.output
    assert "taken as one speaker's audio" in result.output


@pytest.mark.slow
def test_auto_chooses_per_split_and_predict_uses_what_most_splits_chose(built, tmp_path):
    """speaker_norm and utterance_classifier 'auto': every split decides on its other folds; each fold model reads
    the bands its split chose; report.md shows the evidence; predict ensembles the folds of the majority choice."""
    import json

    import keras

    from emotion_refinery.outputs.inference import Predictor, deployed_choices
    from emotion_refinery.records.run_dir import RunDir
    from emotion_refinery.refine.rounds import refine
    from emotion_refinery.refine.settings import resolve_config

    run_dir = tmp_path / "run"
    config = resolve_config(backbone="small", rounds=2, epochs=1, batch_size=64, preset="fast", speaker_norm="auto",
                            utterance_classifier="auto", targets="oof", rule="gsl")
    lines = []
    report = refine(built.root, run_dir, config, verbose=0, log=lines.append, verify=False)
    run = RunDir(run_dir)
    norm = json.loads(run.choices.read_text())["speaker_norm"]
    assert norm["mode"] == "auto" and [e["fold"] for e in norm["evidence"]] == [0, 1, 2]
    assert norm["splits"] == [e["on"] > e["off"] for e in norm["evidence"]]
    assert any("choosing speaker normalisation per split" in line for line in lines)
    for k, on in enumerate(norm["splits"]):  # a normalising split's model sees standardised bands already
        layer = keras.models.load_model(run.model_path(0, k)).get_layer("band_normalization")
        assert np.allclose(np.ravel(layer.mean), 0) == on
    for r in report["rounds"]:
        splits = r["decision"]["splits"]
        assert [s["fold"] for s in splits] == [0, 1, 2] and all(len(s["scores"]) == 3 for s in splits)
    first, refined = (r["decision"]["splits"] for r in report["rounds"])  # a split keeps its round-0 rule
    assert [s["rule"] for s in refined] == [s["rule"] for s in first]
    selected = report["selection"]
    assert len(selected["rounds_by_split"]) == 3 and set(selected["rounds_by_split"]) <= {0, 1}
    text = run.report_md.read_text()
    assert "## Choices made without the test fold" in text and "split 0 " in text
    assert f"`predict` and `export` use round {selected['round']}" in text

    chosen = deployed_choices(run_dir, selected["round"])
    assert chosen["folds"] == [k for k, v in enumerate(norm["splits"]) if v == chosen["speaker_norm"]]
    # Splits that disagree: the ensemble keeps the fold models of the majority choice only.
    mixed = {**norm, "splits": [True, False, False]}
    run.choices.write_text(json.dumps({"speaker_norm": mixed}))
    predictor = Predictor(run_dir, t=0)
    assert predictor.folds == [1, 2] and not predictor.speaker_norm
    assert predictor.utterance_classifier == report["rounds"][0]["decision"]["rule"]
    assert [layer.name for layer in predictor.model.layers if layer.name.startswith("fold_")] == ["fold_01", "fold_02"]


@pytest.mark.slow
def test_explicit_speaker_norm_on_confounded_speakers_warns_with_the_figure(synthetic_corpus, tmp_path):
    """Speakers who each show one class: --speaker-norm on trains, but warns with the share of such utterances."""
    from emotion_refinery.refine.rounds import refine
    from emotion_refinery.refine.settings import resolve_config

    root, csv_path = synthetic_corpus
    rows = list(csv.DictReader(open(csv_path)))
    for row in rows:  # one speaker per class: every speaker shows a single class
        row["speaker"] = f"spk-{row['label']}"
    confounded = tmp_path / "confounded.csv"
    with open(confounded, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    build_records(root, tmp_path / "rec", corpus="csv", manifest=confounded, features=FEATURES, n_folds=3,
                  workers=1)
    lines = []
    refine(tmp_path / "rec", tmp_path / "run", resolve_config(backbone="small", rounds=1, epochs=1, batch_size=64,
                                                              preset="fast", speaker_norm="on"),
           verbose=0, log=lines.append, verify=False)
    assert any(line.startswith("warning: --speaker-norm on, but 100 % of the utterances come from speakers who show "
                               "a single class") for line in lines), lines
