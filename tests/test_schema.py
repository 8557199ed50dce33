"""The TFRecord layer: example encoding, framing, parsing and integrity checks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_records import reader
from tf_records.atomic import atomic_path, remove_leftovers
from tf_records.schema import SegmentSpec, TargetSpec
from tf_records.writer import ShardWriter, sha256_file


def _tf_example(segment: np.ndarray, utt, pos, idx, label) -> bytes:
    f = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "segment": f(bytes_list=tf.train.BytesList(value=[segment.tobytes()])),
        "utt": f(int64_list=tf.train.Int64List(value=[utt])),
        "pos": f(int64_list=tf.train.Int64List(value=[pos])),
        "idx": f(int64_list=tf.train.Int64List(value=[idx])),
        "label": f(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString(deterministic=True)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("ints", [(0, 0, 0, 0), (534, 900, 131052, 6), (2**31, 127, 128, 2**40 + 3)])
def test_segment_encoding_equals_tensorflows_proto(dtype, ints):
    spec = SegmentSpec(dtype=dtype)
    seg = np.random.default_rng(0).standard_normal((32, 64)).astype(dtype)
    utt, pos, idx, label = ints
    ours = spec.encode(seg, utterance=utt, position=pos, index=idx, label=label)
    assert ours == _tf_example(seg, utt, pos, idx, label)


def test_parse_round_trip_keeps_values_and_order():
    spec = SegmentSpec(segment_frames=32, n_mels=8)
    rng = np.random.default_rng(1)
    segs = rng.standard_normal((5, 32, 8)).astype(np.float16)
    records = [spec.encode(s, utterance=9, position=i, index=100 + i, label=3) for i, s in enumerate(segs)]
    parsed = spec.parse(tf.constant(records))
    np.testing.assert_array_equal(parsed["segment"].numpy(), segs.astype(np.float32))
    assert parsed["pos"].numpy().tolist() == [0, 1, 2, 3, 4]
    assert parsed["idx"].numpy().tolist() == [100, 101, 102, 103, 104]
    assert set(parsed["utt"].numpy()) == {9} and set(parsed["label"].numpy()) == {3}


def test_segment_shape_is_checked():
    with pytest.raises(ValueError, match=r"shape=\(31, 64\)"):
        SegmentSpec().encode(np.zeros((31, 64)), utterance=0, position=0, index=0, label=0)


def test_target_round_trip():
    spec = TargetSpec(n_classes=4)
    target = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    parsed = spec.parse(tf.constant([spec.encode(target, index=77)]))
    assert parsed["idx"].numpy().tolist() == [77]
    np.testing.assert_array_equal(parsed["target"].numpy()[0], target)


def test_shard_writer_bytes_equal_tensorflows_writer(tmp_path):
    records = [bytes([i]) * (i * 37 % 500) for i in range(50)]
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as w:
        for r in records:
            w.write(r)
    with ShardWriter(tmp_path / "ours.tfrecord") as ours:
        for r in records:
            ours.write(r)
    assert (tmp_path / "ours.tfrecord").read_bytes() == (tmp_path / "tf.tfrecord").read_bytes()
    assert ours.info.count == 50 and ours.info.sha256 == sha256_file(tmp_path / "ours.tfrecord")
    assert reader.count_records(tmp_path / "ours.tfrecord") == 50


def test_interrupted_writer_leaves_no_final_file(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "s.tfrecord") as w:
            w.write(b"abc")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "m.json") as tmp:
            tmp.write_text("{half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_remove_leftovers_deletes_only_temporaries(tmp_path):
    (tmp_path / "a.tfrecord.tmp-123").write_bytes(b"x")
    (tmp_path / "a.tfrecord").write_bytes(b"y")
    assert [p.name for p in remove_leftovers(tmp_path)] == ["a.tfrecord.tmp-123"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.tfrecord"]


def test_verify_shard_finds_flipped_byte_wrong_count_and_missing_file(tmp_path):
    spec = SegmentSpec(n_mels=8)
    path = tmp_path / "s.tfrecord"
    with ShardWriter(path) as w:
        for i in range(20):
            w.write(spec.encode(np.full((32, 8), i, np.float16), utterance=0, position=i, index=i, label=0))
    digest = w.info.sha256
    assert reader.verify_shard(path, count=20, sha256=digest, parse=spec.parse) == []
    assert any("holds 20 records" in p for p in reader.verify_shard(path, count=21, sha256=digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    problems = reader.verify_shard(path, count=20, sha256=digest, parse=spec.parse)
    assert any("unreadable" in p for p in problems) and any("sha256" in p for p in problems)
    assert reader.verify_shard(tmp_path / "gone.tfrecord", count=1, sha256=digest) == ["missing"]
