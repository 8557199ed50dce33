"""Per-speaker normalisation of the log-Mel bands (``refine --speaker-norm``) and of utterance
frame sequences (``lcw --speaker-norm``).

Every Mel band of a speaker's segments is z-normalised by that speaker's own mean and standard
deviation over their frames. No labels are used, and a speaker's statistics come from that
speaker's audio alone — every utterance of theirs, held-out folds included, as a user normalises
a new speaker from that speaker's own recordings. An utterance without a speaker id is its own
group (normalised by its own frames).

The statistics are read from the records: the segments at positions that tile each utterance
without overlap (every ``segment_frames / segment_hop``-th segment), so each frame counts once,
save the tail shorter than one segment. For sequence records (:func:`sequence_tables`) every frame
of the stored sequences counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.features import segment
from emotion_refinery.records.manifest import RecordsManifest
from tf_records.schema import POSITION, SEGMENT, UTTERANCE

__all__ = ["normalisation_groups", "speaker_groups", "utterance_statistics", "speaker_tables", "sequence_tables",
           "tiled_sums", "shift_and_scale", "EPSILON", "ONE_SPEAKER"]

#: Added to a band's variance before the square root, so a near-constant band is not blown up.
EPSILON = 1e-3


def _tile(features: FeatureConfig) -> int:
    """Every how many segments the statistics take one: segments that follow each other without overlap."""
    return max(1, features.segment_frames // features.segment_hop)


def tiled_sums(frames: np.ndarray, features: FeatureConfig) -> tuple[int, np.ndarray, np.ndarray]:
    """``(count, sum, sum_sq)`` over the frames of one utterance's tiling segments (the rule the records use).

    ``frames``: ``(n_frames, n_mels)`` log-Mel frames as stored (e.g. from ``stream_frames``).
    """
    segs = segment(np.asarray(frames), segment_frames=features.segment_frames,
                   segment_hop=features.segment_hop)[::_tile(features)].astype(np.float64)
    x = segs.reshape(-1, features.n_mels)
    return len(x), x.sum(axis=0), (x * x).sum(axis=0)


def shift_and_scale(count: int, total: np.ndarray, total_sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and ``sqrt(variance + EPSILON)`` per band from frame sums, as float32."""
    mean = np.asarray(total, np.float64) / count
    var = np.maximum(np.asarray(total_sq, np.float64) / count - mean**2, 0.0)
    return mean.astype(np.float32), np.sqrt(var + EPSILON).astype(np.float32)


def normalisation_groups(speakers: Sequence[str | None], ids: Sequence[str] | None = None) -> list[str]:
    """The normalisation group of every utterance: ``speaker:<name>`` for its speaker, else ``utterance:<id>``
    (``ids[i]``, or its position), a group of its own — the one grouping of every per-speaker normalisation
    (log-Mel bands, the baseline's and the ``speaker-forest`` rule's statistics). ``predict`` names the files of
    one call as one speaker (:data:`ONE_SPEAKER`)."""
    return [f"speaker:{s}" if s else f"utterance:{ids[i] if ids is not None else i}" for i, s in enumerate(speakers)]


#: The speaker ``predict`` gives every file of one call: they are one speaker's audio.
ONE_SPEAKER = "the files of this call"


def speaker_groups(manifest: RecordsManifest) -> list[str]:
    """The normalisation group of every utterance of ``manifest``, in index order (:func:`normalisation_groups`)."""
    return normalisation_groups([u.get("speaker") for u in manifest.utterances], [u["id"] for u in manifest.utterances])


def utterance_statistics(manifest: RecordsManifest, *, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """Per-utterance frame count and per-band sums of the frames that tile each utterance.

    Returns:
        ``{"count": int64 (n_utterances,), "sum": float64 (n_utterances, n_mels), "sum_sq": …}``.
    """
    import tensorflow as tf

    f = manifest.features
    tile = _tile(f)
    n, spec = len(manifest.utterances), manifest.spec
    count = np.zeros(n, np.int64)
    total, total_sq = np.zeros((n, f.n_mels)), np.zeros((n, f.n_mels))
    paths = [str(manifest.shard_path(s)) for s in manifest.shards]
    ds = tf.data.TFRecordDataset(paths, num_parallel_reads=min(4, len(paths))).batch(batch_size)
    for parsed in ds.map(spec.parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2).as_numpy_iterator():
        keep = parsed[POSITION] % tile == 0
        utt, seg = parsed[UTTERANCE][keep], parsed[SEGMENT][keep].astype(np.float64)
        np.add.at(count, utt, seg.shape[1])
        np.add.at(total, utt, seg.sum(axis=1))
        np.add.at(total_sq, utt, (seg * seg).sum(axis=1))
    return {"count": count, "sum": total, "sum_sq": total_sq}


def speaker_tables(manifest: RecordsManifest, stats: dict[str, np.ndarray] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, scale)``, float32 ``(n_utterances, n_mels)``: row i holds utterance i's speaker's mean and std.

    A segment ``x`` of utterance ``i`` is normalised as ``(x - shift[i]) / scale[i]``.
    """
    stats = utterance_statistics(manifest) if stats is None else stats
    groups = np.array(speaker_groups(manifest))
    shift = np.zeros_like(stats["sum"])
    scale = np.ones_like(stats["sum"])
    for g in np.unique(groups):
        rows = groups == g
        n = stats["count"][rows].sum()
        if n == 0:
            continue
        shift[rows], scale[rows] = shift_and_scale(n, stats["sum"][rows].sum(axis=0), stats["sum_sq"][rows].sum(axis=0))
    return shift.astype(np.float32), scale.astype(np.float32)


def sequence_tables(manifest: RecordsManifest) -> tuple[np.ndarray, np.ndarray]:
    """:func:`speaker_tables` for the frame features of the sequence records: ``(shift, scale)``, float32
    ``(n_utterances, n_features)``, from every stored frame of each speaker's utterances."""
    from emotion_refinery.records.datasets import sequence_dataset

    n, width = len(manifest.utterances), manifest.sequence_spec.n_features
    stats = {"count": np.zeros(n, np.int64), "sum": np.zeros((n, width)), "sum_sq": np.zeros((n, width))}
    every_fold = sorted({u["fold"] for u in manifest.utterances})
    for x, _ in sequence_dataset(manifest, folds=every_fold, batch_size=64, cache="none").as_numpy_iterator():
        frames = np.where(x["mask"][..., None], x["frames"].astype(np.float64), 0.0)
        stats["count"][x["utt"]] += x["mask"].sum(axis=1)
        stats["sum"][x["utt"]] += frames.sum(axis=1)
        stats["sum_sq"][x["utt"]] += (frames * frames).sum(axis=1)
    return speaker_tables(manifest, stats)
