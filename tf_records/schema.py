"""The one place that knows the TFRecord example layouts, for writing and for parsing.

Two kinds of shard share a layout discipline — one ``tf.train.Example`` per segment,
in the same order in both:

* feature shards (``SegmentSpec``): the log-Mel segment as raw little-endian bytes
  (float16 or float32, shape ``(segment_frames, n_mels)``), the utterance index, the
  segment's position within its utterance, its global segment index and the label index;
* label shards (``TargetSpec``): the global segment index and a soft target of K floats.

Sequence shards (``SequenceSpec``, optional) hold one example per utterance instead: its
whole frame sequence (raw bytes, shape ``(n_frames, n_features)``), its frame count, the
utterance index and the label index, for models that read an utterance at once.

Examples are encoded directly in protobuf wire format, byte-identical to
``tf.train.Example.SerializeToString(deterministic=True)`` (keys sorted), which is
several times faster than building proto objects and needs no TensorFlow. Parsing
uses ``tf.io.parse_example``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

__all__ = ["SCHEMA_VERSION", "DTYPES", "SegmentSpec", "TargetSpec", "SequenceSpec", "FRAMES", "N_FRAMES", "SEGMENT",
           "UTTERANCE", "POSITION", "INDEX", "LABEL", "TARGET"]

SCHEMA_VERSION = 1

# Feature keys. Short keys keep a float16 segment record at about 4.2 kB.
SEGMENT = "segment"
UTTERANCE = "utt"
POSITION = "pos"
INDEX = "idx"
LABEL = "label"
TARGET = "target"
FRAMES = "frames"
N_FRAMES = "n_frames"
_INDEX, _LABEL, _POSITION, _UTTERANCE, _TARGET, _FRAMES, _N_FRAMES = (
    k.encode() for k in (INDEX, LABEL, POSITION, UTTERANCE, TARGET, FRAMES, N_FRAMES))

#: The storage types of segments and sequence frames (``build-records --dtype``), each with its little-endian
#: NumPy code. The one list: the feature settings and the command line take their names from here.
DTYPES = {"float16": "<f2", "float32": "<f4"}


def _storage_dtype(dtype: str) -> np.dtype:
    """The NumPy type of storage type ``dtype``; ValueError for a name not in :data:`DTYPES`."""
    if dtype not in DTYPES:
        raise ValueError(f"Received: dtype={dtype!r}; expected one of {', '.join(DTYPES)}")
    return np.dtype(DTYPES[dtype])


def _varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _SMALL_VARINTS[n]
    if n < 0:
        n += 1 << 64  # int64 two's complement, as protobuf encodes negative int64
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_VARINTS = [bytes([i]) for i in range(0x80)]


def _len_field(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2) with field number ``field``."""
    return bytes([field << 3 | 2]) + _varint(len(payload)) + payload


def _int64_entry(key: bytes, value: int) -> bytes:
    """A ``Features.feature`` map entry holding ``Feature(int64_list=Int64List(value=[value]))``.

    Written out flat because it is the hot path; every length is below 128, so one byte.
    Map entry: key = field 1, value = field 2; Feature.int64_list = field 3;
    Int64List.value = field 1, packed.
    """
    v = _varint(int(value))
    n = len(v)
    return b"".join((bytes((0x0A, len(key) + n + 8, 0x0A, len(key))), key,
                     bytes((0x12, n + 4, 0x1A, n + 2, 0x0A, n)), v))


def _entry(key: bytes, feature: bytes) -> bytes:
    return _len_field(1, _len_field(1, key) + _len_field(2, feature))


def _bytes_entry_prefix(key: bytes, size: int) -> bytes:
    """Everything of a bytes-feature map entry before its ``size`` payload bytes.

    Feature.bytes_list = field 1; BytesList.value = field 1.
    """
    value = _len_field(1, _len_field(1, b"\0" * size))
    return _entry(key, value)[: -size]


def _float_entry(key: bytes, values: bytes) -> bytes:
    # Feature.float_list = field 2; FloatList.value = field 1, packed little-endian float32.
    return _entry(key, _len_field(2, _len_field(1, values)))


def _example(entries: list[bytes]) -> bytes:
    """Example.features = field 1 around Features.feature entries, which must come sorted by key."""
    body = b"".join(entries)
    return b"\x0a" + _varint(len(body)) + body


