"""Backbones: a registry loop on 1-channel segments, BN momentum, in-model normalisation, a toy fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from emotion_refinery.errors import EmorefineError
from emotion_refinery.models.backbones import (
    DENSENET22_BLOCKS,
    backbone_names,
    build_model,
    build_sequence_model,
    set_batch_norm_momentum,
)

SEGMENT_BACKBONES = backbone_names("segments")
INPUT_SHAPE = (32, 64, 1)
MOMENTUM = 0.9  # not the default, so the test sees it was applied


def _layers(layer):
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _layers(sub)


def _batch_norms(model):
    return [layer for layer in _layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.fixture(scope="module")
def models():
    """Every backbone built once with K = 7 (building is the slow part; nothing large is trained)."""
    return {name: build_model(name, n_classes=7, bn_momentum=MOMENTUM, seed=0) for name in SEGMENT_BACKBONES}


@pytest.fixture(scope="module")
def segments():
    return np.random.default_rng(0).normal(size=(2, *INPUT_SHAPE)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(SEGMENT_BACKBONES))
def test_output_is_a_distribution_over_k_classes(name, models, segments):
    model = models[name]
    assert model.input_shape == (None, *INPUT_SHAPE)
    assert model.output_shape == (None, 7)
    probs = np.asarray(model(segments, training=False))
    assert probs.shape == (2, 7)
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


#: build_model puts the same head (pooling, Dense(K) softmax) on every backbone, and every backbone is built with
#: K = 7 above; another K is checked on the backbones that build in well under a second.
CHEAP = ("small", "tcnn", "densenet22")


@pytest.mark.parametrize("name", CHEAP)
def test_other_number_of_classes(name, segments):
    assert name in SEGMENT_BACKBONES
    model = build_model(name, n_classes=3)
    probs = np.asarray(model(segments[:1], training=False))
    assert probs.shape == (1, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SEGMENT_BACKBONES))
def test_bn_momentum_is_applied_to_every_batch_norm_layer(name, models):
    batch_norms = _batch_norms(models[name])
    if name != "vgg19":  # VGG19 has no batch normalisation
        assert batch_norms
    assert all(layer.momentum == MOMENTUM for layer in batch_norms)
    assert all(layer.get_config()["momentum"] == MOMENTUM for layer in batch_norms)


def test_default_momentum_overrides_the_applications_0999():
    model = build_model("mobilenetv2", n_classes=4)
    assert {layer.momentum for layer in _batch_norms(model)} == {0.99}
    assert set_batch_norm_momentum(model, 0.5) == len(_batch_norms(model)) > 0
    assert {layer.momentum for layer in _batch_norms(model)} == {0.5}


@pytest.mark.parametrize(("name", "expected"), [("densenet22", 22), ("densenet121", 121), ("vgg19", 17)])
def test_weighted_layer_count(name, expected, models):
    """Named depth = convolutions + the softmax Dense (batch norm not counted)."""
    kinds = (keras.layers.Conv2D, keras.layers.Dense)
    weighted = [layer for layer in _layers(models[name]) if isinstance(layer, kinds)]
    assert len(weighted) == expected
    if name == "densenet22":
        assert 1 + 2 * sum(DENSENET22_BLOCKS) + (len(DENSENET22_BLOCKS) - 1) + 1 == 22


def test_normalisation_layer_standardises_each_mel_band():
    rng = np.random.default_rng(1)
    mean = rng.normal(-40, 10, size=64)
    variance = rng.uniform(4, 100, size=64)
    model = build_model("small", n_classes=2, mean=mean, variance=variance)
    x = rng.normal(-40, 10, size=(3, *INPUT_SHAPE)).astype(np.float32)
    out = np.asarray(model.get_layer("band_normalization")(x))
    expected = (x - mean[None, None, :, None]) / np.sqrt(variance)[None, None, :, None]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_model_with_statistics_maps_the_mean_like_identity_model_maps_zero():
    mean = np.linspace(-80, -20, 64)
    variance = np.linspace(1, 50, 64)
    identity = build_model("small", n_classes=4, seed=3)
    normalised = build_model("small", n_classes=4, mean=mean, variance=variance, seed=3)
    # Same seed, same initial weights (the band statistics are constants in the config, not weights).
    assert len(identity.get_weights()) == len(normalised.get_weights())
    for a, b in zip(identity.get_weights(), normalised.get_weights()):
        np.testing.assert_array_equal(a, b)
    at_mean = np.broadcast_to(mean[None, None, :, None], (1, *INPUT_SHAPE)).astype(np.float32)
    zeros = np.zeros((1, *INPUT_SHAPE), np.float32)
    np.testing.assert_allclose(
        np.asarray(normalised(at_mean, training=False)), np.asarray(identity(zeros, training=False)), atol=1e-6
    )


def test_saved_model_keeps_normalisation_and_momentum(tmp_path):
    mean, variance = np.full(64, -50.0), np.full(64, 25.0)
    model = build_model("small", n_classes=3, mean=mean, variance=variance, bn_momentum=0.8, seed=0)
    x = np.random.default_rng(2).normal(-50, 5, size=(4, *INPUT_SHAPE)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-6)
    assert {layer.momentum for layer in _batch_norms(loaded)} == {0.8}


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(EmorefineError) as info:
        build_model("resnet50", n_classes=7)
    message = str(info.value)
    assert "Received: backbone='resnet50'" in message
    for name in SEGMENT_BACKBONES:
        assert name in message
    with pytest.raises(EmorefineError, match="'blstm_attention' \\(it reads utterances\\)"):
        build_model("blstm_attention", n_classes=7)
    with pytest.raises(EmorefineError, match="'tcnn' \\(it reads segments\\); expected one of blstm_attention"):
        build_sequence_model("tcnn", n_features=64, n_classes=7)


@pytest.mark.parametrize("name, activation",
                         [("blstm_attention", "softmax"), ("mlee_crnn", "sigmoid"), ("mlp", "softmax")])
def test_sequence_model_ignores_padded_frames_and_saves(tmp_path, name, activation):
    model = build_sequence_model(name, n_features=8, n_classes=4, seed=0, activation=activation)
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(2, 37, 8)).astype(np.float32)
    mask = np.zeros((2, 37), bool)
    mask[0, :37], mask[1, :5] = True, True
    probs = np.asarray(model({"frames": frames, "mask": mask}, training=False))
    if activation == "softmax":
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    else:  # MLEE: each class present or not
        assert ((probs > 0) & (probs < 1)).all() and not np.allclose(probs.sum(axis=1), 1.0)
    garbage = frames.copy()
    garbage[1, 5:] = 1e3  # padding content must not matter
    np.testing.assert_allclose(np.asarray(model({"frames": garbage, "mask": mask}, training=False)), probs, atol=1e-6)
    alone = np.asarray(model({"frames": frames[1:, :5], "mask": mask[1:, :5]}, training=False))
    np.testing.assert_allclose(alone[0], probs[1], atol=1e-5)  # same as the utterance without padding
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe mode: the attention layer is registered
    np.testing.assert_allclose(np.asarray(loaded({"frames": frames, "mask": mask}, training=False)), probs, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"n_classes": 1}, "Received: n_classes=1"),
        ({"n_classes": 4, "mean": np.zeros(64)}, "mean and variance must be given together"),
        ({"n_classes": 4, "mean": np.zeros(32), "variance": np.ones(32)}, "shape (64,)"),
        ({"n_classes": 4, "mean": np.zeros(64), "variance": -np.ones(64)}, "variance must be non-negative"),
        ({"n_classes": 4, "bn_momentum": 1.0}, "Received: bn_momentum=1.0; expected a value in [0, 1)"),
        ({"n_classes": 4, "input_shape": (32, 64)}, "Received: input_shape=(32, 64)"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(EmorefineError) as info:
        build_model("small", **kwargs)
    assert fragment in str(info.value)


def test_input_too_small_for_an_application():
    with pytest.raises(EmorefineError, match=r"needs at least 32 frames.*Received: input_shape=\(16, 64, 1\)"):
        build_model("vgg19", input_shape=(16, 64, 1), n_classes=4)


@pytest.mark.slow  # trains
def test_small_model_learns_a_band_and_is_accurate_in_inference_mode():
    """Inference mode (model.predict, moving BN statistics), not only the training loss."""
    rng = np.random.default_rng(0)

    def make(n):
        labels = rng.integers(0, 2, size=n)
        x = rng.normal(-60.0, 8.0, size=(n, *INPUT_SHAPE))
        x[labels == 1, :, 20:30, :] += 12.0  # class 1: louder Mel bands 20-29
        return x.astype(np.float32), labels

    x_train, y_train = make(256)
    x_test, y_test = make(128)
    model = build_model(
        "small",
        n_classes=2,
        mean=x_train.mean(axis=(0, 1, 3)),
        variance=x_train.var(axis=(0, 1, 3)),
        bn_momentum=MOMENTUM,
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0)
    predicted = np.argmax(model.predict(x_test, batch_size=64, verbose=0), axis=1)
    assert np.mean(predicted == y_test) >= 0.95
