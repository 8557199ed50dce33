"""tf.data pipelines over the records: training (features zipped with a round's label shards) and evaluation.

Training order, fixed: list shard pairs → interleave → parse (in batches) → keep every
``stride``-th segment of each utterance → cache → shuffle → batch → augment → prefetch.
Evaluation keeps the stored order and every example.
Segments stay in their stored dtype (float16 by default) until batched, so the
in-memory cache takes half the memory of float32.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from emotion_refinery.data.feature_config import SEGMENT_SOURCES
from emotion_refinery.errors import RecordsError
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import label_shard_path, read_label_shards
from tf_records.schema import FRAMES, INDEX, LABEL, N_FRAMES, POSITION, SEGMENT, TARGET, UTTERANCE, TargetSpec

__all__ = ["training_dataset", "evaluation_dataset", "sequence_segments", "SEQUENCE_SHUFFLE_BUFFER", "sequence_dataset",
           "sequence_statistics", "shard_pairs", "count_segments", "count_training_segments"]

_PARSE_BATCH = 1024

#: Segments in the shuffle buffer when they are cut from sequences (each epoch also shuffles the utterances).
SEQUENCE_SHUFFLE_BUFFER = 32768


def shard_pairs(manifest: RecordsManifest, labels_dir: str | os.PathLike,
                folds: Sequence[int]) -> list[tuple[str, str]]:
    """(feature shard, label shard) paths of ``folds``, in manifest order; a label shard has the feature shard's
    name."""
    return [(str(manifest.shard_path(s)), str(label_shard_path(labels_dir, s)))
            for s in manifest.shards if s["fold"] in set(folds)]


def count_segments(manifest: RecordsManifest, folds: Sequence[int]) -> int:
    return sum(s["segments"] for s in manifest.shards if s["fold"] in set(folds))


def count_training_segments(manifest: RecordsManifest, folds: Sequence[int], stride: int = 1) -> int:
    """Segments of ``folds`` at positions 0, ``stride``, 2·``stride``, … of each utterance."""
    return sum(-(-u["segments"] // stride) for u in manifest.utterances if u["fold"] in set(folds))


def _normalizer(normalize):
    """``f(parsed) -> segments``: the parsed batch's segments, shifted and scaled per utterance when asked."""
    if normalize is None:
        return lambda parsed: parsed[SEGMENT]
    shift, scale = (tf.constant(np.asarray(a, np.float32)) for a in normalize)

    def apply(parsed):
        x, utt = parsed[SEGMENT], parsed[UTTERANCE]
        z = (tf.cast(x, tf.float32) - tf.gather(shift, utt)[:, tf.newaxis]) / tf.gather(scale, utt)[:, tf.newaxis]
        return tf.cast(z, x.dtype)
    return apply


