"""LC+W's pieces: the loss, the initial labels and weights, the alternating updates and label recovery."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from emotion_refinery.errors import EmorefineError
from emotion_refinery.models.label_correction import fit_lcw, lcw_loss, oversample_repeats, update_loss
from emotion_refinery.models.layers import LabelCorrection, MeanOne

K, F = 3, 8


def test_loss_follows_the_formula():
    out = np.array([[0.8, 0.2, 0.6, 0.4, 2.0, 1.0],    # a training row: s = (0.6, 0.4), w = 2
                    [0.8, 0.2, 0.5, 0.5, 3.0, 0.0]],   # no row (validation): given label, weight 1
                   np.float32)
    y_true = np.array([[1, 0], [0, 1]], np.float32)
    loss = ops.convert_to_numpy(lcw_loss(2)(y_true, out))
    np.testing.assert_allclose(loss, [-(0.6 * math.log(0.8) + 0.4 * math.log(0.2)) / 2, -math.log(0.2)], rtol=1e-6)
    # The ablations: given labels instead of the learned ones, weight 1 instead of w.
    given = ops.convert_to_numpy(lcw_loss(2, learned_labels=False)(y_true, out))
    np.testing.assert_allclose(given, [-math.log(0.8) / 2, -math.log(0.2)], rtol=1e-6)
    plain = ops.convert_to_numpy(lcw_loss(2, learned_labels=False, weighted=False)(y_true, out))
    np.testing.assert_allclose(plain, [-math.log(0.8), -math.log(0.2)], rtol=1e-6)
    labels_only = ops.convert_to_numpy(lcw_loss(2, weighted=False)(y_true, out))
    np.testing.assert_allclose(labels_only[0], -(0.6 * math.log(0.8) + 0.4 * math.log(0.2)), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("update", ["none", "class-weights", "oversample"])
def test_baselines_train_the_network_every_epoch_and_learn_no_labels(update):
    train, val, correction, *_ = _toy(24, 8)
    result = fit_lcw(_classifier(), correction, train, val, epochs=2, update=update)
    assert [h["phase"] for h in result.history] == ["theta", "theta"]
    start = LabelCorrection(correction.labels, correction.row_of, K)
    start(np.zeros(1, np.int64))
    for name in ("logits", "contribution"):
        np.testing.assert_array_equal(ops.convert_to_numpy(getattr(correction, name)),
                                      ops.convert_to_numpy(getattr(start, name)))


def test_oversampling_draws_every_class_as_often_as_the_largest():
    labels = np.array([0] * 7 + [1] * 3 + [2] * 2 + [4] * 1)  # class 3 absent
    repeats = oversample_repeats(labels, n_classes=5, seed=3)
    assert np.bincount(labels, weights=repeats, minlength=5).tolist() == [7, 7, 7, 0, 7]
    assert set(repeats[labels == 0]) == {1}
    assert set(repeats[labels == 1]) == {2, 3}
    assert set(repeats[labels == 2]) == {3, 4}
    np.testing.assert_array_equal(repeats, oversample_repeats(labels, n_classes=5, seed=3))
    assert not np.array_equal(repeats, oversample_repeats(labels, n_classes=5, seed=4))


def test_initial_labels_give_the_given_class_its_confidence_and_weights_the_class_shares():
    layer = LabelCorrection([0, 0, 0, 1], row_of=[2, -1, 0, 1, 3], n_classes=2, confidence=0.8)
    out = ops.convert_to_numpy(layer(np.array([0, 1, 4], np.int64)))
    np.testing.assert_allclose(out[0], [0.8, 0.2, 1.5, 1.0], rtol=1e-6)  # row 2: class 0, w = 2·3/4
    np.testing.assert_allclose(out[1], [0.8, 0.2, 1.5, 0.0], rtol=1e-6)  # no row: flagged 0
    np.testing.assert_allclose(out[2], [0.2, 0.8, 0.5, 1.0], rtol=1e-6)  # row 3: class 1, w = 2·1/4
    # confidence e / (e + K − 1) are the logits of the one-hot label itself.
    literal = LabelCorrection([2, 0], row_of=[0, 1], n_classes=3, confidence=math.e / (math.e + 2))
    literal(np.zeros(1, np.int64))
    np.testing.assert_allclose(ops.convert_to_numpy(literal.logits), [[0, 0, 1], [1, 0, 0]], atol=1e-6)


@pytest.mark.parametrize("confidence", [0.2, 1.0, 1.5])
def test_a_confidence_outside_uniform_to_one_is_refused(confidence):
    with pytest.raises(ValueError, match=rf"confidence={confidence!r}; expected a number in \[1/3, 1\)"):
        LabelCorrection([0], row_of=[0], n_classes=3, confidence=confidence)


def test_mean_one_keeps_weights_positive_with_mean_one():
    w = ops.convert_to_numpy(MeanOne(floor=1e-3)(np.array([-1.0, 0.5, 2.0, 4.0], np.float32)))
    assert w.min() > 0
    np.testing.assert_allclose(w.mean(), 1, rtol=1e-6)
    np.testing.assert_allclose(w[1:] / w[1], [1, 4, 8], rtol=1e-6)


def _toy(n, n_val, *, flip_share=0.2, seed=0):
    """Utterances of 5-15 frames around a class mean; ``flip_share`` of the training labels flipped."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 1, (K, F))

    def make(m):
        y = rng.integers(0, K, m)
        lengths = rng.integers(5, 16, m)
        x, mask = np.zeros((m, 15, F), np.float32), np.zeros((m, 15), bool)
        for i in range(m):
            x[i, : lengths[i]] = mu[y[i]] + rng.normal(0, 1, (lengths[i], F))
            mask[i, : lengths[i]] = True
        return x, mask, y

    x, mask, y = make(n)
    xv, mv, yv = make(n_val)
    flip = rng.random(n) < flip_share
    given = np.where(flip, (y + rng.integers(1, K, n)) % K, y)

    def ds(x, mask, labels, utt, shuffle):
        d = tf.data.Dataset.from_tensor_slices(({"frames": x, "mask": mask, "utt": utt.astype(np.int64)},
                                                np.eye(K, dtype=np.float32)[labels]))
        return (d.shuffle(len(x), seed=seed) if shuffle else d).batch(16)

    train = ds(x, mask, given, np.arange(n), True)
    val = ds(xv, mv, yv, np.arange(n, n + n_val), False)
    correction = LabelCorrection(given, np.concatenate([np.arange(n), -np.ones(n_val, int)]), K)
    return train, val, correction, y, given, flip


