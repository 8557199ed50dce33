"""MLEE: the existence targets, weights and loss by hand; what fine-tuning trains; a voted synthetic run end to end."""

from __future__ import annotations

import dataclasses
import math
import shutil

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from keras import ops

from cli.main import main
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import EmorefineError
from emotion_refinery.models.existence import (
    existence_scores,
    existence_targets,
    existence_weights,
    fit_probe,
    inverse_frequency,
    predicted_existence,
    weighted_bce,
)
from emotion_refinery.records.build import build_records
from emotion_refinery.records.run_dir import RunDir

UTTERANCES = [{"label": "a", "votes": {"a": 2, "b": 1}}, {"label": "b", "votes": None},
              {"label": "c", "votes": {"c": 3}}, {"label": "a", "votes": {"a": 1, "c": 0}}]


def test_existence_targets_and_inverse_frequency_by_hand():
    e = existence_targets(UTTERANCES, ["a", "b", "c"])
    np.testing.assert_array_equal(e, [[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])  # a vote of 0 is no vote
    np.testing.assert_allclose(inverse_frequency(e), [4 / (3 * 2), 4 / (3 * 2), 4 / (3 * 1)])
    np.testing.assert_allclose(inverse_frequency(np.array([[1, 0], [1, 0]])), [0.5, 0.0])  # absent class: 0


def test_existence_weights_balance_each_class_present_and_absent_side_by_hand():
    e = existence_targets(UTTERANCES, ["a", "b", "c"])  # present: a 2, b 2, c 1 of N = 4
    positive, negative = existence_weights(e)
    np.testing.assert_allclose(positive, [4 / (2 * 2), 4 / (2 * 2), 4 / (2 * 1)])
    np.testing.assert_allclose(negative, [4 / (2 * 2), 4 / (2 * 2), 4 / (2 * 3)])
    # Within every class the present and the absent utterances weigh N / 2 each.
    np.testing.assert_allclose((e * positive).sum(axis=0), 2.0)
    np.testing.assert_allclose(((1 - e) * negative).sum(axis=0), 2.0)
    positive, negative = existence_weights(np.array([[1, 0], [1, 0], [1, 1]]))  # a side with none: weight 0
    np.testing.assert_allclose(positive, [3 / 6, 3 / 2])
    np.testing.assert_allclose(negative, [0.0, 3 / 4])


def test_weighted_bce_weighs_the_present_and_absent_terms_apart_by_hand():
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[0.8, 0.4], [0.3, 0.9]], np.float32)
    got = ops.convert_to_numpy(weighted_bce(np.array([2.0, 3.0]), np.array([0.5, 0.25]))(y, p))
    np.testing.assert_allclose(got, [(2.0 * -math.log(0.8) + 0.25 * -math.log(0.6)) / 2,
                                     (0.5 * -math.log(0.7) + 3.0 * -math.log(0.9)) / 2], rtol=1e-5)
    with pytest.raises(ValueError, match="expected two vectors of K weights"):
        weighted_bce(np.ones(2), np.ones(3))