def _parse_pair(spec, target_spec: TargetSpec, *, with_position: bool = False, normalize=None,
                with_index: bool = False):
    segments = _normalizer(normalize)

    def parse(features, labels):
        x = spec.parse(features, as_float32=False)
        y = target_spec.parse(labels)
        # Label shards align one-to-one with feature shards; a misaligned pair fails loudly.
        check = tf.debugging.assert_equal(x[INDEX], y[INDEX], message="label shard out of step with feature shard")
        with tf.control_dependencies([check]):
            seg = tf.identity(segments(x))
            inputs = (seg, x[INDEX]) if with_index else seg
            if with_position:
                return inputs, y[TARGET], x[POSITION]
            return inputs, y[TARGET]
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
    stride: int = 1,
    augment=None,
    shuffle: bool = True,
    normalize: tuple[np.ndarray, np.ndarray] | None = None,
    with_index: bool = False,
    segments_from: str = "segments",
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Shuffled ``(x, y)`` batches of the segments of ``folds``: x float32 ``(b, frames, n_mels, 1)``, y ``(b, K)``.

    Args:
        labels_dir: folder of the round's label shards (named as the feature shards).
        shuffle_buffer: examples in the shuffle buffer (default: the whole training set, so every
            batch mixes utterances of every training fold).
        cache: ``"memory"`` keeps the parsed segments in memory after the first epoch.
        stride: keep the segments at positions 0, ``stride``, 2·``stride``, … of each utterance
            (records cut with a 1-frame hop train like records cut with a ``stride``-frame hop,
            while every segment can still be predicted).
        shuffle: ``False`` keeps the stored order (validation data: parsed once, then read from the cache).
        augment: ``augment(x, y, seed) -> (x, y)`` on float32 batches ``x (b, frames, n_mels)``,
            ``y (b, K)`` (see :mod:`emotion_refinery.records.augment`), or ``None``.
        normalize: ``(shift, scale)``, float32 ``(n_utterances, n_mels)``: a segment of utterance ``i``
            becomes ``(x - shift[i]) / scale[i]`` before caching (see :mod:`emotion_refinery.records.speaker_norm`).
        with_index: batches ``({"segments": x, "row": index}, y)`` with each segment's global index (for
            per-segment learned labels, :func:`emotion_refinery.models.label_correction.fit_lcw`); ``augment`` then
            changes the
            segments only (masks, frequency shift) and must not mix examples (mixup), whose targets the
            index would no longer name.
        segments_from: ``"segments"``, the segment shards; ``"sequences"``, segments cut on the fly from the
            log-Mel sequence shards (records built with ``--sequences log-mel``), bit for bit the stored ones
            (:func:`sequence_segments`). ``cache`` then keeps the utterances' frames (a segment-hop-th of the
            segments' bytes at ``segment_frames`` frames a segment); each epoch shuffles the utterances, then
            their segments in a buffer of ``shuffle_buffer`` (default :data:`SEQUENCE_SHUFFLE_BUFFER`).
        drop_remainder: leave out the last, partial batch of each epoch (data-parallel training over several
            replicas, :mod:`emotion_refinery.models.distribute`).
    """
    _check_segments_from(manifest, segments_from)
    n_examples = count_training_segments(manifest, folds, stride)
    if segments_from == "sequences":
        ds = sequence_segments(manifest, folds=folds, labels_dir=labels_dir, stride=stride, normalize=normalize,
                               with_index=with_index, cache=cache, shuffle=shuffle, seed=seed)
        if shuffle:
            ds = ds.shuffle(min(shuffle_buffer or SEQUENCE_SHUFFLE_BUFFER, max(n_examples, 1)), seed=seed,
                            reshuffle_each_iteration=True)
    else:
        ds = _segment_shards(manifest, folds=folds, labels_dir=labels_dir, stride=stride, normalize=normalize,
                             with_index=with_index, cache=cache)
        if shuffle:
            ds = ds.shuffle(shuffle_buffer or n_examples, seed=seed, reshuffle_each_iteration=True)
    return _batches(ds, n_examples, batch_size=batch_size, repeat=repeat, augment=augment, seed=seed,
                    with_index=with_index, drop_remainder=drop_remainder)


def _check_segments_from(manifest: RecordsManifest, segments_from: str) -> None:
    if segments_from not in SEGMENT_SOURCES:
        raise RecordsError(f"Received: segments_from={segments_from!r}; expected one of {', '.join(SEGMENT_SOURCES)}")
    if segments_from == "sequences" and manifest.data["settings"].get("sequences") != "log-mel":
        raise RecordsError(
            f"Received: segments_from='sequences' with records {str(manifest.root)!r} whose sequence shards are "
            f"{manifest.data['settings'].get('sequences') or 'absent'}; expected records built with "
            "`build-records --sequences log-mel` (the frames the segments are cut from)")


def _segment_shards(manifest: RecordsManifest, *, folds, labels_dir, stride, normalize, with_index, cache):
    """Unbatched ``(x, y)`` (or ``((x, index), y)``) of the segment shards of ``folds``, stored dtype, cached."""
    pairs = shard_pairs(manifest, labels_dir, folds)
    spec, target_spec = manifest.spec, TargetSpec(len(manifest.classes))
    files = tf.data.Dataset.from_tensor_slices(tuple(map(list, zip(*pairs))))
    ds = files.interleave(
        lambda segments, labels: tf.data.Dataset.zip((tf.data.TFRecordDataset(segments),
                                                      tf.data.TFRecordDataset(labels))),
        cycle_length=min(4, len(pairs)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(_PARSE_BATCH).map(_parse_pair(spec, target_spec, with_position=True, normalize=normalize,
                                                 with_index=with_index),
                                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    if stride > 1:
        ds = ds.filter(lambda x, y, pos: tf.equal(pos % stride, 0))
    ds = ds.map(lambda x, y, pos: (x, y))
    if cache == "memory":
        ds = ds.cache()
    return ds




def _sequence_utterances(manifest: RecordsManifest, folds, normalize, cache, as_float32: bool = False):
    """Unbatched ``(frames, utt)`` of the log-Mel sequence shards of ``folds`` in stored order (frames in the
    stored dtype, or float32; shifted and scaled per utterance as :func:`_normalizer` does with segments
    parsed the same way), cached."""
    spec = manifest.sequence_spec
    paths = [str(manifest.root / s["sequences"]["path"]) for s in manifest.shards if s["fold"] in set(folds)]
    ds = tf.data.TFRecordDataset(paths).batch(64).map(lambda r: spec.parse(r, as_float32=as_float32)).unbatch()
    if normalize is None:
        ds = ds.map(lambda p: (p[FRAMES], p[UTTERANCE]))
    else:
        shift, scale = (tf.constant(np.asarray(a, np.float32)) for a in normalize)
        # The same float32 arithmetic per element as on a segment of the utterance, so the bits agree.
        ds = ds.map(lambda p: (tf.cast((tf.cast(p[FRAMES], tf.float32) - shift[p[UTTERANCE]]) / scale[p[UTTERANCE]],
                                       p[FRAMES].dtype), p[UTTERANCE]))
    return ds.cache() if cache == "memory" else ds


def sequence_segments(manifest: RecordsManifest, *, folds: Sequence[int], labels_dir: str | os.PathLike | None,
                      stride: int = 1, normalize=None, with_index: bool = False, cache: str = "memory",
                      shuffle: bool = False, seed: int = 0, as_float32: bool = False) -> tf.data.Dataset:
    """The segments of ``folds`` cut in tf.data from the log-Mel sequence shards: unbatched ``x`` in the stored
    dtype ``(segment_frames, n_mels)``, equal bit for bit to the segment shards' (same frames, same windows,
    the same per-utterance normalisation). With ``labels_dir``, elements ``(x, y)`` (``((x, index), y)`` with
    ``with_index``) carrying each segment's target from the round's label shards; without, ``x`` alone.
    ``stride`` keeps positions 0, ``stride``, … of each utterance, as :func:`training_dataset`. Stored order,
    or (``shuffle``) the utterances in a new order every epoch, each utterance's segments together.
    ``as_float32``: frames parsed and normalised in float32, as :func:`evaluation_dataset` parses segments
    (otherwise normalised segments are rounded back to the stored dtype, as for training).
    """
    _check_segments_from(manifest, "sequences")
    f = manifest.features
    chosen = [u for u in manifest.utterances if u["fold"] in set(folds)]
    n_utts = len(manifest.utterances)
    first = np.zeros(n_utts, np.int64)  # global index of each utterance's first segment
    row = np.zeros(n_utts, np.int64)  # its row in the targets of ``folds`` (global order)
    n_segments = np.zeros(n_utts, np.int64)
    offset = 0
    for u in sorted(chosen, key=lambda u: u["first_segment"]):
        first[u["index"]], row[u["index"]], n_segments[u["index"]] = u["first_segment"], offset, u["segments"]
        offset += u["segments"]
    first, row, n_segments = tf.constant(first), tf.constant(row), tf.constant(n_segments)
    targets = None if labels_dir is None else tf.constant(read_label_shards(labels_dir, manifest, folds))
    step = f.segment_hop * stride

    def cut(frames, utt):
        # One slice of the utterance's frames per segment, not one framed copy of the utterance: a slice
        # keeps only the (cached) frames alive, so segments waiting in a shuffle buffer cost no extra copy.
        count = tf.maximum((tf.shape(frames, out_type=tf.int64)[0] - f.segment_frames) // step + 1, 0)
        check = tf.debugging.assert_equal(count, (n_segments[utt] + stride - 1) // stride,
                                          message="a sequence gives another number of segments than the records")
        with tf.control_dependencies([check]):
            positions = tf.data.Dataset.range(0, count * stride, stride)  # 0, stride, 2·stride, …

        def one(p):
            x = frames[p * f.segment_hop:p * f.segment_hop + f.segment_frames]
            if targets is None:
                return x
            return ((x, first[utt] + p) if with_index else x), targets[row[utt] + p]
        return positions.map(one)

    ds = _sequence_utterances(manifest, folds, normalize, cache, as_float32)
    if shuffle:
        ds = ds.shuffle(max(len(chosen), 1), seed=seed, reshuffle_each_iteration=True)
    return ds.flat_map(cut)


def _batches(ds, n_examples: int, *, batch_size: int, repeat: bool, augment, seed: int, with_index: bool,
             drop_remainder: bool = False):
    """Batch, cast to float32, augment and shape unbatched training examples (the shared tail of the pipeline)."""
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        ds = ds.repeat()
    else:  # tell Keras the epoch length up front (unbatch and filter hide it)
        batches = n_examples // batch_size if drop_remainder else -(-n_examples // batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    if with_index:
        ds = ds.map(lambda x, y: ((tf.cast(x[0], tf.float32), x[1]), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:  # a stateless seed per batch, new every epoch, reproducible from ``seed``
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        if with_index:
            step = lambda xy, s: ((augment(xy[0][0], xy[1], s)[0], xy[0][1]), xy[1])  # noqa: E731
        else:
            step = lambda xy, s: augment(xy[0], xy[1], s)  # noqa: E731
        ds = tf.data.Dataset.zip((ds, seeds)).map(step, num_parallel_calls=tf.data.AUTOTUNE)
    if with_index:
        return ds.map(lambda x, y: ({"segments": x[0][..., tf.newaxis], "row": x[1]}, y),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return ds.map(lambda x, y: (x[..., tf.newaxis], y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _to_model_input(x, y):
    return tf.cast(x, tf.float32)[..., tf.newaxis], y


def evaluation_dataset(manifest: RecordsManifest, *, folds: Sequence[int], labels_dir: str | os.PathLike | None = None,
                       batch_size: int = 512, normalize: tuple[np.ndarray, np.ndarray] | None = None,
                       segments_from: str = "segments") -> tf.data.Dataset:
    """Batches of the segments of ``folds`` in stored order, nothing dropped.

    Without ``labels_dir`` each element is x float32 ``(b, frames, n_mels, 1)``; with it, ``(x, y)``
    (y the round's targets), e.g. as validation data. ``normalize`` and ``segments_from`` as in
    :func:`training_dataset`.
    """
    _check_segments_from(manifest, segments_from)
    spec, segments = manifest.spec, _normalizer(normalize)
    batches = -(-count_segments(manifest, folds) // batch_size)
    if segments_from == "sequences":
        ds = sequence_segments(manifest, folds=folds, labels_dir=labels_dir, normalize=normalize, cache="none",
                               as_float32=labels_dir is None).batch(batch_size)
        ds = ds.map(_to_model_input if labels_dir is not None else lambda x: tf.cast(x, tf.float32)[..., tf.newaxis],
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    elif labels_dir is None:
        paths = [str(manifest.shard_path(s)) for s in manifest.shards if s["fold"] in set(folds)]
        ds = tf.data.TFRecordDataset(paths).batch(batch_size)
        ds = ds.map(lambda r: segments(spec.parse(r))[..., tf.newaxis], num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    else:
        segment_paths, label_paths = map(list, zip(*shard_pairs(manifest, labels_dir, folds)))
        ds = tf.data.Dataset.zip((tf.data.TFRecordDataset(segment_paths), tf.data.TFRecordDataset(label_paths)))
        ds = ds.batch(batch_size)
        ds = ds.map(_parse_pair(spec, TargetSpec(len(manifest.classes)), normalize=normalize),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).map(_to_model_input)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


def sequence_dataset(manifest: RecordsManifest, *, folds: Sequence[int], batch_size: int = 16, shuffle: bool = False,
                     seed: int = 0, cache: str = "memory", buckets: int = 0,
                     repeats: np.ndarray | None = None, normalize=None, speeds: Sequence[float] = (),
                     vote_only: bool = False) -> tf.data.Dataset:
    """Padded batches of whole utterances of ``folds`` from the sequence shards (records built with ``--sequences``).

    Each element is ``(inputs, y)``: ``inputs["frames"]`` float32 ``(b, T, n_features)``, zero-padded to
    the batch's longest utterance ``T``; ``inputs["mask"]`` bool ``(b, T)``, True on real frames;
    ``inputs["utt"]`` int64 ``(b,)``, the utterance index; ``y`` float32 ``(b, K)``, the one-hot label.
    Stored order unless ``shuffle`` (every epoch anew, reproducible from ``seed``). With ``buckets`` > 1,
    batches are drawn from ``buckets`` groups of similar length (boundaries at the quantiles of the
    folds' frame counts), so less of each batch is padding; utterances are still all used once per epoch.
    ``repeats`` (one count per utterance of the manifest, indexed by utterance index) uses each utterance
    that many times per epoch instead of once (over-sampling; 0 leaves it out). ``normalize``:
    ``(shift, scale)``, float32 ``(n_utterances, n_features)``: the frames of utterance ``i`` become
    ``(x - shift[i]) / scale[i]`` before caching (:func:`emotion_refinery.records.speaker_norm.sequence_tables`).
    ``speeds``: every utterance is used once at each of these speed factors per epoch
    (:func:`emotion_refinery.records.augment.speed_perturb`; spectrogram sequences only), e.g. ``(0.9, 1.0, 1.1)``.
    ``vote_only``: also the unlabelled utterances of ``folds`` (:attr:`RecordsManifest.vote_only`; their
    ``y`` is all zeros, ``utt`` indexes after the labelled utterances).
    """
    spec = manifest.sequence_spec
    if spec is None:
        raise RecordsError(f"Received: records={str(manifest.root)!r} without sequence shards; expected records "
                           "built with `build-records --sequences log-mel`")
    n_classes = len(manifest.classes)
    paths = [str(manifest.root / s["sequences"]["path"]) for s in manifest.shards if s["fold"] in set(folds)]
    n = sum(s["utterances"][1] - s["utterances"][0] for s in manifest.shards if s["fold"] in set(folds))
    if vote_only:
        if repeats is not None or normalize is not None:
            raise RecordsError("vote_only sequences take neither repeats nor normalize (both are indexed by the "
                               "labelled utterances)")
        extra = [s for s in manifest.vote_only_shards if s["fold"] in set(folds)]
        paths += [str(manifest.root / s["path"]) for s in extra]
        n += sum(s["utterances"][1] - s["utterances"][0] for s in extra)
    if repeats is not None:
        repeats = np.asarray(repeats, dtype=np.int64)
        if repeats.shape != (len(manifest.utterances),) or (repeats < 0).any():
            raise RecordsError(f"repeats must hold one count >= 0 per utterance, shape ({len(manifest.utterances)},). "
                               f"Received: repeats of shape {repeats.shape}, minimum {repeats.min(initial=0)}")
        n = int(sum(repeats[u["index"]] for u in manifest.utterances if u["fold"] in set(folds)))

    shift, scale = (None, None) if normalize is None else (tf.constant(np.asarray(a, np.float32)) for a in normalize)

    def example(parsed):
        frames, utt = parsed[FRAMES], parsed[UTTERANCE]
        if shift is not None:
            frames = tf.cast((tf.cast(frames, tf.float32) - shift[utt]) / scale[utt], frames.dtype)
        x = {"frames": frames, "n_frames": parsed[N_FRAMES], "utt": utt}
        return x, tf.one_hot(parsed[LABEL], n_classes)

    def with_mask(x, y):
        frames = tf.cast(x["frames"], tf.float32)
        return {"frames": frames, "mask": tf.sequence_mask(x["n_frames"], tf.shape(frames)[1]), "utt": x["utt"]}, y

    ds = tf.data.TFRecordDataset(paths).batch(64).map(lambda r: spec.parse(r, as_float32=False)).unbatch()
    ds = ds.map(example)
    if cache == "memory":
        ds = ds.cache()
    if repeats is not None:
        table = tf.constant(repeats)
        ds = ds.flat_map(lambda x, y: tf.data.Dataset.from_tensors((x, y)).repeat(table[x["utt"]]))
    if speeds:
        if manifest.data["settings"].get("sequences") != "spectrogram":
            raise RecordsError(f"Received: speed perturbation with {manifest.data['settings'].get('sequences')!r} "
                               "sequences; expected records built with `build-records --sequences spectrogram` "
                               "(linear-frequency bins, which a speed change scales)")
        from emotion_refinery.records.augment import speed_perturb

        def at_speed(x, y, factor):
            frames = speed_perturb(x["frames"], factor) if factor != 1.0 else x["frames"]
            return {**x, "frames": frames, "n_frames": tf.shape(frames, out_type=tf.int64)[0]}, y

        def versions(x, y):  # the utterance once at each speed, one after the other
            out = None
            for factor in speeds:
                one = tf.data.Dataset.from_tensors(at_speed(x, y, factor))
                out = one if out is None else out.concatenate(one)
            return out

        ds = ds.flat_map(versions)
        n *= len(speeds)
    if shuffle:
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    if buckets > 1:
        lengths = [u["sequence_frames"] for u in manifest.utterances if u["fold"] in set(folds)]
        bounds = sorted({int(b) for b in np.quantile(lengths, np.arange(1, buckets) / buckets)} - {0})
        ds = ds.bucket_by_sequence_length(lambda x, y: tf.cast(x["n_frames"], tf.int32), bucket_boundaries=bounds,
                                          bucket_batch_sizes=[batch_size] * (len(bounds) + 1))
        ds = ds.map(with_mask, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)  # the number of batches depends on how the buckets fill
    ds = ds.padded_batch(batch_size).map(with_mask, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(tf.data.AUTOTUNE)


def sequence_statistics(manifest: RecordsManifest, folds: Sequence[int], *, normalize=None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance over every real (unpadded) frame of the sequences of ``folds``
    (after ``normalize``, as :func:`sequence_dataset`)."""
    n, total, total_sq = 0, 0.0, 0.0
    for x, _ in sequence_dataset(manifest, folds=folds, batch_size=64, cache="none", normalize=normalize):
        frames = x["frames"].numpy()[x["mask"].numpy()].astype(np.float64)
        n, total, total_sq = n + len(frames), total + frames.sum(axis=0), total_sq + (frames * frames).sum(axis=0)
    mean = total / n
    return mean, np.maximum(total_sq / n - mean**2, 0.0)


def stored_labels_one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot float32 rows ``(n, n_classes)`` of class indices ``labels``."""
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out
