"""`emorefine baseline`: eGeMAPSv02 functionals + SVM under the records' own folds, on tiny synthetic audio."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.decision import baseline as B
from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.build import build_records
from emotion_refinery.records.manifest import RecordsManifest


@pytest.fixture
def opensmile():
    return pytest.importorskip("opensmile", reason='the baseline needs opensmile (pip install "emorefine[baseline]")')


@pytest.fixture
def records(emodb_dir, tmp_path):
    """Records of the 12-utterance Emo-DB-like corpus (3 speakers x 4 classes), 3 stratified folds."""
    out = tmp_path / "rec"
    build_records(emodb_dir, out, corpus="emodb", features=FeatureConfig(segment_hop=4), n_folds=3, workers=1)
    return out


def invoke(*args):
    return CliRunner().invoke(main, ["baseline", *map(str, args)])


def test_features_metrics_and_json(opensmile, records):
    result = B.run_baseline(records, workers=1)
    m = RecordsManifest.load(records)
    utts = m.utterances
    with np.load(records / B.FEATURES_NAME) as cached:
        x = cached["features"]
        assert x.shape == (len(utts), 88) and x.dtype == np.float32
        assert cached["ids"].tolist() == [u["id"] for u in utts]
    # The manifest's own decoding at its rate, then openSMILE: the same numbers as the cache. (In a fresh
    # interpreter: openSMILE aborts a process that has loaded TensorFlow, as this test process may have.)
    code = ("import json, sys, opensmile; from emotion_refinery.data.audio import load; "
            "s = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, "
            "feature_level=opensmile.FeatureLevel.Functionals); "
            "print(json.dumps(s.process_signal(load(sys.argv[1], sr=int(sys.argv[2])), int(sys.argv[2]))"
            ".to_numpy()[0].tolist()))")
    out = subprocess.run([sys.executable, "-c", code, utts[5]["path"], str(m.features.sr)], check=True,
                         capture_output=True, text=True).stdout
    np.testing.assert_allclose(x[5], json.loads(out.splitlines()[-1]), rtol=1e-6)

    stored = json.loads((records / B.RESULT_NAME).read_text())
    assert set(stored["runs"]) == {"plain"}
    entry = stored["runs"]["plain"]
    assert result["path"] == str(records / B.RESULT_NAME) and result["cached"] is False
    assert {k: result[k] for k in entry} == entry
    assert entry["protocol"] == m.data["folds"] and entry["classes"] == m.classes and entry["n_utterances"] == 12
    assert entry["speaker_norm"] is False and "eGeMAPSv02" in entry["feature_set"] and "SVC" in entry["classifier"]
    confusion = np.array(entry["confusion"])
    labels = [u["label_index"] for u in utts]
    assert confusion.shape == (7, 7)  # every Emo-DB class; 4 of them present
    assert confusion.sum(axis=1).tolist() == np.bincount(labels, minlength=7).tolist()
    assert [p["id"] for p in entry["predictions"]] == [u["id"] for u in utts]
    hits = [p["predicted"] == p["label"] for p in entry["predictions"]]
    assert entry["wa"] == pytest.approx(np.mean(hits)) == pytest.approx(np.trace(confusion) / 12)
    present = sorted(set(labels))
    recall = np.diag(confusion)[present] / confusion.sum(axis=1)[present]
    assert entry["ua"] == pytest.approx(recall.mean())
    from sklearn.metrics import f1_score

    truth, guess = [p["label"] for p in entry["predictions"]], [p["predicted"] for p in entry["predictions"]]
    assert entry["macro_f1"] == pytest.approx(f1_score(truth, guess, labels=sorted(set(truth)), average="macro",
                                                       zero_division=0))
    assert entry["seconds"] > 0
    # Two worker processes give the same features as this process.
    np.testing.assert_array_equal(B.extract_features([u["path"] for u in utts[:3]], sr=m.features.sr, workers=2),
                                  x[:3])
    assert not list(records.glob("*.tmp-*"))


def test_each_fold_is_predicted_by_a_model_that_never_saw_it(opensmile, records, monkeypatch):
    from sklearn.pipeline import Pipeline

    m = RecordsManifest.load(records)
    folds = np.array([u["fold"] for u in m.utterances])
    seen = []  # (training rows, predicted rows), rows identified by a planted first feature
    fit, predict = Pipeline.fit, Pipeline.predict

    def spy_fit(self, x, y=None, **kw):
        self.rows_ = set(x[:, 0].astype(int))
        return fit(self, x, y, **kw)

    def spy_predict(self, x, **kw):
        seen.append((self.rows_, set(x[:, 0].astype(int))))
        return predict(self, x, **kw)

    monkeypatch.setattr(Pipeline, "fit", spy_fit)
    monkeypatch.setattr(Pipeline, "predict", spy_predict)
    x = np.random.default_rng(0).normal(size=(len(folds), 5))
    x[:, 0] = np.arange(len(folds))
    labels = np.array([u["label_index"] for u in m.utterances])
    out = B.cross_validate(x, labels, folds, n_classes=len(m.classes))
    assert len(seen) == len(set(folds.tolist())) == 3
    predicted = set()
    for train, test in seen:
        assert not train & test
        (fold,) = set(folds[list(test)])
        assert test == set(np.flatnonzero(folds == fold)) and train == set(np.flatnonzero(folds != fold))
        predicted |= test
    assert predicted == set(range(len(folds)))
    monkeypatch.undo()

    # The same predictions as a hand-written loop over the folds.
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    expected = np.empty(len(folds), int)
    for k in range(3):
        model = Pipeline([("s", StandardScaler()), ("svc", SVC(kernel="rbf"))]).fit(x[folds != k], labels[folds != k])
        expected[folds == k] = model.predict(x[folds == k])
    assert out["predictions"] == expected.tolist()

    with pytest.raises(EmorefineError, match="Received: .*expected"):
        # one fold id: nothing to fit on
        B.cross_validate(x, labels, np.zeros(len(folds), int), n_classes=len(m.classes))


def test_cache_is_reused_and_keyed_by_manifest_and_version(opensmile, records, monkeypatch):
    calls = []
    real = B.extract_features

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(B, "extract_features", counting)
    first = B.run_baseline(records, workers=1)
    assert len(calls) == 1

    def no_opensmile(*args, **kw):
        raise AssertionError("openSMILE called although the features are cached")

    monkeypatch.setattr(B, "egemaps_of_file", no_opensmile)
    again = B.run_baseline(records, workers=1)
    assert len(calls) == 1 and again["cached"] is True
    assert again["confusion"] == first["confusion"] and again["predictions"] == first["predictions"]

    monkeypatch.undo()
    monkeypatch.setattr(B, "extract_features", counting)
    # A changed manifest (here only its formatting) recomputes the features.
    path = records / "manifest.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))
    assert B.run_baseline(records, workers=1)["cached"] is False and len(calls) == 2
    # Another openSMILE version recomputes them too.
    monkeypatch.setattr(opensmile, "__version__", "0.0.0-test")
    assert B.run_baseline(records, workers=1)["cached"] is False and len(calls) == 3
    assert B.run_baseline(records, workers=1)["cached"] is True and len(calls) == 3


def test_speaker_normalisation_uses_each_speakers_own_features():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(10, 6))
    speakers = ["a", "a", "a", "b", "b", "b", "b", None, None, "c"]
    z = B.speaker_normalise(x, speakers)
    a = np.arange(3)
    np.testing.assert_allclose(z[a].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z[a].std(axis=0), 1)
    np.testing.assert_allclose(z[a], (x[a] - x[a].mean(axis=0)) / x[a].std(axis=0))
    assert np.all(z[7:9] == 0)  # without a speaker: each utterance a group of its own, as the log-Mel bands group
    assert np.all(z[9] == 0)  # a single utterance: constant within its speaker
    changed = x.copy()
    changed[3:] = rng.normal(-50, 9, size=(7, 6))  # every other speaker's features
    np.testing.assert_array_equal(B.speaker_normalise(changed, speakers)[a], z[a])
    with pytest.raises(EmorefineError, match="Received: features of shape .*; expected"):
        B.speaker_normalise(x, speakers[:-1])


def test_speaker_norm_run_is_kept_beside_the_plain_one(opensmile, records, monkeypatch):
    plain = B.run_baseline(records, workers=1)
    captured = {}
    real = B.cross_validate

    def spy(x, *args, **kw):
        captured["x"] = x
        return real(x, *args, **kw)

    monkeypatch.setattr(B, "cross_validate", spy)
    norm = B.run_baseline(records, speaker_norm=True, workers=1)
    m = RecordsManifest.load(records)
    with np.load(records / B.FEATURES_NAME) as cached:
        expected = B.speaker_normalise(cached["features"], [u["speaker"] for u in m.utterances])
    np.testing.assert_array_equal(captured["x"], expected)
    runs = json.loads((records / B.RESULT_NAME).read_text())["runs"]
    assert set(runs) == {"plain", "speaker_norm"}
    assert runs["speaker_norm"]["speaker_norm"] is True and runs["plain"]["predictions"] == plain["predictions"]
    assert runs["speaker_norm"]["wa"] == norm["wa"]
    loaded = B.load_baseline(records)
    assert set(loaded) == {"plain", "speaker_norm"} and "predictions" not in loaded["plain"]
    # Rebuilt records (another manifest): the old runs no longer describe them.
    path = records / "manifest.json"
    path.write_text(path.read_text() + "\n")
    assert B.load_baseline(records) is None


def test_cli(opensmile, records, tmp_path):
    result = invoke(records, "--quiet")
    assert result.exit_code == 0, result.output
    assert "WA " in result.output and "UA " in result.output and "macro-F1" in result.output
    assert f"Wrote {records / B.RESULT_NAME}" in result.output
    assert "Speakers: 0 % of utterances come from the 0 of 3 speakers who show a single class" in result.output
    result = invoke(records, "--speaker-norm", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["speaker_norm"] is True and out["cached"] is True and out["n_utterances"] == 12
    assert out["confound"] == {"speakers": 3, "single_class_speakers": 0, "single_class_share": 0.0}

    result = invoke(tmp_path / "missing")
    assert result.exit_code == 2
    (tmp_path / "empty").mkdir()
    result = invoke(tmp_path / "empty")
    assert result.exit_code == 2 and "manifest.json" in result.output

    # A source file gone after the build: the work fails (1), naming the file.
    (records / B.FEATURES_NAME).unlink()
    source = RecordsManifest.load(records).utterances[3]["path"]
    os.remove(source)
    result = invoke(records, "--quiet")
    assert result.exit_code == 1 and source in result.output and "Received: path=" in result.output


def test_speaker_norm_on_confounded_speakers_warns_with_the_figure(opensmile, emodb_dir, tmp_path):
    # Each speaker shows one emotion (as 26 of URDU's 29 do): normalising a speaker erases their emotion.
    rows = ["path,label,speaker"] + [f"{p},{p.stem[5]},spk{p.stem[5]}" for p in sorted(emodb_dir.glob("*.wav"))]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    build_records(emodb_dir, tmp_path / "rec", corpus="csv", manifest=tmp_path / "m.csv",
                  features=FeatureConfig(segment_hop=4), n_folds=3, workers=1)
    result = invoke(tmp_path / "rec", "--speaker-norm", "--quiet")
    assert result.exit_code == 0, result.output
    assert ("warning: 100 % of utterances come from the 4 of 4 speakers who show a single class (speakers and "
            "emotions confounded") in result.stderr


def test_missing_opensmile_names_the_extra(records, monkeypatch):
    monkeypatch.setitem(sys.modules, "opensmile", None)  # `import opensmile` now raises ImportError
    result = invoke(records, "--quiet")
    assert result.exit_code == 2
    assert 'pip install "emorefine[baseline]"' in result.output
    assert not (records / B.RESULT_NAME).exists()


def _fake_baseline(records, **values):
    import hashlib

    digest = hashlib.sha256((records / "manifest.json").read_bytes()).hexdigest()
    entry = {"wa": 0.5, "ua": 0.25, "macro_f1": 0.125, "manifest_sha256": digest, **values}
    (records / B.RESULT_NAME).write_text(json.dumps({"runs": {"plain": entry, "speaker_norm": {
        **entry, "wa": 0.75, "manifest_sha256": "0" * 64}}}))  # the second: made on other records


@pytest.mark.slow
def test_report_shows_the_baseline_row(finished_run):
    from emotion_refinery.records.run_dir import load_run

    _, _, manifest = load_run(finished_run)
    records = manifest.root
    assert "baseline" in json.loads((finished_run / "report.json").read_text())  # refine records it (None here)
    _fake_baseline(records)
    try:
        result = CliRunner().invoke(main, ["report", str(finished_run)])
        assert result.exit_code == 0, result.output
        md = (finished_run / "report.md").read_text()
        assert "| baseline: eGeMAPSv02 + SVM (same folds) | 50.00 | 25.00 | 12.50 |" in md
        assert "speaker-normalised" not in md  # its manifest differs: not the same folds
        r0 = json.loads((finished_run / "report.json").read_text())["rounds"][0]
        assert f"Round 0 vs eGeMAPSv02 + SVM (same folds): WA {100 * (r0['wa'] - 0.5):+.2f}, " in md
    finally:
        (records / B.RESULT_NAME).unlink()
        CliRunner().invoke(main, ["report", str(finished_run)])
    assert "baseline" not in (finished_run / "report.md").read_text()


def test_accuracy_curve_draws_the_baseline(tmp_path):
    import matplotlib.image

    from emotion_refinery.outputs import plots

    args = ([0, 1, 2], [0.6, 0.7, 0.65], [0.55, 0.68, 0.6])
    plain = matplotlib.image.imread(plots.accuracy_curve(*args, tmp_path / "a.png", n_classes=4))
    marked = matplotlib.image.imread(plots.accuracy_curve(*args, tmp_path / "b.png", n_classes=4,
                                                          baseline=(0.761, 0.743)))
    assert plain.shape == marked.shape and np.abs(plain - marked).sum() > 0


def test_planted_noise_fits_on_the_flipped_labels_and_scores_on_the_true_ones():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = np.eye(3)[y] * 5 + rng.normal(0, 0.3, (60, 3))  # separable: clean labels give 100 %
    folds = np.tile(np.arange(4), 15)
    assert B.cross_validate(x, y, folds, n_classes=3)["wa"] == 1.0
    shifted = B.cross_validate(x, y, folds, n_classes=3, train_labels=(y + 1) % 3)  # every label flipped
    np.testing.assert_array_equal(shifted["predictions"], (y + 1) % 3)
    assert shifted["wa"] == 0.0 and np.trace(np.array(shifted["confusion"])) == 0
    with pytest.raises(EmorefineError, match=r"train labels \(59,\)"):
        B.cross_validate(x, y, folds, n_classes=3, train_labels=y[:59])
    assert B.variant_name(False) == "plain" and B.variant_name(True, 0.2, 3) == "speaker_norm-noise0.2-seed3"


def test_a_noisy_run_is_kept_beside_the_clean_one_and_uses_the_runs_flips(opensmile, records, monkeypatch):
    from emotion_refinery.data.label_noise import training_labels

    clean = B.run_baseline(records, workers=1)
    captured = {}
    real = B.cross_validate

    def spy(x, labels, folds, **kw):
        captured.update(labels=labels, train=kw["train_labels"])
        return real(x, labels, folds, **kw)

    monkeypatch.setattr(B, "cross_validate", spy)
    noisy = B.run_baseline(records, label_noise=0.5, seed=1, workers=1)
    m = RecordsManifest.load(records)
    np.testing.assert_array_equal(captured["labels"], [u["label_index"] for u in m.utterances])
    np.testing.assert_array_equal(captured["train"], training_labels(m, 0.5, 1))
    assert (captured["train"] != captured["labels"]).sum() == 6  # half of the 12 utterances
    runs = json.loads((records / B.RESULT_NAME).read_text())["runs"]
    assert set(runs) == {"plain", "plain-noise0.5-seed1"}
    assert runs["plain"]["label_noise"] is None and runs["plain"]["wa"] == clean["wa"]
    assert runs["plain-noise0.5-seed1"]["label_noise"] == {"share": 0.5, "seed": 1} and noisy["label_noise"]
    result = invoke(records, "--label-noise", "1.5")
    assert result.exit_code == 2 and "1.5" in result.output


def test_a_run_is_compared_with_the_baseline_of_its_own_planted_noise():
    from emotion_refinery.outputs.report import _baselines

    entry = {"wa": 0.5, "manifest_sha256": "a" * 64}
    runs = {"plain": {**entry, "label_noise": None}, "speaker_norm": entry,  # written before label_noise existed
            "plain-noise0.2-seed0": {**entry, "label_noise": {"share": 0.2, "seed": 0}},
            "plain-noise0.2-seed1": {**entry, "label_noise": {"share": 0.2, "seed": 1}}}
    report = {"baseline": runs, "records": {"manifest_sha256": "a" * 64}}
    clean = _baselines({**report, "config": {"label_noise": 0.0, "seed": 0}})
    assert [name for name, _ in clean] == ["baseline: eGeMAPSv02 + SVM (same folds)",
                                          "baseline: eGeMAPSv02 + SVM, speaker-normalised (same folds)"]
    noisy = _baselines({**report, "config": {"label_noise": 0.2, "seed": 1}})
    assert [(name, b["label_noise"]["seed"]) for name, b in noisy] == [
        ("baseline: eGeMAPSv02 + SVM, the same planted noise (same folds)", 1)]