def _classifier(seed=0):
    """A small utterance model (frame-wise Dense 16, attention pooling): the tests are about LC+W, not capacity."""
    from emotion_refinery.models.layers import AttentionPooling

    keras.utils.set_random_seed(seed)
    frames, mask = keras.Input((None, F), name="frames"), keras.Input((None,), dtype="bool", name="mask")
    x = AttentionPooling()(keras.layers.Dense(16, activation="relu")(frames), mask=mask)
    return keras.Model({"frames": frames, "mask": mask}, keras.layers.Dense(K, activation="softmax")(x))


@pytest.mark.slow
def test_theta_epochs_change_only_the_network_and_label_epochs_only_labels_and_weights():
    train, val, correction, *_ = _toy(24, 8)
    classifier = _classifier()
    snapshots = []

    def snapshot(epoch, phase):
        snapshots.append((phase, [w.copy() for w in classifier.get_weights()],
                          ops.convert_to_numpy(correction.logits).copy(),
                          ops.convert_to_numpy(correction.contribution).copy()))

    start = LabelCorrection(correction.labels, correction.row_of, K)
    start(np.zeros(1, np.int64))
    fit_lcw(classifier, correction, train, val, epochs=2, patience=5, on_epoch=snapshot)
    before_theta = [w.copy() for w in _classifier().get_weights()]
    (p1, th1, l1, w1), (p2, th2, l2, w2), (p3, th3, l3, w3) = snapshots
    assert [p1, p2, p3] == ["theta", "labels", "theta"]
    assert any(not np.array_equal(a, b) for a, b in zip(before_theta, th1))
    np.testing.assert_array_equal(l1, ops.convert_to_numpy(start.logits))  # the θ epoch left the labels alone
    for a, b in zip(th1, th2):  # the label epoch left θ alone
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(l1, l2) and not np.array_equal(w1, w2)
    np.testing.assert_allclose(w2.mean(), 1, rtol=1e-5)
    np.testing.assert_array_equal(l2, l3)
    np.testing.assert_array_equal(w2, w3)


