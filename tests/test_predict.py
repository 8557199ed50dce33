"""predict and export on a tiny finished run."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data import features as F
from emotion_refinery.data.audio import load
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.outputs.export import export_round
from emotion_refinery.outputs.inference import Predictor, default_round, stream_frames
from tests.conftest import SR, tone, write_wav

HOP = 8


@pytest.fixture(scope="module")
def run_dir(finished_run):
    return finished_run


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor(run_dir, t=1)


def test_streamed_frames_equal_whole_file_frames(tmp_path):
    y = (tone(440, 2.0) + 0.05 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    path = write_wav(tmp_path / "a.wav", y)
    config = FeatureConfig(segment_hop=HOP, dtype="float32")
    streamed = np.concatenate(list(stream_frames(path, config, block_seconds=0.37)))
    np.testing.assert_allclose(streamed, F.log_mel(load(path)), atol=1e-4)
    resampled = write_wav(tmp_path / "b.wav", np.stack([tone(440, 2.0, sr=44100)] * 2, axis=1), sr=44100)
    streamed = np.concatenate(list(stream_frames(resampled, config, block_seconds=0.5)))
    whole = F.log_mel(load(resampled))
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    # soxr's stream and one-shot resampling differ by rounding only; compare where the tone has energy.
    band = np.argmax(whole.mean(axis=0))
    np.testing.assert_allclose(streamed[:n, band], whole[:n, band], atol=0.05)


@pytest.mark.parametrize("sr, channels, subtype", [(16000, 1, "PCM_16"), (44100, 2, "PCM_16"), (8000, 1, "PCM_U8"),
                                                   (48000, 2, "FLOAT")])
def test_profile_shape_rows_and_times(predictor, tmp_path, sr, channels, subtype):
    seconds = 1.3
    y = tone(300, seconds, sr=sr)
    path = write_wav(tmp_path / "x.wav", np.stack([y] * channels, axis=1) if channels == 2 else y, sr=sr,
                     subtype=subtype)
    result = predictor.predict(path)
    assert result.error is None
    config = predictor.features
    n = config.n_segments(config.n_frames(len(load(path))))
    assert result.profile.shape == (n, len(predictor.classes))
    np.testing.assert_allclose(result.profile.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.start_seconds, np.arange(n) * HOP * 0.01)
    assert result.probabilities.shape == (len(predictor.classes),)
    assert result.label == predictor.classes[int(np.argmax(result.probabilities))]


def test_profile_equals_ensemble_on_stored_features(predictor, run_dir):
    """The streamed profile of a corpus file equals the fold models' mean on its stored segments."""
    from emotion_refinery.records.run_dir import load_run

    run, _, manifest = load_run(run_dir)
    u = manifest.utterances[0]
    stored = manifest.read_utterance(u["id"])[..., None]
    models = [keras.models.load_model(run.model_path(1, k)) for k in range(manifest.n_folds)]
    expected = np.mean([m.predict(stored, verbose=0) for m in models], axis=0)
    np.testing.assert_allclose(predictor.profile(u["path"]), expected, atol=1e-5)


def test_cli_reports_bad_files_and_predicts_the_rest(run_dir, tmp_path):
    good = write_wav(tmp_path / "good.wav", tone(500, 1.0))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    short = write_wav(tmp_path / "short.wav", tone(500, 0.2))
    runner = CliRunner()
    result = runner.invoke(main, ["predict", str(run_dir), good, str(tmp_path / "bad.wav"), short, "-o",
                                  str(tmp_path / "out.json")])
    assert result.exit_code == 0, result.output
    out = {r["path"]: r for r in json.loads((tmp_path / "out.json").read_text())}
    assert out[good]["ok"] and len(out[good]["profile"]["probabilities"]) == out[good]["segments"]
    assert out[good]["decided_by"] == "forest"  # the run's utterance classifier
    assert "cannot decode" in out[str(tmp_path / "bad.wav")]["error"]
    assert "too short" in out[short]["error"]
    csv_result = runner.invoke(main, ["predict", str(run_dir), good, "--format", "csv", "--round", "0"])
    rows = [line.split(",") for line in csv_result.stdout.strip().splitlines()]
    assert rows[0][:3] == ["path", "segment", "start_seconds"] and rows[-1][1] == "utterance"
    assert len(rows) == 2 + out[good]["segments"]
    none = runner.invoke(main, ["predict", str(run_dir), str(tmp_path / "bad.wav")])
    assert none.exit_code == 1 and "no file could be predicted" in none.output


