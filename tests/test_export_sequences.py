"""`lcw` and `mlee` runs: predict on the run, export, and every format loaded in a fresh process without emorefine
(in their own file, so the test processes share the training with test_export.py's)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.feature_config import FeatureConfig
from tests.test_export import fresh_process

pytestmark = pytest.mark.slow


def sequence_run(tmp_path_factory, method: str):
    from emotion_refinery.data.synthetic import make_corpus
    from emotion_refinery.records.build import build_records

    base = tmp_path_factory.mktemp(method)
    csv = make_corpus(base / "corpus", per_class=3, seed=5, annotators=5, annotator_noise=0.1)
    kind = "log-mel" if method == "lcw" else "spectrogram"
    build_records(base / "corpus", base / "rec", corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=16),
                  n_folds=3, workers=1, sequences=kind)
    if method == "lcw":
        from emotion_refinery.methods.lcw import LCWConfig, run_lcw

        run_lcw(base / "rec", base / "run", LCWConfig(update="none", epochs=1, batch_size=8, seed=1),
                log=lambda s: None)
    else:
        from emotion_refinery.methods.mlee import MLEEConfig, run_mlee

        run_mlee(base / "rec", base / "run", MLEEConfig(variant="mlee", backbone="mlee_crnn", epochs=1,
                                                        batch_size=8, seed=1), log=lambda s: None)
    return base


@pytest.mark.parametrize("method", ["lcw", "mlee"])
def test_lcw_and_mlee_runs_predict_and_export(method, tmp_path_factory):
    from emotion_refinery.records.run_dir import load_run

    base = sequence_run(tmp_path_factory, method)
    wavs = sorted(str(p) for p in (base / "corpus" / "wav").glob("*.wav"))[:3]
    predicted = CliRunner().invoke(main, ["predict", str(base / "run"), *wavs])
    assert predicted.exit_code == 0, predicted.output
    expected = {r["path"]: r for r in json.loads(predicted.stdout)}
    # predict's probabilities are the fold models' mean on the stored sequence of the utterance.
    run, _, manifest = load_run(base / "run")
    import emotion_refinery.models.layers  # noqa: F401
    from emotion_refinery.records.datasets import sequence_dataset

    x, _ = next(iter(sequence_dataset(manifest, folds=list(range(3)), batch_size=64)))
    utt = manifest.utterances[int(x["utt"][0])]
    if utt["path"] in expected or str(Path(utt["path"])) in expected:
        models = [keras.models.load_model(run.model_path(0, k), compile=False) for k in range(3)]
        mean = np.mean([np.asarray(m({"frames": x["frames"][:1], "mask": x["mask"][:1]})) for m in models], axis=0)
        got = [expected[utt["path"]]["probabilities"][c] for c in manifest.classes]
        np.testing.assert_allclose(got, mean[0], atol=0.02)
    out = tmp_path_factory.mktemp(f"{method}-export")
    # lcw: every format (TFLite refused); mlee: keras and onnx (the SavedModel route is lcw's and refine's).
    formats = ["--format", "all"] if method == "lcw" else ["--format", "keras", "--format", "onnx"]
    result = CliRunner().invoke(main, ["export", str(base / "run"), *formats, "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "emorefine-round-00.json").read_text())
    assert meta["method"] == method and {"keras", "onnx"} <= set(meta["files"])
    if method == "lcw":
        # TFLite cannot hold the BLSTM over a time axis of any length: said, not half-written.
        assert "savedmodel" in meta["files"] and not (out / "emorefine-round-00.tflite").exists()
        assert "BLSTM" in meta["not_exported"]["tflite"] and "not written: tflite" in result.stderr
        alone = CliRunner().invoke(main, ["export", str(base / "run"), "--format", "tflite", "-o", str(out / "t")])
        assert alone.exit_code == 2 and "BLSTM" in alone.output and "emorefine-round-00.json" in alone.output
        partial = json.loads((out / "t" / "emorefine-round-00.json").read_text())
        assert partial["files"] == {"keras": "emorefine-round-00.keras"} and "tflite" in partial["not_exported"]
    got = fresh_process(out, wavs)
    for wav in wavs:
        for fmt, answer in got[wav].items():
            assert answer["label"] == expected[wav]["label"], (wav, fmt)
            np.testing.assert_allclose(answer["probabilities"], [expected[wav]["probabilities"][c]
                                                                 for c in meta["classes"]], atol=1e-3)
    alone = CliRunner().invoke(main, ["predict", str(out), *wavs])
    assert [r["label"] for r in json.loads(alone.stdout)] == [expected[w]["label"] for w in wavs]