@pytest.mark.slow
@pytest.mark.parametrize("update, moved", [("labels", "logits"), ("weights", "contribution")])
def test_ablations_learn_only_their_part(update, moved):
    train, val, correction, *_ = _toy(24, 8)
    classifier = _classifier()
    fit_lcw(classifier, correction, train, val, epochs=2, update=update)
    fixed = "contribution" if moved == "logits" else "logits"
    start = LabelCorrection(correction.labels, correction.row_of, K)
    start(np.zeros(1, np.int64))
    np.testing.assert_array_equal(ops.convert_to_numpy(getattr(correction, fixed)),
                                  ops.convert_to_numpy(getattr(start, fixed)))
    assert not np.array_equal(ops.convert_to_numpy(getattr(correction, moved)),
                              ops.convert_to_numpy(getattr(start, moved)))


@pytest.mark.slow
def test_learned_labels_recover_planted_flips():
    train, val, correction, truth, given, flip = _toy(60, 20, seed=1)
    assert flip.sum() >= 8
    result = fit_lcw(_classifier(1), correction, train, val, epochs=8, patience=8, lr=0.01, label_lr=0.2)
    # Precondition: the network separates the classes. (Where it does not, the label epochs pull labels
    # towards its wrong predictions: LC+W corrects labels only as well as its network generalises.)
    assert max(h.get("val_accuracy", 0) for h in result.history) >= 0.9
    learned = result.labels.argmax(axis=1)
    assert np.mean(learned[flip] == truth[flip]) >= 0.7
    assert np.mean(learned[~flip] == truth[~flip]) >= 0.9
    assert result.weights[flip].mean() > result.weights[~flip].mean()  # flipped utterances count less
    np.testing.assert_allclose(result.weights.mean(), 1, rtol=1e-5)


@pytest.mark.slow
def test_warmup_trains_the_network_alone_first_and_epochs_count_network_epochs():
    train, val, correction, *_ = _toy(24, 8)
    result = fit_lcw(_classifier(), correction, train, val, epochs=3, warmup=2, patience=5)
    assert [h["phase"] for h in result.history] == ["theta", "theta", "labels", "theta"]
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    theta = [h for h in result.history if h["phase"] == "theta"]
    assert result.best_epoch == min(theta, key=lambda h: h["val_loss"])["epoch"]


@pytest.mark.parametrize("warmup", [0, 1.5])
def test_a_warmup_below_one_epoch_is_refused(warmup):
    with pytest.raises(EmorefineError, match=rf"warmup={warmup!r}; expected an integer of at least 1"):
        fit_lcw(None, None, None, None, epochs=1, warmup=warmup)


def test_unknown_update_is_refused():
    with pytest.raises(EmorefineError,
                       match="update='all'; expected one of both, labels, weights, class-weights, none, oversample"):
        fit_lcw(None, None, None, None, epochs=1, update="all")


def test_flip_labels_changes_exactly_the_share_to_other_classes_reproducibly():
    from emotion_refinery.data.label_noise import flip_labels

    labels = np.arange(40) % 4
    noisy = flip_labels(labels, 4, 0.25, seed=3)
    assert (noisy != labels).sum() == 10 and noisy.min() >= 0 and noisy.max() < 4
    np.testing.assert_array_equal(noisy, flip_labels(labels, 4, 0.25, seed=3))
    assert not np.array_equal(noisy, flip_labels(labels, 4, 0.25, seed=4))
    np.testing.assert_array_equal(flip_labels(labels, 4, 0.0), labels)
    with pytest.raises(EmorefineError, match=r"Received: label_noise=1.0; expected a share in \[0, 1\)"):
        flip_labels(labels, 4, 1.0)


@pytest.mark.parametrize("update", ["none", "class-weights"])
def test_the_baselines_weigh_each_class_by_its_inverse_training_frequency_with_mean_one(update):
    """``none`` is the publication's baseline (class-proportion weights); ``oversample`` balances by drawing instead."""
    labels = np.array([0, 0, 0, 1, 2, 2])  # N = 6, K = 3: N_c = 3, 1, 2
    layer = LabelCorrection(labels, row_of=np.arange(6), n_classes=3)
    y = np.tile(np.array([[0.5, 0.3, 0.2]], np.float32), (6, 1))
    out = np.concatenate([y, ops.convert_to_numpy(layer(np.arange(6, dtype=np.int64)))], axis=1)
    y_true = np.eye(3, dtype=np.float32)[labels]
    ce = -np.log(y[np.arange(6), labels])
    weights = 6 / (3 * np.array([3, 1, 2]))[labels]  # N / (K · N_c)
    assert weights.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(ops.convert_to_numpy(update_loss(3, update)(y_true, out)), ce * weights, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(update_loss(3, "oversample")(y_true, out)), ce, rtol=1e-5)
    with pytest.raises(EmorefineError, match="Received: update='plain'"):
        update_loss(3, "plain")


