"""The exported waveform-to-decision model: its graph pieces against the NumPy / librosa / scikit-learn code they
stand for, and every format loaded in a fresh process without emorefine, against `predict`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.feature_config import SPECTROGRAM, FeatureConfig
from emotion_refinery.data.features import frames_of, segment
from emotion_refinery.decision.utterance import ep_statistics, fit_forest, forest_probabilities
from emotion_refinery.outputs import graphs
from emotion_refinery.records.speaker_norm import tiled_sums
from tests.conftest import SR, tone, write_wav

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "use_exported_model.py"


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A gliding harmonic tone with noise, digital silence at the start and a loud burst: the front end's range."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 150 + 60 * np.sin(2 * np.pi * 1.5 * t)
    y = sum(0.2 / h * np.sin(2 * np.pi * h * np.cumsum(f0) / SR) for h in range(1, 6))
    y = y + 0.01 * rng.standard_normal(len(t))
    y[: SR // 5] = 0.0
    y[SR // 2: SR // 2 + 800] *= 3.0
    return y.astype(np.float32)


def graph_of(build, *shapes):
    """A Keras model of ``build(*inputs)`` with inputs of the given shapes (batch included)."""
    inputs = [keras.Input(s[1:], batch_size=s[0]) for s in shapes]
    return keras.Model(inputs, build(*inputs))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_log_mel_in_the_graph_equals_the_records_front_end(dtype):
    config = FeatureConfig(dtype=dtype)
    y = speech_like(1.7)
    expected = frames_of(y, config).astype(dtype).astype(np.float32)
    got = np.asarray(graph_of(lambda w: graphs.log_mel_frames(w, config), (1, None))(y[None]))[0]
    assert got.shape == expected.shape == (config.n_frames(len(y)), config.n_mels)
    # The stated tolerance (README, export): 0.02 dB at most; in float16 records one float16 step on under 1 %
    # of the values (the rest equal), in float32 under 0.001 dB on 99 % of them.
    difference = np.abs(got - expected)
    assert difference.max() <= 0.02, difference.max()
    if dtype == "float16":
        assert (difference > 0).mean() < 0.01
    else:
        assert np.percentile(difference, 99) < 1e-3
    assert expected[0].min() == pytest.approx(-100.0)  # the silent start is at amin in both


def test_spectrogram_in_the_graph_equals_the_sequence_records():
    import librosa

    y = speech_like(1.0, seed=1)
    spec = SPECTROGRAM
    frames = librosa.util.frame(y, frame_length=spec["win_length"], hop_length=spec["hop_length"], axis=0)
    window = librosa.filters.get_window("hamming", spec["win_length"], fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, n=spec["n_fft"], axis=1)[:, :spec["bins"]]) ** 2
    expected = np.log(power + 1e-10).astype(np.float16).astype(np.float32)
    got = np.asarray(graph_of(lambda w: graphs.spectrogram_frames(w, spec), (1, None))(y[None]))[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 0.02


@pytest.mark.parametrize("hop", [1, 3, 8])
def test_segments_are_the_frames_exactly(hop):
    config = FeatureConfig(segment_hop=hop)
    frames = np.random.default_rng(hop).normal(size=(75, config.n_mels)).astype(np.float32)
    got = np.asarray(graph_of(lambda x: graphs.segments(x, config), (1, None, config.n_mels))(frames[None]))[..., 0]
    np.testing.assert_array_equal(got, segment(frames, segment_frames=config.segment_frames, segment_hop=hop))
    sums = np.asarray(graph_of(lambda x: graphs.tiled_frame_sums(x, config), (1, None, config.n_mels))(frames[None]))
    count, total, total_sq = tiled_sums(frames, config)
    assert np.all(sums[0] == count)
    np.testing.assert_allclose(sums[1], total, rtol=1e-5)
    np.testing.assert_allclose(sums[2], total_sq, rtol=1e-5)


@pytest.mark.parametrize("n_segments", [1, 2, 7, 120])
def test_ep_statistics_in_the_graph_equal_numpy(n_segments):
    k = 4
    ep = np.random.default_rng(n_segments).dirichlet(np.ones(k), size=n_segments).astype(np.float32)
    got = np.asarray(graph_of(lambda p: graphs.ep_statistics(p, k), (None, k))(ep))[0]
    np.testing.assert_allclose(got, ep_statistics(ep), atol=1e-6)


def test_forest_in_the_graph_gives_scikit_learns_probabilities():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12))
    y = (x[:, 0] + x[:, 3] > 0).astype(int) + 2 * (x[:, 5] > 0.5)  # classes 0..3; class 4 never seen
    forest = fit_forest(x, y, seed=3)
    model = graph_of(lambda v: graphs.forest(v, forest, 5), (1, 12))
    test = np.concatenate([rng.normal(size=(60, 12)), x[:20]]).astype(np.float32)
    # Values exactly on a threshold go left in scikit-learn: put some there.
    tree = forest.estimators_[0].tree_
    test[:5, tree.feature[0]] = np.float32(tree.threshold[0])
    got = np.concatenate([np.asarray(model(row[None])) for row in test])
    np.testing.assert_allclose(got, forest_probabilities(forest, test, 5), atol=1e-6)


def stub_predictor(speaker_norm: bool):
    """What :func:`emotion_refinery.outputs.export._refine_graph` reads of a Predictor: two untrained `small` fold
    models."""
    import types

    from emotion_refinery.models.backbones import build_model

    config = FeatureConfig(segment_hop=4)
    segments_in = keras.Input((32, 64, 1))
    folds = [build_model("small", n_classes=3, seed=k, mean=np.full(64, -40.0), variance=np.full(64, 100.0))
             for k in range(2)]
    for k, m in enumerate(folds):
        m.name = f"fold_{k:02d}"
    ensemble = keras.Model(segments_in, keras.layers.Average()([m(segments_in) for m in folds]))
    return types.SimpleNamespace(features=config, classes=["a", "b", "c"], speaker_norm=speaker_norm, model=ensemble,
                                 utterance_classifier="mean-ep", forest=None, t=0, folds=folds)


@pytest.mark.parametrize("given", [False, True])
def test_speaker_normalisation_in_the_graph_equals_predicts(given):
    from emotion_refinery.outputs.export import _refine_graph
    from emotion_refinery.records.speaker_norm import shift_and_scale

    stub = stub_predictor(True)
    model, _ = _refine_graph(stub)
    f = stub.features
    y = speech_like(1.3, seed=2)
    frames = frames_of(y, f).astype(f.dtype).astype(np.float32)
    own = shift_and_scale(*tiled_sums(frames, f))
    shift, scale = (own[0] + 3.0, own[1] * 2.0) if given else own
    expected_frames = ((frames - shift) / scale).astype(f.dtype).astype(np.float32)
    segs = segment(expected_frames, segment_frames=32, segment_hop=4)[..., None]
    expected = np.mean([m.predict(segs, verbose=0) for m in stub.folds], axis=0)
    feed = {"waveform": y[None], "speaker_shift": (shift if given else np.zeros(64, np.float32))[None],
            "speaker_scale": (scale if given else np.zeros(64, np.float32))[None]}
    out = model(feed)
    np.testing.assert_allclose(np.asarray(out["profile"]), expected, atol=2e-3)
    sums = np.asarray(out["speaker_sums"])
    np.testing.assert_allclose(shift_and_scale(sums[0, 0], sums[1], sums[2])[1], own[1], rtol=1e-4)
    np.testing.assert_allclose(np.asarray(out["probabilities"])[0], expected.mean(axis=0) / expected.mean(axis=0).sum(),
                               atol=1e-3)


def test_export_refuses_an_unknown_format_with_the_accepted_ones(tmp_path):
    result = CliRunner().invoke(main, ["export", str(tmp_path), "--format", "pt"])
    accepted = "'pt' is not one of 'keras', 'savedmodel', 'tflite', 'onnx', 'all'"
    assert result.exit_code == 2 and accepted in result.output


def test_a_damaged_export_folder_is_refused_in_one_line(tmp_path):
    wav = write_wav(tmp_path / "a.wav", tone(300, 1.0))
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "emorefine-round-00.keras").write_bytes(b"PK\x03\x04 not a whole archive")
    sidecar = {"kind": "emorefine-export", "round": 0, "files": {"keras": "emorefine-round-00.keras"},
               "classes": ["a", "b"], "features": FeatureConfig().to_dict(), "speaker_norm": False,
               "decision": {"rule": "mean-ep", "in_graph": "mean-ep"}, "inputs": {}, "sample_rate": SR}
    for meta, expected in ((sidecar, "cannot be loaded"),
                           ({k: v for k, v in sidecar.items() if k != "classes"}, "lacks classes")):
        (folder / "emorefine-round-00.json").write_text(json.dumps(meta))
        result = CliRunner().invoke(main, ["predict", str(folder), wav])
        assert result.exit_code in (1, 2) and expected in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_predict_on_a_folder_that_is_neither_run_nor_export_says_so(tmp_path):
    wav = write_wav(tmp_path / "a.wav", tone(300, 1.0))
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "empty"), wav])
    assert result.exit_code != 0 and "config.json" in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------------------------ trained runs (slow)


def fresh_process(folder, wavs, *formats) -> dict:
    """The example script in a new interpreter: it loads the exported files without emorefine (and asserts so)."""
    args = [sys.executable, str(EXAMPLE), str(folder), *map(str, wavs)] + [f"--format={f}" for f in formats]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    return [write_wav(folder / f"{i}.wav", speech_like(1.1 + 0.3 * i, seed=i) * (0.5 + 0.5 * i)) for i in range(3)]


@pytest.mark.slow
def test_every_format_decides_as_predict_in_a_process_without_emorefine(finished_run, wavs, tmp_path):
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(finished_run), "--round", "1", "--format", "all", "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "emorefine-round-01.json").read_text())
    assert set(meta["files"]) == {"keras", "savedmodel", "tflite", "onnx"} and "not_exported" not in meta
    import onnx

    props = {p.key: json.loads(p.value) for p in onnx.load(str(out / meta["files"]["onnx"])).metadata_props}
    assert props["classes"] == meta["classes"] and props["sample_rate"] == SR and props["round"] == 1
    predicted = CliRunner().invoke(main, ["predict", str(finished_run), "--round", "1", *wavs])
    expected = {r["path"]: r for r in json.loads(predicted.stdout)}
    got = fresh_process(out, wavs)
    for wav in wavs:
        for fmt, answer in got[wav].items():
            assert answer["label"] == expected[wav]["label"], (wav, fmt)
            probabilities = [expected[wav]["probabilities"][c] for c in meta["classes"]]
            np.testing.assert_allclose(answer["probabilities"], probabilities, atol=0.03, err_msg=f"{wav} {fmt}")
    # predict on the export folder alone: the same answers, profiles included.
    again = CliRunner().invoke(main, ["predict", str(out), *wavs])
    assert again.exit_code == 0, again.output
    for r in json.loads(again.stdout):
        assert r["label"] == expected[r["path"]]["label"] and r["segments"] == expected[r["path"]]["segments"]
        np.testing.assert_allclose(r["profile"]["probabilities"], expected[r["path"]]["profile"]["probabilities"],
                                   atol=2e-3)


@pytest.mark.slow
def test_python_api_loads_a_run_or_its_export_and_takes_arrays(finished_run, wavs, tmp_path):
    from emotion_refinery import load
    from emotion_refinery.data.audio import load as decode
    from emotion_refinery.outputs.export import export_run

    export_run(finished_run, t=1, out_dir=tmp_path)
    run, exported = load(finished_run, t=1), load(tmp_path)
    assert run.classes == exported.classes and exported.t == 1
    y = decode(wavs[0])
    from_file, from_array = run.predict(wavs[0]), exported.predict(y, sr=SR)
    assert from_file.label == from_array.label
    np.testing.assert_allclose(from_array.profile, from_file.profile, atol=2e-3)
    assert run.predict(y, sr=SR).label == from_file.label
    at_44k = exported.predict(np.repeat(y, 2)[::2], sr=SR)  # the same signal, given as an array once more
    assert at_44k.label == from_file.label
    assert "too short" in exported.predict(y[:1000], sr=SR).error
    with pytest.raises(Exception, match="sr"):
        exported.predict(y)


@pytest.mark.slow
def test_readmes_python_example_runs(finished_run, wavs, capsys):
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Use a trained model elsewhere"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'load("runs/emodb")' in code and '"speech.wav"' in code
    exec(code.replace("runs/emodb", str(finished_run)).replace("speech.wav", wavs[0]), {})
    printed = capsys.readouterr().out.splitlines()
    from emotion_refinery import load

    model = load(finished_run)
    assert printed[0].split()[0] == model.predict(wavs[0]).label
    assert printed[1].startswith(f"({len(model.predict(wavs[0]).profile)}, {len(model.classes)})")