@dataclasses.dataclass(frozen=True)
class SegmentSpec:
    """Layout of a feature-shard example: one log-Mel segment and its indices."""

    segment_frames: int = 32
    n_mels: int = 64
    dtype: str = "float16"

    def __post_init__(self) -> None:
        _storage_dtype(self.dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.segment_frames, self.n_mels)

    @property
    def numpy_dtype(self) -> np.dtype:
        return _storage_dtype(self.dtype)

    def encode(self, segment: np.ndarray, *, utterance: int, position: int, index: int, label: int) -> bytes:
        """Serialize one segment of shape ``(segment_frames, n_mels)`` (cast to the spec's dtype)."""
        if segment.shape != self.shape:
            raise ValueError(f"Expected a segment of shape {self.shape}. Received: shape={segment.shape}")
        raw = np.ascontiguousarray(segment, dtype=self.numpy_dtype).tobytes()
        # Keys in sorted order: idx, label, pos, segment, utt.
        return _example([
            _int64_entry(_INDEX, index),
            _int64_entry(_LABEL, label),
            _int64_entry(_POSITION, position),
            self._segment_prefix + raw,
            _int64_entry(_UTTERANCE, utterance),
        ])

    @functools.cached_property
    def _segment_prefix(self) -> bytes:
        return _bytes_entry_prefix(SEGMENT.encode(), self.numpy_dtype.itemsize * self.segment_frames * self.n_mels)

    def parse(self, serialized, *, as_float32: bool = True):
        """Parse a batch (a string tensor of shape ``(batch,)``) → dict of tensors.

        ``segment`` comes back of shape ``(batch, segment_frames, n_mels)``, as float32 (or in
        the stored dtype with ``as_float32=False``, e.g. to cache float16 in memory);
        ``utt``, ``pos``, ``idx``, ``label`` as int64 of shape ``(batch,)``.
        """
        import tensorflow as tf

        parsed = tf.io.parse_example(serialized, {
            SEGMENT: tf.io.FixedLenFeature([], tf.string),
            UTTERANCE: tf.io.FixedLenFeature([], tf.int64),
            POSITION: tf.io.FixedLenFeature([], tf.int64),
            INDEX: tf.io.FixedLenFeature([], tf.int64),
            LABEL: tf.io.FixedLenFeature([], tf.int64),
        })
        raw = tf.io.decode_raw(parsed[SEGMENT], tf.float16 if self.dtype == "float16" else tf.float32,
                               little_endian=True)
        segments = tf.reshape(raw, (-1, *self.shape))
        parsed[SEGMENT] = tf.cast(segments, tf.float32) if as_float32 else segments
        return parsed


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    """Layout of a label-shard example: a segment's global index and its soft target (K floats)."""

    n_classes: int

    def encode(self, target: np.ndarray, *, index: int) -> bytes:
        target = np.asarray(target)
        if target.shape != (self.n_classes,):
            raise ValueError(f"Expected a target of shape ({self.n_classes},). Received: shape={target.shape}")
        # Keys in sorted order: idx, target.
        return _example([_int64_entry(_INDEX, index), _float_entry(_TARGET, target.astype("<f4").tobytes())])

    def parse(self, serialized):
        """Parse a batch → ``{"idx": int64 (batch,), "target": float32 (batch, K)}``."""
        import tensorflow as tf

        return tf.io.parse_example(serialized, {
            INDEX: tf.io.FixedLenFeature([], tf.int64),
            TARGET: tf.io.FixedLenFeature([self.n_classes], tf.float32),
        })


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
    """Layout of a sequence-shard example: one utterance's frames ``(n_frames, n_features)`` and its indices."""

    n_features: int = 64
    dtype: str = "float16"

    def __post_init__(self) -> None:
        _storage_dtype(self.dtype)

    @property
    def numpy_dtype(self) -> np.dtype:
        return _storage_dtype(self.dtype)

    def encode(self, frames: np.ndarray, *, utterance: int, label: int) -> bytes:
        """Serialize one utterance's frames of shape ``(n_frames, n_features)`` (cast to the spec's dtype)."""
        if frames.ndim != 2 or frames.shape[1] != self.n_features or len(frames) == 0:
            raise ValueError(f"Expected frames of shape (n_frames > 0, {self.n_features}). "
                             f"Received: shape={frames.shape}")
        raw = np.ascontiguousarray(frames, dtype=self.numpy_dtype).tobytes()
        # Keys in sorted order: frames, label, n_frames, utt.
        return _example([
            _bytes_entry_prefix(_FRAMES, len(raw)) + raw,
            _int64_entry(_LABEL, label),
            _int64_entry(_N_FRAMES, len(frames)),
            _int64_entry(_UTTERANCE, utterance),
        ])

    def parse(self, serialized, *, as_float32: bool = True):
        """Parse a batch (a string tensor of shape ``(batch,)``) → dict of tensors.

        ``frames`` comes back as a ``tf.RaggedTensor`` of shape ``(batch, None, n_features)`` (float32,
        or the stored dtype with ``as_float32=False``); ``n_frames``, ``utt``, ``label`` as int64
        ``(batch,)``. A frames field whose size disagrees with its ``n_frames`` fails the parse.
        """
        import tensorflow as tf

        parsed = tf.io.parse_example(serialized, {
            FRAMES: tf.io.FixedLenFeature([], tf.string),
            N_FRAMES: tf.io.FixedLenFeature([], tf.int64),
            UTTERANCE: tf.io.FixedLenFeature([], tf.int64),
            LABEL: tf.io.FixedLenFeature([], tf.int64),
        })
        item = self.numpy_dtype.itemsize * self.n_features
        check = tf.debugging.assert_equal(tf.cast(tf.strings.length(parsed[FRAMES]), tf.int64),
                                          parsed[N_FRAMES] * item, message="frames size disagrees with n_frames")
        with tf.control_dependencies([check]):
            raw = tf.io.decode_raw(tf.strings.reduce_join(parsed[FRAMES]),
                                   tf.float16 if self.dtype == "float16" else tf.float32, little_endian=True)
        values = tf.reshape(raw, (-1, self.n_features))
        frames = tf.RaggedTensor.from_row_lengths(tf.cast(values, tf.float32) if as_float32 else values,
                                                  parsed[N_FRAMES])
        parsed[FRAMES] = frames
        return parsed