class _Started(Exception):
    """Raised by a stand-in LabelCorrection: the test has what it wanted, nothing trains."""


def _noisy_manifest(n_per_fold=8, segments=2, n_classes=4, n_folds=3):
    """A records manifest without shards on disk: fold-major utterances of ``segments`` segments each."""
    from emotion_refinery.records.manifest import RecordsManifest

    utterances, shards = [], []
    for fold in range(n_folds):
        first = len(utterances) * segments
        for _ in range(n_per_fold):
            index = len(utterances)
            utterances.append({"id": f"u{index}", "index": index, "label_index": index % n_classes,
                               "label": f"c{index % n_classes}", "fold": fold, "segments": segments,
                               "first_segment": index * segments})
        shards.append({"fold": fold, "segments": n_per_fold * segments, "first_segment": first})
    return RecordsManifest("unused", {"classes": [f"c{c}" for c in range(n_classes)], "utterances": utterances,
                                      "shards": shards, "folds": {"n_folds": n_folds}})


def _capture_labels(monkeypatch):
    from emotion_refinery.models import layers

    seen = {}

    def stand_in(labels, row_of, n_classes, **kwargs):
        seen.update(labels=np.asarray(labels), row_of=np.asarray(row_of))
        raise _Started

    monkeypatch.setattr(layers, "LabelCorrection", stand_in)
    return seen


def test_the_lcw_rule_starts_its_weights_from_the_noisy_labels_training_sees(monkeypatch):
    """refine --rule lcw --label-noise: the contribution weights (K · N_c / N of each row's class) start from the
    flipped labels the split trains on, not from the records' true labels."""
    from emotion_refinery.data.label_noise import training_labels
    from emotion_refinery.refine import training
    from emotion_refinery.refine.settings import RefineConfig

    manifest = _noisy_manifest()
    config = RefineConfig(rule="lcw", rounds=2, backbone="small", label_noise=0.3, seed=1)
    noisy = training_labels(manifest, 0.3, 1)
    table = manifest.segment_table()
    monkeypatch.setattr(training, "_segment_model", lambda *a, **k: None)  # nothing is built or read
    monkeypatch.setattr(training, "training_dataset", lambda *a, **k: None)
    seen = _capture_labels(monkeypatch)

    def fold_targets(fold):
        lo, hi = manifest.fold_segments(fold)
        return np.eye(4, dtype=np.float32)[noisy[table["utterance"][lo:hi]]]

    with pytest.raises(_Started):
        training._fit_lcw(manifest, None, config, seed=0, train_folds=[0, 1], val_fold=2, train_labels=None,
                          val_labels=None, exclude_folds=(2,), normalize=None, logs_dir=None, end_callbacks=[],
                          name="x", verbose=0, log=lambda s: None, tasks_left=None, fold_targets=fold_targets)
    rows = np.flatnonzero(table["fold"] < 2)
    np.testing.assert_array_equal(seen["row_of"][rows], np.arange(len(rows)))
    np.testing.assert_array_equal(seen["labels"], noisy[table["utterance"][rows]])
    assert (seen["labels"] != table["label"][rows]).any()  # the planted noise reaches the training folds


def test_the_lcw_command_starts_its_labels_and_weights_from_the_noisy_labels_training_sees(monkeypatch):
    from emotion_refinery.data.folds import split_folds
    from emotion_refinery.data.label_noise import training_labels
    from emotion_refinery.methods import lcw as lcw_run

    manifest = _noisy_manifest()
    config = lcw_run.LCWConfig(epochs=2, label_noise=0.3, seed=1)
    noisy = training_labels(manifest, 0.3, 1)
    monkeypatch.setattr(lcw_run, "fold_model", lambda *a, **k: None)
    seen = _capture_labels(monkeypatch)
    with pytest.raises(_Started):
        lcw_run._train_fold(manifest, None, config, 0, log=lambda s: None)
    train_folds, _ = split_folds(manifest.n_folds, 0)
    train = np.array([u["index"] for u in manifest.utterances if u["fold"] in train_folds])
    np.testing.assert_array_equal(seen["labels"], noisy[train])
    assert (seen["labels"] != np.array([u["label_index"] for u in manifest.utterances])[train]).any()
