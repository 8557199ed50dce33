"""Sharded, atomic TFRecord writing.

Records are framed as TFRecord defines it — ``uint64 length``, ``uint32 masked
crc32c(length)``, ``data``, ``uint32 masked crc32c(data)``, little-endian — with the
CRC from ``google-crc32c``. The bytes equal those of ``tf.io.TFRecordWriter`` (the
tests compare them), and writing needs no TensorFlow, so worker processes can write
shards in parallel without loading it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from pathlib import Path

import google_crc32c

from tf_records.atomic import TMP_MARK

__all__ = ["ShardInfo", "ShardWriter", "shard_name", "sha256_file", "frame_record"]

_MASK_DELTA = 0xA282EAD8


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF)


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, _masked_crc(length), data, _masked_crc(data)))


def shard_name(prefix: str, *, fold: int, index: int, count: int) -> str:
    """File name of shard ``index`` of ``count`` in fold ``fold``: ``features-f03-00001-of-00004.tfrecord``."""
    return f"{prefix}-f{fold:02d}-{index:05d}-of-{count:05d}.tfrecord"


def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """A finished shard: where it is, how many records it holds, its size and sha256."""

    path: Path
    count: int
    size: int
    sha256: str


class ShardWriter:
    """Write one shard under a temporary name and rename it into place on :meth:`close`.

    Use as a context manager; if the block raises, the temporary file is removed
    and nothing carries the final name::

        with ShardWriter(path) as w:
            for record in records:
                w.write(record)
        info = w.info
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f"{self.path.name}{TMP_MARK}{os.getpid()}")
        self._file = open(self._tmp, "wb", buffering=1 << 20)
        self._digest = hashlib.sha256()
        self._count = 0
        self._size = 0
        self.info: ShardInfo | None = None

    def write(self, record: bytes) -> None:
        framed = frame_record(record)
        self._file.write(framed)
        self._digest.update(framed)
        self._count += 1
        self._size += len(framed)

    def close(self) -> ShardInfo:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        self.info = ShardInfo(self.path, self._count, self._size, self._digest.hexdigest())
        return self.info

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
