"""Training-time augmentation (SpecAugment-style masks, mixup) and the strided, fully shuffled training pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.synthetic import make_corpus
from emotion_refinery.errors import RecordsError
from emotion_refinery.records.augment import freq_shift, make_augment, mixup, spec_augment
from emotion_refinery.records.build import build_records
from emotion_refinery.records.datasets import count_training_segments, training_dataset
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir


def _batch(n=16, frames=32, bands=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(-40, 10, (n, frames, bands)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]
    return tf.constant(x), tf.constant(y)


def test_spec_augment_masks_spans_with_the_segment_mean_and_nothing_else():
    x, y = _batch()
    out, y2 = spec_augment(time_masks=2, time_width=4, freq_masks=2, freq_width=8)(x, y, tf.constant([1, 2], tf.int64))
    out, x = out.numpy(), x.numpy()
    assert np.array_equal(y2.numpy(), y.numpy())
    changed = out != x
    mean = x.mean(axis=(1, 2), keepdims=True)
    assert np.allclose(out[changed], np.broadcast_to(mean, x.shape)[changed])
    for i in range(len(x)):
        # A masked cell lies on a masked frame (whole row) or a masked band (whole column).
        rows = np.flatnonzero(changed[i].all(axis=1))
        cols = np.flatnonzero(changed[i].all(axis=0))
        expected = np.zeros_like(changed[i])
        expected[rows, :] = True
        expected[:, cols] = True
        assert np.array_equal(changed[i], expected)
        assert len(rows) <= 2 * 4 and len(cols) <= 2 * 8
    assert changed.any()


def test_spec_augment_is_reproducible_from_its_seed_and_varies_with_it():
    x, y = _batch()
    fn = spec_augment()
    a = fn(x, y, tf.constant([3, 4], tf.int64))[0].numpy()
    b = fn(x, y, tf.constant([3, 4], tf.int64))[0].numpy()
    c = fn(x, y, tf.constant([5, 6], tf.int64))[0].numpy()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def _shifts(shifted, segment, bound):
    """The shifts in [-bound, bound] under which ``shifted`` is ``segment`` with its Mel bands moved."""
    bands = segment.shape[1]
    return [s for s in range(-bound, bound + 1)
            if np.array_equal(shifted, segment[:, np.clip(np.arange(bands) - s, 0, bands - 1)])]


def test_freq_shift_moves_each_segments_bands_by_one_whole_shift_within_the_bound():
    x, y = _batch(n=64)
    out, y2 = freq_shift(2)(x, y, tf.constant([9, 1], tf.int64))
    out, x = out.numpy(), x.numpy()
    assert np.array_equal(y2.numpy(), y.numpy())
    shifts = []
    for i in range(len(x)):
        fits = _shifts(out[i], x[i], 2)
        assert len(fits) == 1  # every segment is its own bands under exactly one shift in [-2, 2]
        shifts.append(fits[0])
    assert set(shifts) == {-2, -1, 0, 1, 2}  # 64 segments draw every shift
    again = freq_shift(2)(tf.constant(x), y, tf.constant([9, 1], tf.int64))[0].numpy()
    assert np.array_equal(again, out)


def test_mixup_makes_convex_combinations_of_pairs_of_examples():
    x, y = _batch(n=32)
    xm, ym = mixup(0.4)(x, y, tf.constant([7, 8], tf.int64))
    xm, ym, x, y = xm.numpy(), ym.numpy(), x.numpy(), y.numpy()
    assert np.allclose(ym.sum(axis=1), 1.0, atol=1e-6)
    assert ym.min() >= 0 and not np.array_equal(ym, y)
    for i in range(len(x)):
        # Each mixed example is λ·x_i + (1 − λ)·x_j for one partner j, with λ read off the targets' own class.
        fits = []
        for j in range(len(x)):
            d = x[i] - x[j]
            lam = 1.0 if not d.any() else float(((xm[i] - x[j]) * d).sum() / (d * d).sum())
            fits.append(np.abs(lam * x[i] + (1 - lam) * x[j] - xm[i]).max())
        assert min(fits) < 1e-3


def test_no_augmentation_is_none():
    assert make_augment() is None


def test_the_augment_chain_applies_the_chosen_steps_in_order_each_with_its_own_seed():
    x, y = _batch()
    seed = tf.constant([11, 12], tf.int64)

    def step_seed(i):
        return tf.random.experimental.stateless_fold_in(seed, i)

    out, y_out = make_augment(freq_shift_bands=2)(x, y, seed)
    want, _ = freq_shift(2)(x, y, step_seed(0))
    assert np.array_equal(out.numpy(), want.numpy()) and np.array_equal(y_out.numpy(), y.numpy())
    assert not np.array_equal(out.numpy(), x.numpy())

    # All three: frequency shift, then SpecAugment masks, then mixup (which alone changes the targets).
    out, y_out = make_augment(spec_augment_masks=True, freq_shift_bands=2, mixup_alpha=0.2)(x, y, seed)
    want, y_want = freq_shift(2)(x, y, step_seed(0))
    want, y_want = spec_augment()(want, y_want, step_seed(1))
    want, y_want = mixup(0.2)(want, y_want, step_seed(2))
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(y_out.numpy(), y_want.numpy(), rtol=0, atol=1e-6)
    assert not np.array_equal(y_out.numpy(), y.numpy())


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment-corpus")
    csv = make_corpus(root, per_class=2, seed=5)
    out = tmp_path_factory.mktemp("augment-records") / "rec"
    build_records(root, out, corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=4), n_folds=2, workers=1)
    manifest = RecordsManifest.load(out)
    run = RunDir(tmp_path_factory.mktemp("augment-run"))
    table = manifest.segment_table()
    for k in range(manifest.n_folds):
        lo, hi = manifest.fold_segments(k)
        run.write_labels(0, manifest, k, np.eye(len(manifest.classes), dtype=np.float32)[table["label"][lo:hi]])
    return manifest, run


@pytest.mark.parametrize("stride", [1, 3])
def test_strided_training_set_holds_every_stride_th_segment_of_each_utterance_once(records, stride):
    manifest, run = records
    ds = training_dataset(manifest, labels_dir=run.labels_dir(0), folds=[0, 1], batch_size=7, seed=0, stride=stride)
    x = np.concatenate([b[0].numpy() for b in ds])[..., 0]
    expected = np.concatenate([manifest.read_utterance(u["id"])[::stride] for u in manifest.utterances])
    assert len(x) == count_training_segments(manifest, [0, 1], stride) == len(expected)
    assert ds.cardinality().numpy() == -(-len(expected) // 7)
    # Same multiset of segments (the order is shuffled): compare sorted row digests.
    def digest(a):
        return np.sort(a.reshape(len(a), -1).astype(np.float64) @ np.linspace(1, 2, a[0].size))

    assert np.allclose(digest(x), digest(expected.astype(np.float32)))


def test_indexed_batches_augment_the_segments_and_keep_their_index_and_targets(records):
    """lcw's batches carry each segment's index: an augmentation changes the segments only."""
    manifest, run = records
    kwargs = dict(labels_dir=run.labels_dir(0), folds=[0, 1], batch_size=5, shuffle=False, with_index=True)
    plain = list(training_dataset(manifest, **kwargs))
    shifted = list(training_dataset(manifest, augment=make_augment(freq_shift_bands=3), seed=4, **kwargs))
    assert len(plain) == len(shifted)
    changed = 0
    for (a, ya), (b, yb) in zip(plain, shifted):
        assert np.array_equal(a["row"].numpy(), b["row"].numpy()) and np.array_equal(ya.numpy(), yb.numpy())
        xa, xb = a["segments"].numpy()[..., 0], b["segments"].numpy()[..., 0]
        for i in range(len(xa)):  # each segment is its own bands under one shift in [-3, 3]
            assert _shifts(xb[i], xa[i], 3)
        changed += int(not np.array_equal(xa, xb))
    assert changed > 0


def test_speed_perturbation_scales_tempo_and_pitch_of_a_spectrogram():
    from emotion_refinery.records.augment import speed_perturb

    x = np.full((100, 400), -5.0, np.float32)
    x[:, 100] = 10.0  # a 1 kHz tone on 10 Hz bins
    x[:40, 300] = 8.0  # a 3 kHz tone over the first 40 frames
    assert np.array_equal(speed_perturb(tf.constant(x.astype(np.float16)), 1.0).numpy(), x.astype(np.float16))
    for factor in (0.9, 1.1):
        y = speed_perturb(tf.constant(x.astype(np.float16)), factor).numpy()
        assert y.dtype == np.float16 and y.shape == (round(100 / factor), 400)
        assert int(np.argmax(y.mean(axis=0))) == round(100 * factor)  # the tone moves with the speed
        onset = np.flatnonzero(y[:, round(300 * factor)] > 0)
        assert abs(len(onset) - 40 / factor) <= 1.5  # and the 3 kHz stretch lasts 1 / factor as long
    slow = speed_perturb(tf.constant(x), 0.9).numpy()
    np.testing.assert_array_equal(slow[:, -1], slow[:, 361])  # bins above 4 kHz·0.9 repeat the top one


def test_speed_perturbed_epochs_hold_every_utterance_at_each_speed(tmp_path):
    from emotion_refinery.records.datasets import sequence_dataset

    root = tmp_path / "c"
    csv = make_corpus(root, per_class=2, seed=2)
    build_records(root, tmp_path / "rec", corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=16),
                  n_folds=2, workers=1, sequences="spectrogram")
    manifest = RecordsManifest.load(tmp_path / "rec")
    plain = {int(u): int(m.sum()) for x, _ in sequence_dataset(manifest, folds=[0, 1], batch_size=2)
             for u, m in zip(x["utt"].numpy(), x["mask"].numpy())}
    ds = sequence_dataset(manifest, folds=[0, 1], batch_size=2, shuffle=True, speeds=(0.9, 1.0, 1.1))
    seen = sorted((int(u), int(m.sum())) for x, _ in ds for u, m in zip(x["utt"].numpy(), x["mask"].numpy()))
    expected = sorted((u, max(1, round(n / f))) for u, n in plain.items() for f in (0.9, 1.0, 1.1))
    assert seen == expected and ds.cardinality().numpy() == -(-3 * len(plain) // 2)
    with pytest.raises(RecordsError, match="--sequences spectrogram"):
        build_records(root, tmp_path / "mel", corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=16),
                      n_folds=2, workers=1, sequences="log-mel")
        sequence_dataset(RecordsManifest.load(tmp_path / "mel"), folds=[0], speeds=(0.9, 1.1))
