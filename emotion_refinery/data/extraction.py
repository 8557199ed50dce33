"""The work done in ``build-records``' worker processes: audio → cached frames → one shard.

Kept apart from :mod:`emotion_refinery.records.build` so that workers import only numpy,
soundfile, soxr and librosa (no scikit-learn, no TensorFlow) and start quickly.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from emotion_refinery.data.audio import load
from emotion_refinery.data.feature_config import EGEMAPS, LLD_COLUMNS, SPECTROGRAM, FeatureConfig, sequence_layout
from emotion_refinery.data.features import frames_of, segment
from emotion_refinery.errors import AudioError
from tf_records.atomic import atomic_path
from tf_records.schema import SegmentSpec, SequenceSpec
from tf_records.writer import ShardWriter, sha256_file

__all__ = ["extract_frames", "extract_llds", "extract_egemaps", "egemaps_functionals", "egemaps_of_file",
           "extract_spectrogram", "read_frames", "cached_frames", "write_feature_shard"]


def extract_frames(path: str, cache: str, features: dict[str, Any]) -> tuple[int, int] | str:
    """Decode ``path``, compute its log-Mel frames in the storage dtype, cache them at ``cache``.

    Returns:
        ``(n_samples, n_frames)``, or the reason the file is unusable.
    """
    config = FeatureConfig.from_dict(features)
    try:
        y = load(path, sr=config.sr)
    except AudioError as e:
        return str(e)
    if len(y) < config.min_samples:
        return (f"too short: {len(y) / config.sr:.3f} s; one segment needs {config.segment_seconds:.3f} s "
                f"({config.min_samples} samples at {config.sr} Hz)")
    frames = frames_of(y, config)
    _write_cache(cache, frames.astype(config.dtype), len(y))
    return len(y), frames.shape[0]


def _write_cache(cache: str, frames: np.ndarray, n_samples: int) -> None:
    """The .npy, the sample count (so a resumed build needs no decoding), a CRC32C of both; flushed to
    the disk before it takes its name, so a cache that carries its name is whole unless damaged later."""
    buffer = io.BytesIO()
    np.save(buffer, frames)
    buffer.write(np.int64(n_samples).tobytes())
    data = buffer.getvalue()
    with atomic_path(cache, fsync=True) as tmp:
        tmp.write_bytes(data + struct.pack("<I", google_crc32c.value(data)))


def extract_llds(path: str, cache: str, features: dict[str, Any]) -> int | str:
    """Decode ``path`` and cache its ``--sequences lld`` frames
    (:data:`~emotion_refinery.data.feature_config.LLD_COLUMNS`, float32) at ``cache``; return their number, or the
    reason the file is unusable.

    Runs openSMILE, which aborts a process that has loaded TensorFlow: call it in a worker process.
    """
    import opensmile

    config = FeatureConfig.from_dict(features)
    try:
        y = load(path, sr=config.sr)
    except AudioError as e:
        return str(e)
    levels = (opensmile.FeatureLevel.LowLevelDescriptors, opensmile.FeatureLevel.LowLevelDescriptors_Deltas)
    smile = {level: opensmile.Smile(feature_set=opensmile.FeatureSet.emobase, feature_level=level) for level in levels}
    llds, deltas = (s.process_signal(y, config.sr) for s in smile.values())
    # The deltas come on the same frame starts, with the last frame repeated at the end: align on the starts.
    deltas = deltas[~deltas.index.duplicated(keep="first")].reindex(llds.index)
    frames = llds.join(deltas)[list(LLD_COLUMNS)].to_numpy(dtype=np.float32, na_value=0.0)
    if len(frames) == 0:
        return "too short: no 25 ms frame for the low-level descriptors"
    _write_cache(cache, frames, len(y))
    return len(frames)


_EGEMAPS_SMILE = None  # one openSMILE extractor per (worker) process, made on first use


def egemaps_functionals(y: np.ndarray, sr: int) -> np.ndarray:
    """The :data:`~emotion_refinery.data.feature_config.EGEMAPS` functionals of signal ``y`` at ``sr`` Hz,
    float32 ``(1, 88)`` (no row where openSMILE gives none): the features of ``emorefine baseline`` and of
    ``--sequences egemaps``. Runs openSMILE, which aborts a process that has loaded TensorFlow: call it in a
    worker process (see :func:`extract_llds`)."""
    global _EGEMAPS_SMILE
    if _EGEMAPS_SMILE is None:
        import opensmile

        _EGEMAPS_SMILE = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, EGEMAPS),
                                         feature_level=opensmile.FeatureLevel.Functionals)
    return _EGEMAPS_SMILE.process_signal(y, sr).to_numpy(dtype=np.float32)[:1]


def egemaps_of_file(path: str, sr: int) -> np.ndarray:
    """The eGeMAPSv02 functionals of one file decoded with :func:`emotion_refinery.data.audio.load` at ``sr``,
    float32 ``(88,)`` (:class:`~emotion_refinery.errors.AudioError` for audio that cannot be decoded). Runs
    openSMILE: call it in a worker process."""
    return egemaps_functionals(load(path, sr=sr), sr)[0]


def extract_egemaps(path: str, cache: str, features: dict[str, Any]) -> int | str:
    """Decode ``path`` and cache its ``--sequences egemaps`` frame: the utterance's eGeMAPSv02 functionals
    (:func:`egemaps_functionals`, the same features as ``emorefine baseline``) as one float32 frame; return 1,
    or the reason the file is unusable. Runs openSMILE: call it in a worker process."""
    config = FeatureConfig.from_dict(features)
    try:
        y = load(path, sr=config.sr)
    except AudioError as e:
        return str(e)
    frame = egemaps_functionals(y, config.sr)
    if frame.shape[0] != 1 or not np.isfinite(frame).all():
        return f"no finite {EGEMAPS} functionals ({len(y) / config.sr:.3f} s of audio)"
    _write_cache(cache, frame, len(y))
    return 1


def extract_spectrogram(path: str, cache: str, features: dict[str, Any]) -> int | str:
    """Decode ``path`` and cache its ``--sequences spectrogram`` frames: the log power spectrum
    (:data:`~emotion_refinery.data.feature_config.SPECTROGRAM`: 40 ms periodic Hamming window, 10 ms hop, 1600-point
    DFT, the 400 bins below 4 kHz), float16; return their number, or the reason the file is unusable."""
    import librosa

    config = FeatureConfig.from_dict(features)
    try:
        y = load(path, sr=config.sr)
    except AudioError as e:
        return str(e)
    spec = SPECTROGRAM
    if config.sr != 16000:
        return f"the spectrogram's bins are set for 16 kHz; the records' rate is {config.sr} Hz"
    if len(y) < spec["win_length"]:
        return f"too short: one spectrogram frame needs {spec['win_length'] / config.sr:.3f} s"
    frames = librosa.util.frame(y, frame_length=spec["win_length"], hop_length=spec["hop_length"], axis=0)
    window = librosa.filters.get_window("hamming", spec["win_length"], fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, n=spec["n_fft"], axis=1)[:, :spec["bins"]]) ** 2
    _write_cache(cache, np.log(power + 1e-10).astype(np.float16), len(y))
    return len(power)


def read_frames(cache: str | Path) -> tuple[np.ndarray, int]:
    """Cached frames ``(n_frames, n_mels)`` in the storage dtype, and the utterance's sample count.

    Raises:
        ValueError: the file is not a whole cache (truncated, damaged, or from an older version).
    """
    data = Path(cache).read_bytes()
    if len(data) < 12 or struct.pack("<I", google_crc32c.value(data[:-4])) != data[-4:]:
        raise ValueError(f"{cache}: checksum mismatch (truncated or damaged)")
    f = io.BytesIO(data[:-4])
    frames = np.load(f, allow_pickle=False)
    rest = f.read()
    if len(rest) != 8:
        raise ValueError(f"{cache}: {len(rest)} bytes after the frames; expected 8")
    return frames, int(np.frombuffer(rest, dtype=np.int64)[0])


def cached_frames(cache: str | Path, features: dict[str, Any]) -> tuple[int, int] | None:
    """``(n_samples, n_frames)`` of a whole cache with the shape and dtype ``features`` give, else None.

    A damaged cache (cut short by a crash or a full disk, or written by an older version) is removed,
    so that a resumed build recomputes it instead of failing on it.
    """
    config = FeatureConfig.from_dict(features)
    try:
        frames, n_samples = read_frames(cache)
        ok = (frames.ndim == 2 and frames.shape[1] == config.n_mels and frames.dtype == np.dtype(config.dtype)
              and frames.shape[0] == config.n_frames(n_samples))
    except (OSError, ValueError, EOFError):
        ok = False
    if not ok:
        Path(cache).unlink(missing_ok=True)
        return None
    return n_samples, frames.shape[0]


def _coverage(n_frames: int, n_segments: int, config: FeatureConfig) -> np.ndarray:
    """How many segments contain each frame, shape ``(n_frames,)``."""
    cov = np.zeros(n_frames + 1, dtype=np.int64)
    starts = np.arange(n_segments) * config.segment_hop
    np.add.at(cov, starts, 1)
    np.add.at(cov, starts + config.segment_frames, -1)
    return np.cumsum(cov[:-1])


def write_feature_shard(path: str, members: list[dict[str, Any]], features: dict[str, Any],
                        sequences_path: str | None = None, sequences: str = "log-mel") -> dict[str, Any]:
    """Write one feature shard (unless it is already in place) and sum its normalisation statistics.

    Args:
        path: final shard path. An existing file there is complete (it was renamed
            into place after writing) and is kept.
        sequences_path: also write the members' whole frame sequences there, one example per
            utterance (kept the same way when already in place): their log-Mel frames, or with
            another ``sequences`` kind the frames cached at each member's ``sequence_cache``.
        members: the shard's utterances in order, each with ``index``, ``first_segment``,
            ``label_index`` and ``cache`` (its frames file).
        features: :class:`FeatureConfig` as a dict.

    Returns:
        ``{"count", "size", "sha256", "frames", "sum", "sum_sq"}``: segments written, file
        size and sha256, and per-band sums over every frame of every segment
        (a frame inside k segments counts k times); with ``sequences_path`` also
        ``"sequences": {"count", "size", "sha256"}``.
    """
    config = FeatureConfig.from_dict(features)
    spec = SegmentSpec(segment_frames=config.segment_frames, n_mels=config.n_mels, dtype=config.dtype)
    writer = None if Path(path).is_file() else ShardWriter(path)
    seq_spec = SequenceSpec(*sequence_layout(sequences, config))
    seq_writer = None if sequences_path is None or Path(sequences_path).is_file() else ShardWriter(sequences_path)
    total, total_sq, count = np.zeros(config.n_mels), np.zeros(config.n_mels), 0
    try:
        for m in members:
            frames, _ = read_frames(m["cache"])
            segs = segment(frames, segment_frames=config.segment_frames, segment_hop=config.segment_hop)
            cov = _coverage(len(frames), len(segs), config)
            f64 = frames.astype(np.float64)
            total += cov @ f64
            total_sq += cov @ (f64 * f64)
            count += len(segs)
            if writer is not None:
                for j in range(len(segs)):
                    writer.write(spec.encode(segs[j], utterance=m["index"], position=j,
                                             index=m["first_segment"] + j, label=m["label_index"]))
            if seq_writer is not None:
                seq = frames if sequences == "log-mel" else read_frames(m["sequence_cache"])[0]
                seq_writer.write(seq_spec.encode(seq, utterance=m["index"], label=m["label_index"]))
    except BaseException:
        for w in (writer, seq_writer):
            if w is not None:
                w.abort()
        raise
    out = {"count": count, **_finish(writer, path), "frames": count * config.segment_frames,
           "sum": total, "sum_sq": total_sq}
    if sequences_path is not None:
        out["sequences"] = {"count": len(members), **_finish(seq_writer, sequences_path)}
    return out


def write_sequence_shard(path: str, members: list[dict[str, Any]], features: dict[str, Any],
                         sequences: str = "log-mel") -> dict[str, Any]:
    """Write one sequence shard of unlabelled utterances (unless it is already in place): each member's
    whole frame sequence with label -1, as :func:`write_feature_shard` writes them beside its segments.

    Args:
        members: the shard's utterances in order, each with ``index``, ``cache`` (its log-Mel frames
            file) and, for another ``sequences`` kind, ``sequence_cache``.

    Returns:
        ``{"count", "size", "sha256"}``.
    """
    config = FeatureConfig.from_dict(features)
    seq_spec = SequenceSpec(*sequence_layout(sequences, config))
    writer = None if Path(path).is_file() else ShardWriter(path)
    try:
        if writer is not None:
            for m in members:
                seq = read_frames(m["cache"] if sequences == "log-mel" else m["sequence_cache"])[0]
                writer.write(seq_spec.encode(seq, utterance=m["index"], label=-1))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return {"count": len(members), **_finish(writer, path)}


def _finish(writer: ShardWriter | None, path: str) -> dict[str, Any]:
    """Close ``writer`` (renaming its shard into place), or read back a shard already in place: size, sha256."""
    if writer is not None:
        info = writer.close()
        return {"size": info.size, "sha256": info.sha256}
    return {"size": Path(path).stat().st_size, "sha256": sha256_file(path)}