def test_unknown_round_is_refused(run_dir, tmp_path):
    audio = write_wav(tmp_path / "x.wav", tone(500, 1.0))
    result = CliRunner().invoke(main, ["predict", str(run_dir), str(audio), "--round", "7"])
    assert result.exit_code == 2 and "round=7" in result.output


def test_exported_keras_model_gives_predicts_profile_and_decision(run_dir, predictor, tmp_path):
    path, sidecar = export_round(run_dir, t=1, fmt="keras", out_dir=tmp_path)
    meta = json.loads(sidecar.read_text())
    assert meta["classes"] == predictor.classes and meta["features"]["segment_hop"] == HOP
    assert meta["decision"]["in_graph"] == "forest"
    assert meta["decision"]["agreement"]["same_label"] == meta["decision"]["agreement"]["utterances"] > 0
    wav = write_wav(tmp_path / "x.wav", tone(350, 1.2) + 0.2 * tone(900, 1.2))
    expected = predictor.predict(wav)
    model = keras.models.load_model(path, safe_mode=True)
    got = model({"waveform": load(wav)[None]})
    np.testing.assert_allclose(np.asarray(got["profile"]), expected.profile, atol=2e-3)
    np.testing.assert_allclose(np.asarray(got["start_seconds"]), expected.start_seconds, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got["probabilities"])[0], expected.probabilities, atol=0.02)


@pytest.mark.slow
def test_default_round_is_the_one_most_splits_chose_on_their_other_folds_not_by_test_ua(run_dir, tmp_path):
    import shutil

    from emotion_refinery.outputs.report import best_by_test_ua

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("logs", "plots", "export"))
    report = json.loads((run / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    assert all(len(r["decision"]["splits"]) == 3 for r in report["rounds"])
    # As if round 0 had done far better on the test folds, and round 1 on every split's other folds.
    report["rounds"][0].update(wa=0.99, ua=0.99, validation_wa=0.9, validation_ua=0.9)
    report["rounds"][1].update(wa=0.10, ua=0.10, validation_wa=0.2, validation_ua=0.2)
    for t, score in ((0, 0.2), (1, 0.8)):
        for split in report["rounds"][t]["decision"]["splits"]:
            split["scores"] = {rule: score for rule in split["scores"]}
    (run / "report.json").write_text(json.dumps(report))
    assert best_by_test_ua(report["rounds"])["round"] == 0
    assert default_round(run) == 1
    good = write_wav(tmp_path / "good.wav", tone(500, 1.0))
    result = CliRunner().invoke(main, ["predict", str(run), good])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["round"] == 1
    # An oof run's refined round was chosen on validation folds its teachers saw: predict says so.
    assert "note: round 1 was chosen on figures its teachers leaked into" in result.stderr
    assert "--round 0" in result.stderr
    chosen = CliRunner().invoke(main, ["predict", str(run), good, "--round", "0"])
    assert json.loads(chosen.stdout)[0]["round"] == 0 and "note: round" not in chosen.stderr
    exported = CliRunner().invoke(main, ["export", str(run), "-o", str(tmp_path / "cli-export")])
    assert exported.exit_code == 0 and "emorefine-round-01" in exported.stdout and "note: round 1" in exported.stderr
    model, sidecar = export_round(run, out_dir=tmp_path / "export")
    assert model.name == "emorefine-round-01.keras" and json.loads(sidecar.read_text())["round"] == 1


def test_nan_audio_is_reported(predictor, tmp_path):
    y = tone(300, 1.0)
    y[10] = np.nan
    soundfile.write(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    assert "NaN" in predictor.predict(tmp_path / "nan.wav").error


def test_predict_opens_the_run_once(run_dir, tmp_path, monkeypatch):
    """One command, one opening: the manifest and report.json are read once, however many functions use them."""
    from emotion_refinery.records import run_dir as run_dir_module

    counts = {"manifest": 0, "report": 0}
    load_manifest, read_report = run_dir_module.RecordsManifest.load, run_dir_module.RunDir.report

    def counted_manifest(*args, **kwargs):
        counts["manifest"] += 1
        return load_manifest(*args, **kwargs)

    def counted_report(self):
        counts["report"] += 1
        return read_report(self)

    monkeypatch.setattr(run_dir_module.RecordsManifest, "load", staticmethod(counted_manifest))
    monkeypatch.setattr(run_dir_module.RunDir, "report", counted_report)
    audio = write_wav(tmp_path / "x.wav", tone(500, 1.0))
    result = CliRunner().invoke(main, ["predict", str(run_dir), str(audio)])
    assert result.exit_code == 0, result.output
    assert counts == {"manifest": 1, "report": 1}
