"""Reading shards back: ordered example streams and integrity checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from tf_records.writer import sha256_file

__all__ = ["ordered_batches", "read_targets", "count_records", "verify_shard"]


def ordered_batches(paths: Sequence[str | os.PathLike], parse: Callable, *, batch_size: int = 1024):
    """A ``tf.data.Dataset`` of parsed batches of every record of ``paths``, in file order.

    Evaluation-style reading: no shuffling, nothing dropped.
    """
    import tensorflow as tf

    ds = tf.data.TFRecordDataset([os.fspath(p) for p in paths], num_parallel_reads=None)
    return ds.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)


def read_targets(paths: Sequence[str | os.PathLike], n_classes: int):
    """Every record of the label shards ``paths`` in file order: ``(targets (n, K) float32, indices (n,))``."""
    import numpy as np

    from tf_records.schema import INDEX, TARGET, TargetSpec

    parts, order = [], []
    for batch in ordered_batches(paths, TargetSpec(n_classes).parse, batch_size=8192):
        parts.append(batch[TARGET].numpy())
        order.append(batch[INDEX].numpy())
    if not parts:
        return np.zeros((0, n_classes), np.float32), np.zeros(0, np.int64)
    return np.concatenate(parts), np.concatenate(order)


def count_records(path: str | os.PathLike) -> int:
    """Number of records in a shard; reading checks every record's CRCs.

    Raises:
        tf.errors.DataLossError: a record is truncated or fails its checksum.
    """
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(os.fspath(path), buffer_size=1 << 22).batch(4096)
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, batch: n + tf.size(batch, out_type=tf.int64)).numpy())


def verify_shard(
    path: str | os.PathLike,
    *,
    count: int,
    sha256: str,
    parse: Callable | None = None,
) -> list[str]:
    """Re-read a shard and return what is wrong with it (an empty list when it is sound).

    Checks, in order: the file exists; every record's CRCs and the record count; that
    every record parses with ``parse`` (if given); the file's sha256.
    """
    import tensorflow as tf

    if not os.path.isfile(path):
        return ["missing"]
    problems = []
    try:
        if parse is None:
            found = count_records(path)
        else:  # one pass: reading checks the CRCs, parsing checks the layout
            def parse_and_count(serialized):
                # Count through every parsed output, so no parsing op is pruned from the graph.
                parsed = list(parse(serialized).values())
                return tf.add_n([tf.shape(v, out_type=tf.int64)[0] for v in parsed]) // len(parsed)

            ds = tf.data.TFRecordDataset(os.fspath(path), buffer_size=1 << 22).batch(4096).map(parse_and_count)
            found = int(ds.reduce(tf.constant(0, tf.int64), lambda n, k: n + k).numpy())
        if found != count:
            problems.append(f"holds {found} records; the manifest says {count}")
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        problems.append(f"unreadable: {e.message.splitlines()[0] if getattr(e, 'message', '') else e}")
    digest = sha256_file(path)
    if digest != sha256:
        problems.append(f"sha256 {digest[:12]}… differs from the manifest's {sha256[:12]}…")
    return problems
