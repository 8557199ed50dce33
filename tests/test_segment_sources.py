"""Segments cut on the fly from the log-Mel sequence shards (`--segments-from sequences`) are the stored segments,
bit for bit: the same windows, targets, indices and per-speaker normalisation, with frames cached instead of
segments."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.synthetic import make_corpus
from emotion_refinery.errors import EmorefineError, RecordsError
from emotion_refinery.records.build import build_records
from emotion_refinery.records.datasets import evaluation_dataset, sequence_segments, training_dataset
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from emotion_refinery.records.speaker_norm import speaker_tables
from emotion_refinery.refine.rounds import refine
from emotion_refinery.refine.settings import RefineConfig


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources-corpus")
    csv = make_corpus(root, per_class=3, seed=3)
    out = tmp_path_factory.mktemp("sources-records") / "rec"
    # Small shards, so that a fold spans several and the segment path interleaves them.
    build_records(root, out, corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=2), n_folds=3,
                  workers=1, sequences="log-mel", shard_segments=300)
    manifest = RecordsManifest.load(out)
    run = RunDir(tmp_path_factory.mktemp("sources-run"))
    rng = np.random.default_rng(0)
    for k in range(manifest.n_folds):  # distinct soft targets per segment, so a misplaced one shows
        lo, hi = manifest.fold_segments(k)
        run.write_labels(0, manifest, k, rng.dirichlet(np.ones(len(manifest.classes)), hi - lo).astype(np.float32))
    return manifest, run


def _by_index(ds):
    """``{segment index: (segment bytes, target)}`` of indexed training batches, and the index order."""
    out, order = {}, []
    for x, y in ds:
        for i, seg, target in zip(x["row"].numpy(), x["segments"].numpy(), y.numpy()):
            assert int(i) not in out
            out[int(i)] = (seg.tobytes(), target.tobytes())
            order.append(int(i))
    return out, order


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("speaker_norm", [False, True])
def test_training_segments_from_sequences_are_the_stored_ones_bit_for_bit(records, stride, speaker_norm):
    manifest, run = records
    assert len([s for s in manifest.shards if s["fold"] in (0, 1)]) > 2
    normalize = speaker_tables(manifest) if speaker_norm else None
    kwargs = dict(labels_dir=run.labels_dir(0), folds=[0, 1], batch_size=16, stride=stride, normalize=normalize,
                  with_index=True, shuffle=False)
    stored, _ = _by_index(training_dataset(manifest, **kwargs))
    cut, order = _by_index(training_dataset(manifest, segments_from="sequences", **kwargs))
    assert cut == stored and len(cut) > 0
    assert order == sorted(order)  # unshuffled: the stored order
    assert all(u["segments"] > stride for u in manifest.utterances)  # strides really drop segments
    expected = {u["first_segment"] + p for u in manifest.utterances if u["fold"] in (0, 1)
                for p in range(0, u["segments"], stride)}
    assert set(cut) == expected


def test_shuffled_epochs_hold_every_segment_once_in_a_new_order(records):
    manifest, run = records
    ds = training_dataset(manifest, labels_dir=run.labels_dir(0), folds=[1, 2], batch_size=32, seed=7, stride=2,
                          with_index=True, segments_from="sequences", shuffle_buffer=64)
    first, order1 = _by_index(ds)
    second, order2 = _by_index(ds)
    stored, _ = _by_index(training_dataset(manifest, labels_dir=run.labels_dir(0), folds=[1, 2], batch_size=32,
                                           stride=2, with_index=True, shuffle=False))
    assert first == second == stored
    assert order1 != order2 and order1 != sorted(order1)
    again, order3 = _by_index(training_dataset(manifest, labels_dir=run.labels_dir(0), folds=[1, 2], batch_size=32,
                                               seed=7, stride=2, with_index=True, segments_from="sequences",
                                               shuffle_buffer=64))
    assert order3 == order1  # reproducible from the seed
    assert ds.cardinality().numpy() == -(-len(first) // 32)


def test_evaluation_from_sequences_predicts_the_same_segments_in_stored_order(records):
    manifest, run = records
    normalize = speaker_tables(manifest)
    for labels_dir in (None, run.labels_dir(0)):
        a = list(evaluation_dataset(manifest, folds=[2], labels_dir=labels_dir, batch_size=50, normalize=normalize))
        b = list(evaluation_dataset(manifest, folds=[2], labels_dir=labels_dir, batch_size=50, normalize=normalize,
                                    segments_from="sequences"))
        lo, hi = manifest.fold_segments(2)
        assert len(a) == len(b) == -(-(hi - lo) // 50)
        for p, q in zip(a, b):
            for u, v in zip(p if labels_dir else (p,), q if labels_dir else (q,)):
                assert u.dtype == v.dtype and np.array_equal(u.numpy(), v.numpy())


def test_sequences_without_log_mel_frames_and_unknown_sources_are_refused(records, tmp_path):
    manifest, run = records
    root = tmp_path / "c"
    csv = make_corpus(root, per_class=2, seed=1)
    build_records(root, tmp_path / "plain", corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=8),
                  n_folds=2, workers=1)
    plain = RecordsManifest.load(tmp_path / "plain")
    with pytest.raises(RecordsError, match=r"segments_from='sequences'.*absent.*--sequences log-mel"):
        training_dataset(plain, labels_dir=run.labels_dir(0), folds=[0], segments_from="sequences")
    with pytest.raises(RecordsError, match=r"Received: segments_from='frames'; expected one of segments, sequences"):
        evaluation_dataset(manifest, folds=[0], segments_from="frames")


def test_label_shards_out_of_step_are_refused(records, tmp_path):
    manifest, _ = records
    other = RunDir(tmp_path / "run")
    for k in range(manifest.n_folds):
        lo, hi = manifest.fold_segments(k)
        other.write_labels(0, manifest, k, np.zeros((hi - lo, len(manifest.classes)), np.float32))
    first, second = (other.labels_dir(0) / s["path"].split("/")[-1] for s in manifest.shards[:2])
    first.write_bytes(second.read_bytes())  # a shard's labels replaced by its neighbour's
    with pytest.raises(RecordsError, match="out of step"):
        sequence_segments(manifest, folds=[manifest.shards[0]["fold"]], labels_dir=other.labels_dir(0))


def test_refine_on_sequences_is_refused_without_log_mel_frames(tmp_path):
    root = tmp_path / "c"
    csv = make_corpus(root, per_class=3, seed=2)
    build_records(root, tmp_path / "rec", corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=8),
                  n_folds=3, workers=1)
    config = RefineConfig(rounds=1, backbone="small", epochs=1, segments_from="sequences")
    with pytest.raises(RecordsError, match=r"segments_from='sequences'.*--sequences log-mel.*segments_from='segments'"):
        refine(tmp_path / "rec", tmp_path / "run", config, log=lambda _: None)
    assert not (tmp_path / "run" / "rounds").exists()
    with pytest.raises(EmorefineError, match=r"Received: segments_from='shards'; expected one of segments, sequences"):
        RefineConfig(segments_from="shards")


@pytest.mark.slow  # trains
def test_refine_trains_and_predicts_from_sequences(records, tmp_path):
    """A run that reads every segment from the sequence shards: two rounds, the wdsl targets of round 1 written
    for every segment from round 0's predictions, which cover every segment."""
    manifest, _ = records
    config = RefineConfig(rounds=2, backbone="small", rule="wdsl", epochs=1, batch_size=64, bn_momentum=0.9,
                          seed=1, speaker_norm=True, train_stride=2, segments_from="sequences", targets="oof")
    report = refine(manifest.root, tmp_path / "run", config, log=lambda _: None)
    run = RunDir(tmp_path / "run")
    q = run.load_predictions(0, manifest)
    assert q.shape == (manifest.n_segments, len(manifest.classes)) and np.allclose(q.sum(axis=1), 1, atol=1e-5)
    given = np.eye(len(manifest.classes))[manifest.segment_table()["label"]]
    np.testing.assert_allclose(run.load_targets(1, manifest), 0.8 * q + 0.2 * given, atol=1e-6)
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    assert report["config"]["segments_from"] == "sequences"


def test_a_sequence_that_disagrees_with_the_records_segment_count_fails_loudly(records):
    import copy

    import tensorflow as tf

    manifest, _ = records
    wrong = RecordsManifest(manifest.root, copy.deepcopy(manifest.data))
    u = next(u for u in wrong.utterances if u["fold"] == 0)
    u["segments"] += 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="another number of segments than the records"):
        list(sequence_segments(wrong, folds=[0], labels_dir=None))
