"""Keras graph pieces of an exported model: the log-Mel front end, segments, speaker statistics, the EP
statistics and the random forest, built from Keras's own layers and ``keras.ops`` only.

A model made of them loads with plain Keras in safe mode (no emorefine, no custom classes) and
converts to a SavedModel, TFLite and ONNX. Fixed weights (the DFT, the Mel filterbank, the forest's
nodes) live in ``Conv1D``, ``Dense``, ``Conv2D`` and ``Embedding`` layers that are not trained.

Shapes follow a batch of one utterance: the waveform is ``(1, n_samples)``, the frames
``(1, n_frames, n_mels)``, the segments ``(n_segments, segment_frames, n_mels, 1)``, a profile
``(n_segments, K)``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from emotion_refinery.data.feature_config import FeatureConfig

__all__ = ["log_mel_frames", "spectrogram_frames", "segments", "tiled_frame_sums", "normalise_segments",
           "ep_statistics", "forest", "forest_table", "mean_profile", "frame_sums", "speaker_statistics"]

_DB = 10.0 / math.log(10.0)


def _dft(waveform, *, win_length: int, n_fft: int, hop_length: int, window: str, bins: int, name: str):
    """``(1, n_samples)`` → windowed DFT power ``(1, n_frames, 2 * bins)`` as ``[re², im²]`` of bins ``0 … bins-1``.

    One strided ``Conv1D`` whose kernels are the window times the DFT's cosines and sines: frame ``t``
    covers samples ``[t·hop, t·hop + win_length)``, zero-padded to ``n_fft`` (the padding's position only
    turns the phase, so the power equals librosa's STFT of :func:`emotion_refinery.data.features.log_mel`).
    """
    import librosa

    w = librosa.filters.get_window(window, win_length, fftbins=True).astype(np.float64)
    angle = 2 * np.pi * np.outer(np.arange(win_length), np.arange(bins)) / n_fft
    kernel = np.concatenate([w[:, None] * np.cos(angle), -w[:, None] * np.sin(angle)], axis=1)
    conv = keras.layers.Conv1D(2 * bins, win_length, strides=hop_length, use_bias=False, trainable=False, name=name)
    x = conv(keras.layers.Reshape((-1, 1), name=f"{name}_samples")(waveform))
    conv.set_weights([kernel[:, None, :].astype(np.float32)])
    return ops.square(x)


def _to_db(power, amin: float):
    return ops.log(ops.maximum(power, amin)) * _DB


def _round_to(x, dtype: str):
    return ops.cast(ops.cast(x, dtype), "float32") if dtype != "float32" else x


def log_mel_frames(waveform, features: FeatureConfig):
    """``(1, n_samples)`` at ``features.sr`` → log-Mel dB frames ``(1, n_frames, n_mels)``, rounded to the
    records' dtype, as :func:`emotion_refinery.data.features.frames_of` computes them."""
    from emotion_refinery.data.features import mel_basis

    f = features
    bins = 1 + f.n_fft // 2
    power = _dft(waveform, win_length=f.win_length, n_fft=f.n_fft, hop_length=f.hop_length, window=f.window,
                 bins=bins, name="dft")
    basis = mel_basis(sr=f.sr, n_fft=f.n_fft, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax, htk=f.htk)
    mel = keras.layers.Dense(f.n_mels, use_bias=False, trainable=False, name="mel_filterbank")
    out = mel(power)
    mel.set_weights([np.concatenate([basis.T, basis.T]).astype(np.float32)])  # re² and im² summed per band
    return _round_to(_to_db(out, f.amin), f.dtype)


def spectrogram_frames(waveform, spec):
    """``(1, n_samples)`` at 16 kHz → ``--sequences spectrogram`` frames ``(1, n_frames, bins)``: the natural log
    of the Hamming-windowed DFT power plus 1e-10 (:func:`emotion_refinery.data.extraction.extract_spectrogram`),
    rounded to float16."""
    power = _dft(waveform, win_length=spec["win_length"], n_fft=spec["n_fft"], hop_length=spec["hop_length"],
                 window="hamming", bins=spec["bins"], name="dft")
    add = keras.layers.Dense(spec["bins"], use_bias=False, trainable=False, name="power")
    out = add(power)
    eye = np.eye(spec["bins"], dtype=np.float32)
    add.set_weights([np.concatenate([eye, eye])])
    return _round_to(ops.log(out + 1e-10), "float16")


def segments(frames, features: FeatureConfig, *, stride: int | None = None, name: str = "segmenter"):
    """``(1, n_frames, n_mels)`` → ``(n_segments, segment_frames, n_mels, 1)``, segment ``j`` starting at frame
    ``j · stride`` (default ``segment_hop``: :func:`emotion_refinery.data.features.segment`): a ``Conv2D`` with one-hot
    kernels copies each segment's frames into its channels, exactly."""
    f = features
    image = keras.layers.Reshape((-1, f.n_mels, 1), name=f"{name}_image")(frames)
    copy = keras.layers.Conv2D(f.segment_frames, (f.segment_frames, 1), strides=(stride or f.segment_hop, 1),
                               use_bias=False, trainable=False, name=name)
    x = copy(image)  # (1, n_segments, n_mels, segment_frames)
    kernel = np.zeros((f.segment_frames, 1, 1, f.segment_frames), np.float32)
    kernel[np.arange(f.segment_frames), 0, 0, np.arange(f.segment_frames)] = 1.0
    copy.set_weights([kernel])
    x = keras.layers.Permute((1, 3, 2), name=f"{name}_frames_first")(x)
    return ops.reshape(x, (-1, f.segment_frames, f.n_mels, 1))


def frame_sums(x):
    """``(n, width)`` → ``(3, width)``: the frame count (every column), the sums and the sums of squares."""
    count = ops.sum(ops.ones_like(x), axis=0, keepdims=True)
    return ops.concatenate([count, ops.sum(x, axis=0, keepdims=True), ops.sum(ops.square(x), axis=0, keepdims=True)],
                           axis=0)


def tiled_frame_sums(frames, features: FeatureConfig):
    """:func:`frame_sums` of the frames of the segments that tile the utterance
    (:func:`emotion_refinery.records.speaker_norm.tiled_sums`), ``(3, n_mels)``."""
    tile = max(1, features.segment_frames // features.segment_hop)
    tiles = segments(frames, features, stride=tile * features.segment_hop, name="tiles")
    return frame_sums(ops.reshape(tiles, (-1, features.n_mels)))


def speaker_statistics(sums, shift, scale, epsilon: float):
    """The ``(shift, scale)`` ``(1, width)`` to normalise with: the given speaker's (``shift`` and ``scale``, their
    mean and ``sqrt(variance + epsilon)``), or where ``scale`` is not positive everywhere the utterance's own,
    from its :func:`frame_sums` ``sums`` (:func:`emotion_refinery.records.speaker_norm.shift_and_scale`)."""
    mean = sums[1:2, :] / sums[0:1, :]
    own_scale = ops.sqrt(ops.maximum(sums[2:3, :] / sums[0:1, :] - ops.square(mean), 0.0) + epsilon)
    given = ops.min(scale) > 0.0
    return ops.where(given, shift, mean), ops.where(given, scale, own_scale)


def normalise_segments(segs, sums, shift, scale, features: FeatureConfig, epsilon: float):
    """``segs`` z-normalised per band by :func:`speaker_statistics`, rounded to the records' dtype."""
    shift, scale = speaker_statistics(sums, shift, scale, epsilon)
    n = features.n_mels
    x = (segs - ops.reshape(shift, (1, 1, n, 1))) / ops.reshape(scale, (1, 1, n, 1))
    return _round_to(x, features.dtype)


def mean_profile(profile):
    """``(n_segments, K)`` → ``(1, K)``: the mean profile, summing to 1 (the ``mean-ep`` decision)."""
    m = ops.mean(profile, axis=0, keepdims=True)
    return m / ops.sum(m, axis=1, keepdims=True)


def ep_statistics(profile, n_classes: int):
    """``(n_segments, K)`` → ``(1, 8·K)``: :func:`emotion_refinery.decision.utterance.ep_statistics` (class-major; the
    percentiles interpolated linearly as NumPy's default), in float32."""
    from emotion_refinery.decision.utterance import _PERCENTILES, _THRESHOLDS

    ordered = ops.sort(profile, axis=0)
    n = ops.sum(ops.ones_like(profile[:, :1]), axis=0, keepdims=True)  # (1, 1)
    last = ops.cast(n, "int32") - 1
    rows = [ops.sum(profile, axis=0, keepdims=True) / n]
    for p in _PERCENTILES:
        position = (n - 1.0) * (p / 100.0)
        low = ops.floor(position)
        t = position - low
        low_i = ops.cast(low, "int32")
        a = ops.take_along_axis(ordered, ops.repeat(low_i, n_classes, axis=1), axis=0)
        b = ops.take_along_axis(ordered, ops.repeat(ops.minimum(low_i + 1, last), n_classes, axis=1), axis=0)
        rows.append(ops.where(t >= 0.5, b - (b - a) * (1.0 - t), a + (b - a) * t))
    for threshold in _THRESHOLDS:
        rows.append(ops.sum(ops.cast(profile > threshold, "float32"), axis=0, keepdims=True) / n)
    return ops.reshape(ops.transpose(ops.concatenate(rows, axis=0)), (1, 8 * n_classes))


def forest_table(model, n_classes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A fitted ``RandomForestClassifier`` as one node table: ``(table (n_nodes, 4 + K) float32, roots (n_trees,),
    depth)``. Row: ``[feature, threshold, left, right, p_0 … p_{K-1}]`` (node indices over all trees; a leaf
    points to itself and holds its class distribution). Thresholds are rounded down to float32, so
    ``x <= threshold`` in float32 decides as scikit-learn does for float32 ``x``."""
    rows, roots, depth, offset = [], [], 0, 0
    for tree in (est.tree_ for est in model.estimators_):
        n = tree.node_count
        leaf = tree.children_left < 0
        own = np.arange(n) + offset
        threshold = tree.threshold.astype(np.float32)
        threshold = np.where(threshold.astype(np.float64) > tree.threshold,
                             np.nextafter(threshold, np.float32(-np.inf)), threshold)
        value = tree.value[:, 0, :].astype(np.float64)
        proba = np.zeros((n, n_classes))
        proba[:, model.classes_] = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
        rows.append(np.column_stack([np.where(leaf, 0, tree.feature), np.where(leaf, np.inf, threshold),
                                     np.where(leaf, own, tree.children_left + offset),
                                     np.where(leaf, own, tree.children_right + offset), proba]))
        roots.append(offset)
        depth, offset = max(depth, tree.max_depth), offset + n
    if offset >= 2**24:
        raise ValueError(f"the forest has {offset} nodes; float32 node indices hold at most 2**24")
    return np.concatenate(rows).astype(np.float32), np.array(roots, np.int32), depth


def forest(x, model, n_classes: int):
    """``(1, n_features)`` → ``(1, K)``: the class probabilities of a fitted random forest (the mean of its
    trees' leaf distributions), each tree walked ``depth`` steps by gathers from one frozen ``Embedding``."""
    table, roots, depth = forest_table(model, n_classes)
    nodes = keras.layers.Embedding(len(table), table.shape[1], trainable=False, name="forest_nodes")
    node = ops.cast(ops.zeros_like(x[:, :1]), "int32") + roots[None, :]  # (1, n_trees)
    nodes.build((1, len(roots)))
    nodes.set_weights([table])
    for _ in range(depth):
        row = nodes(node)
        value = ops.take_along_axis(x, ops.cast(row[..., 0], "int32"), axis=1)
        node = ops.cast(ops.where(value <= row[..., 1], row[..., 2], row[..., 3]), "int32")
    return ops.mean(nodes(node)[..., 4:], axis=1)