def test_predicted_existence_and_its_scores():
    probs = np.array([[0.6, 0.7, 0.1], [0.2, 0.3, 0.9]])
    np.testing.assert_array_equal(predicted_existence(probs, sigmoid=True), [[1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(predicted_existence(np.array([[0.5, 0.3, 0.2]]), sigmoid=False), [[1, 0, 0]])
    truth = np.array([[1, 0, 0], [0, 0, 1]])
    s = existence_scores(truth, predicted_existence(probs, sigmoid=True), ["a", "b", "c"])
    assert s["per_class"]["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert s["per_class"]["b"]["precision"] == 0.0 and s["per_class"]["b"]["support"] == 0
    assert s["macro_f1"] == pytest.approx(1.0)  # b is absent from the truth: not averaged


@pytest.mark.parametrize("second", [None, "mlee_crnn", "blstm_attention"])
def test_fine_tuning_trains_the_classifier_part_dense_64_and_the_output_layer_only(second):
    """pretrain (one encoder) and fusion (two): the encoders are frozen but for MLEE's Dense 64 ``embedding``;
    a backbone without one adds nothing trainable."""
    from emotion_refinery.methods.mlee import _encoder, _head
    from emotion_refinery.models.backbones import build_sequence_model

    encoders = [_encoder(build_sequence_model("mlee_crnn", n_features=8, n_classes=3, activation="sigmoid"), "a")]
    if second:
        encoders.append(_encoder(build_sequence_model(second, n_features=8, n_classes=3), "b"))
    head = _head(encoders, 3, "fusion" if second else "pretrain")
    tuned = 2 if second == "mlee_crnn" else 1
    assert sorted(w.path for w in head.trainable_weights) == sorted(
        ["embedding/kernel", "embedding/bias"] * tuned + ["predictions/kernel", "predictions/bias"])
    assert [w.shape for w in head.trainable_weights if w.path == "embedding/kernel"][0][1] == 64
    for encoder in encoders:
        backbone = encoder.layers[-1]  # the backbone model the output layer read
        trainable = {layer.name for layer in backbone.layers if layer.trainable}
        assert trainable <= {"embedding"}  # every other layer of the backbone (convolutions, BN, BLSTM) frozen


@pytest.mark.slow  # trains
def test_fine_tuning_changes_dense_64_and_the_head_and_leaves_the_rest_of_the_encoders_alone():
    from emotion_refinery.methods.mlee import _encoder, _head
    from emotion_refinery.models.backbones import build_sequence_model

    a = build_sequence_model("mlee_crnn", n_features=8, n_classes=3, seed=0, activation="sigmoid")
    b = build_sequence_model("blstm_attention", n_features=8, n_classes=3, seed=1)
    head = _head([_encoder(a, "a"), _encoder(b, "b")], 3, "fusion")
    dense_64 = a.get_layer("mlee_crnn").get_layer("embedding")
    frozen = [v for v in a.weights + b.weights if not v.path.startswith(("embedding/", "predictions/"))]
    before = [np.array(v) for v in frozen]
    tuned_before = [w.copy() for w in dense_64.get_weights() + head.get_layer("predictions").get_weights()]
    rng = np.random.default_rng(0)
    x = {"frames": rng.normal(size=(8, 20, 8)).astype(np.float32), "mask": np.ones((8, 20), bool)}
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    head.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
    head.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert len(before) > 20
    for w0, v in zip(before, frozen):
        np.testing.assert_array_equal(w0, np.array(v))  # BN moving statistics included
    for w0, w1 in zip(tuned_before, dense_64.get_weights() + head.get_layer("predictions").get_weights()):
        assert not np.array_equal(w0, w1)


def test_probe_is_the_softmax_layer_that_minimises_the_weighted_soft_cross_entropy():
    """The probe's kernel and bias act on raw embeddings (the standardisation folded in); at its C the weighted
    soft-target loss on the training set has a zero gradient but for the L2 term, and C is chosen on validation."""
    rng = np.random.default_rng(3)
    k, d = 3, 5
    centers = rng.normal(scale=3, size=(k, d))
    labels = rng.integers(0, k, 120)
    x = centers[labels] + rng.normal(size=(120, d)) + 10  # offset and scale that the standardisation removes
    x[:, 0] *= 100
    targets = 0.7 * np.eye(k)[labels] + 0.1
    weights = rng.uniform(0.5, 2, 120)
    probe = fit_probe(x[:90], targets[:90], weights[:90], x[90:], targets[90:], weights[90:])
    assert probe["kernel"].shape == (d, k) and probe["bias"].shape == (k,)
    logits = x[90:] @ probe["kernel"] + probe["bias"]
    assert (logits.argmax(axis=1) == labels[90:]).mean() > 0.9
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    val = np.mean(-(targets[90:] * np.log(p)).sum(axis=1) * weights[90:])
    assert math.isclose(val, probe["val_loss"], rel_tol=1e-4)
    # A minimum of sklearn's objective C·Σ_n w_n·CE_n + ½‖W‖² (W in standardised units): no nearby head is lower.
    mean, scale = x[:90].mean(axis=0), x[:90].std(axis=0)
    z = (x[:90] - mean) / scale
    coef = (probe["kernel"] * scale[:, None]).astype(np.float64)  # (d, k), standardised units
    bias = probe["bias"] + mean @ probe["kernel"]

    def objective(w, b):
        lg = z @ w + b
        lg = lg - lg.max(axis=1, keepdims=True)
        logp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
        return probe["C"] * np.sum(weights[:90] * -(targets[:90] * logp).sum(axis=1)) + 0.5 * np.sum(w * w)

    best = objective(coef, bias)
    for _ in range(20):
        assert objective(coef + 0.05 * rng.normal(size=coef.shape), bias + 0.05 * rng.normal(size=k)) > best


def test_train_on_is_checked():
    from emotion_refinery.methods.mlee import MLEEConfig

    with pytest.raises(EmorefineError, match="Received: train_on='most'; expected one of dominant, all"):
        MLEEConfig(train_on="most")
    with pytest.raises(EmorefineError, match="Received: train_on='all' with variant='soft'"):
        MLEEConfig(variant="soft", train_on="all")
    with pytest.raises(EmorefineError, match="Received: speaker_norm=True with train_on='all'"):
        MLEEConfig(speaker_norm=True, train_on="all")
    with pytest.raises(EmorefineError, match="Received: speaker_norm='yes'; expected true or false"):
        MLEEConfig(speaker_norm="yes")


def test_a_bad_variant_is_refused():
    from emotion_refinery.methods.mlee import MLEEConfig

    with pytest.raises(EmorefineError,
                       match="Received: variant='both'; expected one of hard, soft, mlee, pretrain, fusion"):
        MLEEConfig(variant="both")
    with pytest.raises(EmorefineError, match="Received: head='sgd'; expected one of adam, probe"):
        MLEEConfig(head="sgd")


@pytest.fixture(scope="module")
def voted_records(tmp_path_factory):
    from emotion_refinery.data.synthetic import make_corpus

    base = tmp_path_factory.mktemp("mlee")
    csv_path = make_corpus(base / "corpus", per_class=3, seed=5, annotators=5, annotator_noise=0.1)
    out = base / "rec"
    build_records(base / "corpus", out, corpus="csv", manifest=csv_path, features=FeatureConfig(segment_hop=16),
                  n_folds=3, workers=1, sequences="spectrogram")
    return out


@pytest.mark.slow
def test_pretrain_run_reports_existence_resumes_and_shows_in_inspect(voted_records, tmp_path):
    from emotion_refinery.methods.mlee import MLEEConfig, run_mlee
    from emotion_refinery.records.manifest import RecordsManifest

    # pretrain: an MLEE stage, then a frozen-encoder stage (fusion adds a soft model; _head is tested above).
    config = MLEEConfig(variant="pretrain", backbone="blstm_attention", epochs=1, batch_size=8, seed=1)
    lines: list[str] = []
    report = run_mlee(voted_records, tmp_path / "run", config, log=lines.append)
    manifest = RecordsManifest.load(voted_records)
    assert report["voted_utterances"] == 12 and sum(map(sum, report["confusion"])) == 12
    # Every fold trained its MLEE component, then the new head on its frozen encoder.
    assert all(set(f["stages"]) == {"mlee", "pretrain"} for f in report["folds"])
    # The existence scores are those of the saved test-fold outputs.
    probs = np.zeros((12, len(manifest.classes)))
    for k in range(3):
        with np.load(RunDir(tmp_path / "run").round_dir(0) / "mlee" / f"fold-{k:02d}.npz") as z:
            probs[[u["index"] for u in manifest.utterances if u["fold"] == k]] = z["test_probabilities"]
    truth = existence_targets(manifest.utterances, manifest.classes)
    expected = existence_scores(truth, predicted_existence(probs, sigmoid=False), manifest.classes)
    assert report["existence"] == expected
    text = (tmp_path / "run" / "report.md").read_text()
    assert "existence macro-F1" in text and "| class | precision (%) |" in text
    # Resume: a fold lost in a crash is trained again to the same outputs.
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "run", copy)
    RunDir(copy).done_path(0, 2).unlink()
    resumed = run_mlee(voted_records, copy, config, log=lambda s: None)
    assert resumed["wa"] == report["wa"] and resumed["existence"] == report["existence"]
    result = CliRunner().invoke(main, ["inspect", str(copy)])
    assert result.exit_code == 0 and "Emotion existence" in result.output
    result = CliRunner().invoke(main, ["report", str(copy)])
    assert result.exit_code == 0 and (copy / "plots" / "confusion.png").is_file()
    result = CliRunner().invoke(main, ["mlee", str(voted_records), "-o", str(copy), "--variant", "soft"])
    assert result.exit_code != 0 and "config.variant: 'pretrain' → 'soft'" in result.output


@pytest.mark.slow
def test_probe_head_is_fitted_on_the_frozen_encoder_and_saved_with_the_model(voted_records, tmp_path):
    from emotion_refinery.methods.mlee import MLEEConfig, _embeddings, run_mlee
    from emotion_refinery.models.existence import PROBE_CS
    from emotion_refinery.records.manifest import RecordsManifest

    lines = []
    config = MLEEConfig(variant="pretrain", backbone="blstm_attention", epochs=1, batch_size=8, head="probe")
    report = run_mlee(voted_records, tmp_path / "run", config, log=lines.append)
    assert sum("probe fitted to convergence" in line for line in lines) == 3
    fold = report["folds"][0]
    assert fold["stages"]["pretrain"]["probe_c"] in PROBE_CS and fold["stages"]["pretrain"]["epochs"] == 0
    model = keras.saving.load_model(RunDir(tmp_path / "run").model_path(0, 0))
    manifest = RecordsManifest.load(voted_records)
    x, _ = _embeddings(model, manifest, [0], 8)
    kernel, bias = model.get_layer("predictions").get_weights()
    logits = x @ kernel + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    stored = np.load(tmp_path / "run" / "rounds" / "round-00" / "mlee" / "fold-00.npz")["test_probabilities"]
    np.testing.assert_allclose(stored, expected, atol=1e-4)
    with pytest.raises(EmorefineError, match="other settings"):  # the head is a setting of the run
        run_mlee(voted_records, tmp_path / "run", dataclasses.replace(config, head="adam"), log=lines.append)


@pytest.mark.slow
def test_speaker_norm_run_trains_and_predicts_on_speaker_normalised_frames(voted_records, tmp_path):
    from emotion_refinery.methods.mlee import MLEEConfig, run_mlee
    from emotion_refinery.records.datasets import sequence_dataset
    from emotion_refinery.records.manifest import RecordsManifest
    from emotion_refinery.records.speaker_norm import sequence_tables

    config = MLEEConfig(variant="soft", backbone="blstm_attention", epochs=1, batch_size=8, speaker_norm=True)
    report = run_mlee(voted_records, tmp_path / "run", config, log=lambda s: None)
    assert report["config"]["speaker_norm"] is True
    assert "per speaker (`--speaker-norm`)" in (tmp_path / "run" / "report.md").read_text()
    manifest = RecordsManifest.load(voted_records)
    model = keras.saving.load_model(RunDir(tmp_path / "run").model_path(0, 0))
    stored = np.load(tmp_path / "run" / "rounds" / "round-00" / "mlee" / "fold-00.npz")["test_probabilities"]

    def outputs(normalize):
        test = sequence_dataset(manifest, folds=[0], batch_size=8, normalize=normalize)
        return model.predict(test.map(lambda x, y: {"frames": x["frames"], "mask": x["mask"]}), verbose=0)

    # The held-out fold is scored on its speaker-normalised frames, not the raw ones.
    np.testing.assert_allclose(stored, outputs(sequence_tables(manifest)), atol=1e-5)
    assert np.abs(stored - outputs(None)).max() > 1e-3
