"""tf.data pipelines over the records: training (features zipped with a round's label shards) and evaluation.

Training order, fixed: list shard pairs → interleave → parse (in batches) → cache →
shuffle → batch → prefetch. Evaluation keeps the stored order and every example.
Segments stay in their stored dtype (float16 by default) until batched, so the
in-memory cache takes half the memory of float32.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from emotion_refinery.manifest import RecordsManifest
from tf_records.schema import INDEX, SEGMENT, TARGET, TargetSpec

__all__ = ["CACHE_MODES", "training_dataset", "evaluation_dataset", "shard_pairs", "count_segments"]

CACHE_MODES = ("memory", "none")
_PARSE_BATCH = 1024


def shard_pairs(manifest: RecordsManifest, labels_dir: str | os.PathLike, folds: Sequence[int]) -> list[tuple[str, str]]:
    """(feature shard, label shard) paths of ``folds``, in manifest order; a label shard has the feature shard's name."""
    return [(str(manifest.shard_path(s)), str(Path(labels_dir) / Path(s["path"]).name))
            for s in manifest.shards if s["fold"] in set(folds)]


def count_segments(manifest: RecordsManifest, folds: Sequence[int]) -> int:
    return sum(s["segments"] for s in manifest.shards if s["fold"] in set(folds))


def _parse_pair(spec, target_spec: TargetSpec):
    def parse(features, labels):
        x = spec.parse(features, as_float32=False)
        y = target_spec.parse(labels)
        # Label shards align one-to-one with feature shards; a misaligned pair fails loudly.
        check = tf.debugging.assert_equal(x[INDEX], y[INDEX], message="label shard out of step with feature shard")
        with tf.control_dependencies([check]):
            return tf.identity(x[SEGMENT]), y[TARGET]
    return parse


def training_dataset(
    manifest: RecordsManifest,
    *,
    labels_dir: str | os.PathLike,
    folds: Sequence[int],
    batch_size: int = 128,
    seed: int = 0,
    cache: str = "memory",
    shuffle_buffer: int | None = None,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Shuffled ``(x, y)`` batches of the segments of ``folds``: x float32 ``(b, frames, n_mels, 1)``, y ``(b, K)``.

    Args:
        labels_dir: folder of the round's label shards (named as the feature shards).
        shuffle_buffer: examples in the shuffle buffer (default: the largest shard, at least 8,192).
        cache: ``"memory"`` keeps the parsed segments in memory after the first epoch.
    """
    pairs = shard_pairs(manifest, labels_dir, folds)
    spec, target_spec = manifest.spec, TargetSpec(len(manifest.classes))
    buffer = shuffle_buffer or max(8192, max(s["segments"] for s in manifest.shards))
    files = tf.data.Dataset.from_tensor_slices(tuple(map(list, zip(*pairs))))
    ds = files.interleave(
        lambda f, l: tf.data.Dataset.zip((tf.data.TFRecordDataset(f), tf.data.TFRecordDataset(l))),
        cycle_length=min(4, len(pairs)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(_PARSE_BATCH).map(_parse_pair(spec, target_spec), num_parallel_calls=tf.data.AUTOTUNE,
                                     deterministic=True).unbatch()
    if cache == "memory":
        ds = ds.cache()
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if repeat:
        ds = ds.repeat()
    else:  # tell Keras the epoch length up front (unbatch hides it)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-count_segments(manifest, folds) // batch_size)))
    return ds.map(_to_model_input, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _to_model_input(x, y):
    return tf.cast(x, tf.float32)[..., tf.newaxis], y


def evaluation_dataset(manifest: RecordsManifest, *, folds: Sequence[int], labels_dir: str | os.PathLike | None = None,
                       batch_size: int = 512) -> tf.data.Dataset:
    """Batches of the segments of ``folds`` in stored order, nothing dropped.

    Without ``labels_dir`` each element is x float32 ``(b, frames, n_mels, 1)``; with it, ``(x, y)``
    (y the round's targets), e.g. as validation data.
    """
    spec = manifest.spec
    batches = -(-count_segments(manifest, folds) // batch_size)
    if labels_dir is None:
        paths = [str(manifest.shard_path(s)) for s in manifest.shards if s["fold"] in set(folds)]
        ds = tf.data.TFRecordDataset(paths).batch(batch_size)
        ds = ds.map(lambda r: spec.parse(r)[SEGMENT][..., tf.newaxis], num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    else:
        f, l = map(list, zip(*shard_pairs(manifest, labels_dir, folds)))
        ds = tf.data.Dataset.zip((tf.data.TFRecordDataset(f), tf.data.TFRecordDataset(l))).batch(batch_size)
        ds = ds.map(_parse_pair(spec, TargetSpec(len(manifest.classes))), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True).map(_to_model_input)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


def stored_labels_one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot float32 rows ``(n, n_classes)`` of class indices ``labels``."""
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out
