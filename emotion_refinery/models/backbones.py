"""Segment classifiers: a registry of convolutional backbones and :func:`build_model`.

Every model maps a batch of log-Mel segments, shape ``(batch, n_frames, n_mels, 1)``
(``(batch, 32, 64, 1)`` at the reference settings), to class probabilities, shape
``(batch, n_classes)``::

    segments → Normalization (per Mel band) → backbone → global average pooling → Dense(softmax)

The per-band mean and variance live inside the model (a :class:`keras.layers.Normalization`
layer named ``"band_normalization"``), so a saved model is self-contained and takes raw dB
segments. Backbones are trained from scratch (``weights=None``). All model math is Keras
layers / ``keras.ops``, so the models also run under ``KERAS_BACKEND=jax``.

Batch-normalisation momentum. ``keras.applications`` build their BatchNormalization layers with
momentum 0.99 (DenseNet, EfficientNet) or 0.999 (MobileNetV2). The moving statistics used at
inference move by ``1 - momentum`` per training step, so after a few hundred steps with 0.999
they are still mostly their initial values and inference-mode accuracy is near chance even when
training-mode accuracy is high (measured: MobileNetV2-α0.35, 3 epochs × 40 steps on separable toy
data, 24 % at inference vs 99.8 % in training mode; 99.9 % with momentum 0.9; the ``small`` model
after 32 steps on the toy data of ``tests/test_backbones.py``: 62.5 % at 0.99, 100 % at 0.9).
:func:`build_model` therefore
sets one ``bn_momentum`` on every BatchNormalization layer. Treat it as tied to the number of
training steps: 0.99 suits the papers' runs (thousands of steps per fold); use ~0.9 for short CPU
runs, and always check accuracy with ``model.predict`` (inference mode), not the training loss.

Adding a backbone is adding one :class:`Backbone` entry to :data:`BACKBONES`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from emotion_refinery.errors import EmorefineError

if TYPE_CHECKING:  # keras (and TensorFlow) load when a model is built, not when the registry is read
    import keras

__all__ = ["Backbone", "BACKBONES", "backbone_names", "build_model", "build_sequence_model", "set_batch_norm_momentum",
           "DENSENET22_BLOCKS", "TCNN_FILTERS"]

InputShape = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One registry entry.

    Attributes:
        name: registry key.
        description: one line for ``--help`` texts and reports.
        build: ``build(input_shape) -> keras.Model`` mapping ``(batch, *input_shape)`` to pooled
            features ``(batch, n_features)``; randomly initialised.
        min_size: smallest number of frames and of Mel bands the backbone accepts.
        gpu_sized: too slow to train on a few CPU cores at the papers' settings.
        cpu_segments_per_second: training throughput measured on 2 CPU cores (AMD EPYC, batch 128,
            32×64 segments; ``benchmarks/train_throughput.py``), for time estimates; ``None``: not measured.
        reads: ``"segments"`` (``refine``'s fixed-size log-Mel segments; ``build(input_shape)``) or
            ``"utterances"`` (whole frame sequences with a mask; ``build(n_features)`` → a model of
            ``[frames (batch, T, n_features), mask (batch, T)]``; see :func:`build_sequence_model`).
    """

    name: str
    description: str
    build: Callable[[InputShape], keras.Model]
    min_size: int = 32
    gpu_sized: bool = True
    cpu_segments_per_second: float | None = None
    reads: str = "segments"


# --------------------------------------------------------------------------- builders


def _small(input_shape: InputShape) -> keras.Model:
    """Three Conv(3×3)-BN-ReLU-MaxPool(2) blocks of 16/32/64 filters, then global average pooling."""
    import keras
    inputs = keras.Input(shape=input_shape, name="small_input")
    x = inputs
    for i, filters in enumerate((16, 32, 64), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="small")


#: Filters of the four temporal convolutions of ``tcnn`` (a 2×1 max-pool follows the 2nd and the 4th).
TCNN_FILTERS = (128, 128, 256, 256)


def _tcnn(input_shape: InputShape) -> keras.Model:
    """A temporal CNN: the Mel bands are the channels, the convolutions run over time only.

    ``(frames, n_mels, 1)`` → ``(frames, n_mels)`` → 4 × (Conv1D 3, ``TCNN_FILTERS``, BN, ReLU), a max-pool
    of 2 after the 2nd and 4th → global average and global max pooling, concatenated (512 features).
    Each convolution sees the whole spectrum of 3 frames, so the spectral envelope and its motion are
    learnt directly, as in time-delay networks (TDNN, x-vectors) and TC-ResNet. On 2 CPU cores it trains
    as fast as ``small`` with 15× its parameters (1-D convolutions over 32 steps are dense GEMMs); on
    Emo-DB its segments classify far better (see BENCHMARKS.md).
    """
    import keras
    frames, n_mels, channels = input_shape
    inputs = keras.Input(shape=input_shape, name="tcnn_input")
    x = keras.layers.Reshape((frames, n_mels * channels), name="bands_as_channels")(inputs)
    for i, filters in enumerate(TCNN_FILTERS, start=1):
        x = keras.layers.Conv1D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"conv{i}_relu")(x)
        if i % 2 == 0:
            x = keras.layers.MaxPooling1D(2, padding="same", name=f"pool{i // 2}")(x)
    x = keras.layers.Concatenate(name="avg_max_pool")(
        [keras.layers.GlobalAveragePooling1D(name="avg_pool")(x), keras.layers.GlobalMaxPooling1D(name="max_pool")(x)])
    return keras.Model(inputs, x, name="tcnn")


def _vgg19(input_shape: InputShape) -> keras.Model:
    import keras
    return keras.applications.VGG19(weights=None, include_top=False, input_shape=input_shape, pooling="avg")


def _mobilenetv2(input_shape: InputShape) -> keras.Model:
    import keras
    return keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=input_shape, pooling="avg")


def _densenet121(input_shape: InputShape) -> keras.Model:
    import keras
    return keras.applications.DenseNet121(weights=None, include_top=False, input_shape=input_shape, pooling="avg")


def _efficientnetb0(input_shape: InputShape) -> keras.Model:
    import keras
    model = keras.applications.EfficientNetB0(
        weights=None, include_top=False, input_shape=input_shape, pooling="avg"
    )
    # Keras' EfficientNet always starts with Rescaling(1/255) (for 0..255 pixels) and an
    # identity Normalization. Our inputs are already standardised per band; dividing them by
    # 255 would leave the stem convolution's outputs far below the BatchNormalization epsilon
    # (1e-3) and damp the whole network. Neutralise the rescaling (kept in the saved config).
    for layer in model.layers:
        if isinstance(layer, keras.layers.Rescaling):
            layer.scale = 1.0
            layer.offset = 0.0
    return model


#: Dense-block sizes of DenseNet-22 (three blocks of three bottleneck units).
DENSENET22_BLOCKS = (3, 3, 3)
_DENSENET22_GROWTH = 12


def _densenet22(input_shape: InputShape) -> keras.Model:
    """DenseNet-BC-22, in Keras' DenseNet layer style.

    A reconstruction: the source papers give the depth (22), not the layout; this is the standard
    DenseNet-BC of that depth.

    Layout (CIFAR-style DenseNet-BC of Huang et al., depth ``L = 6n + 4`` with ``n = 3``; the
    32×64 segments are CIFAR-sized, so the stem does not downsample):

    - stem: Conv 3×3, ``2k`` filters, growth rate ``k = 12`` (DenseNet-BC's CIFAR setting). Keras'
      ImageNet DenseNets use ``k = 32``, which here costs ~7× more: 0.87 GFLOPs per 32×64 segment
      vs 0.12 (DenseNet121: 0.23, VGG19: 1.6). The source papers do not pin it down;
      ``_DENSENET22_GROWTH`` is the one constant to change;
    - 3 dense blocks of 3 bottleneck units, each BN-ReLU-Conv 1×1 (``4k``)-BN-ReLU-Conv 3×3 (``k``),
      concatenated to the block's running features;
    - a transition after blocks 1 and 2: BN-ReLU-Conv 1×1 (compression 0.5)-AvgPool 2×2;
    - final BN-ReLU and global average pooling (the softmax Dense is added by :func:`build_model`).

    Weighted layers, counted as Keras' DenseNet121 is named (120 convolutions + 1 Dense = 121;
    BatchNormalization not counted): 1 stem conv + 3 blocks × 3 units × 2 convs (18) +
    2 transition convs + 1 softmax Dense = **22**.

    Keras' own ``keras.applications.densenet.DenseNet(blocks=...)`` is not used: it is not part of
    the public API (only ``keras.src``) and it hard-codes four dense blocks, which gives
    ``2·sum(blocks) + 5`` weighted layers — always odd, so 22 cannot be reached
    (``(2, 2, 2, 2)`` gives 21).
    """
    import keras
    k = _DENSENET22_GROWTH
    eps = 1.001e-5  # as keras.applications.DenseNet
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="densenet22_input")
    x = layers.Conv2D(2 * k, 3, padding="same", use_bias=False, name="conv1_conv")(inputs)
    for b, units in enumerate(DENSENET22_BLOCKS, start=2):
        for u in range(1, units + 1):
            p = f"conv{b}_block{u}"
            y = layers.BatchNormalization(epsilon=eps, name=f"{p}_0_bn")(x)
            y = layers.Activation("relu", name=f"{p}_0_relu")(y)
            y = layers.Conv2D(4 * k, 1, use_bias=False, name=f"{p}_1_conv")(y)
            y = layers.BatchNormalization(epsilon=eps, name=f"{p}_1_bn")(y)
            y = layers.Activation("relu", name=f"{p}_1_relu")(y)
            y = layers.Conv2D(k, 3, padding="same", use_bias=False, name=f"{p}_2_conv")(y)
            x = layers.Concatenate(name=f"{p}_concat")([x, y])
        if b < len(DENSENET22_BLOCKS) + 1:
            p = f"pool{b}"
            x = layers.BatchNormalization(epsilon=eps, name=f"{p}_bn")(x)
            x = layers.Activation("relu", name=f"{p}_relu")(x)
            x = layers.Conv2D(int(x.shape[-1] * 0.5), 1, use_bias=False, name=f"{p}_conv")(x)
            x = layers.AveragePooling2D(2, strides=2, name=f"{p}_pool")(x)
    x = layers.BatchNormalization(epsilon=eps, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="densenet22")


def _blstm_attention(n_features: int) -> keras.Model:
    """LC+W's utterance model: frame-wise Dense 512 (ReLU) → BLSTM (128 units each way) → attention pooling.

    Dropout 0.5 after the dense layer and after the BLSTM. The mask keeps padded frames out of the
    BLSTM and out of the attention weights.
    """
    import keras

    from emotion_refinery.models.layers import AttentionPooling

    frames = keras.Input((None, n_features), name="frames")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = keras.layers.Dense(512, activation="relu", name="frame_dense")(frames)
    x = keras.layers.Dropout(0.5, name="frame_dropout")(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True), name="blstm")(x, mask=mask)
    x = keras.layers.Dropout(0.5, name="blstm_dropout")(x)
    x = AttentionPooling(name="attention_pooling")(x, mask=mask)
    return keras.Model([frames, mask], x, name="blstm_attention")


def _mlp(n_features: int) -> keras.Model:
    """Mean of the frames (padding excluded) → Dense 256 (ReLU) → dropout 0.5. On ``--sequences egemaps``
    (one frame of utterance functionals) it is a one-hidden-layer perceptron on the baseline's features,
    small enough for corpora of a few hundred utterances; on frame sequences it sees only their mean."""
    import keras

    from emotion_refinery.models.layers import MaskedMeanPooling

    frames = keras.Input((None, n_features), name="frames")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = MaskedMeanPooling(name="mean_over_time")(frames, mask=mask)
    x = keras.layers.Dense(256, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(0.5, name="hidden_dropout")(x)
    return keras.Model([frames, mask], x, name="mlp")


#: MLEE's convolution stack: (filters, kernel (time, frequency), stride), each followed by BN, ReLU and 2×2 max-pooling.
MLEE_CONVS = ((16, (12, 16), 2), (24, (8, 12), 1), (32, (5, 7), 1))


def _mlee_crnn(n_features: int) -> keras.Model:
    """MLEE's encoder: 3 × (Conv2D-BN-ReLU-MaxPool 2×2) over (time, frequency) → BLSTM 128 → one-head
    self-attention → mean over time → Dense 64 (ReLU). Time shrinks 16-fold (stride 2, three pools);
    the mask follows it (:class:`~emotion_refinery.models.layers.StridedMask`), and padded steps are zeroed after every
    block, so a padded utterance gives what it gives alone."""
    import keras

    from emotion_refinery.models.layers import MaskedMeanPooling, StridedMask

    frames = keras.Input((None, n_features), name="frames")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = frames * keras.ops.cast(mask, frames.dtype)[..., None]
    x = keras.layers.Reshape((-1, n_features, 1), name="as_image")(x)
    width, stride = n_features, 1
    for i, (filters, kernel, step) in enumerate(MLEE_CONVS):
        x = keras.layers.Conv2D(filters, kernel, strides=step, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{i + 1}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{i + 1}_relu")(x)
        # Zero the steps past the utterance's end (BN made them non-zero), as "same" padding would be for
        # the utterance alone; after the ReLU a zero never wins the max-pool over a real step.
        keep = StridedMask(stride * step, name=f"conv{i + 1}_mask")(mask)
        x = x * keras.ops.cast(keep, x.dtype)[:, :, None, None]
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"conv{i + 1}_pool")(x)
        width = -(-width // step)  # the "same" conv of stride `step`, then the "same" pool of 2, each round up
        width, stride = -(-width // 2), stride * step * 2
    x = keras.layers.Reshape((-1, width * MLEE_CONVS[-1][0]), name="as_sequence")(x)
    m = StridedMask(stride, name="strided_mask")(mask)
    x = keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True), name="blstm")(x, mask=m)
    x = keras.layers.MultiHeadAttention(num_heads=1, key_dim=128, name="self_attention")(x, x, query_mask=m,
                                                                                        value_mask=m)
    x = MaskedMeanPooling(name="mean_over_time")(x, mask=m)
    x = keras.layers.Dense(64, activation="relu", name="embedding")(x)
    return keras.Model([frames, mask], x, name="mlee_crnn")


BACKBONES: Mapping[str, Backbone] = types.MappingProxyType(
    {
        entry.name: entry
        for entry in (
            Backbone("vgg19", "VGG19 (keras.applications), 16 conv layers, no batch norm", _vgg19),
            Backbone("mobilenetv2", "MobileNetV2 α=1.0 (keras.applications)", _mobilenetv2,
                     cpu_segments_per_second=241),
            Backbone("densenet121", "DenseNet121 (keras.applications), blocks (6, 12, 24, 16)", _densenet121),
            Backbone("densenet22", "DenseNet-BC-22, the papers' small DenseNet: 3 blocks × 3 units, k=12",
                     _densenet22, min_size=4, cpu_segments_per_second=83),
            Backbone("efficientnetb0", "EfficientNet-B0 (keras.applications), input rescaling removed",
                     _efficientnetb0, cpu_segments_per_second=149),
            Backbone("small", "3 × (Conv-BN-ReLU-MaxPool), 16/32/64 filters: for tests", _small,
                     min_size=8, gpu_sized=False, cpu_segments_per_second=1534),
            Backbone("tcnn", "temporal CNN, Mel bands as channels, 4 × Conv1D 128/128/256/256: for CPUs",
                     _tcnn, min_size=4, gpu_sized=False, cpu_segments_per_second=1400),
            Backbone("blstm_attention", "Dense 512 → BLSTM 128 → attention pooling over whole utterances (LC+W)",
                     _blstm_attention, min_size=1, gpu_sized=False, reads="utterances"),
            Backbone("mlee_crnn", "3 × Conv2D → BLSTM 128 → self-attention → Dense 64 over whole utterances (MLEE)",
                     _mlee_crnn, min_size=1, gpu_sized=False, reads="utterances"),
            Backbone("mlp", "mean over frames → Dense 256 → dropout: on `--sequences egemaps`, a perceptron on the "
                     "utterance functionals", _mlp, min_size=1, gpu_sized=False, reads="utterances"),
        )
    }
)


# --------------------------------------------------------------------------- public API


def _iter_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Every layer below ``layer``, recursing into nested models."""
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _iter_layers(sub)


def set_batch_norm_momentum(model: keras.Model, momentum: float) -> int:
    """Set ``momentum`` on every BatchNormalization layer of ``model`` (nested models included).

    Must run before the model is first trained (the value is read when the training step is
    traced). The value is part of each layer's config, so a saved model keeps it.

    Returns:
        the number of BatchNormalization layers changed.
    """
    import keras
    count = 0
    for layer in _iter_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            count += 1
    return count


def _band_statistic(value, *, argname: str, n_mels: int, default: float) -> np.ndarray:
    if value is None:
        return np.full((n_mels,), default, dtype=np.float32)
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (n_mels,):
        raise EmorefineError(
            f"{argname} must have one value per Mel band, shape ({n_mels},). Received: {argname} of shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise EmorefineError(f"{argname} must be finite. Received: {argname} with non-finite values")
    if argname == "variance" and np.any(array < 0):
        raise EmorefineError(f"variance must be non-negative. Received: variance with minimum {array.min()}")
    return array.astype(np.float32)


def build_model(
    name: str,
    *,
    input_shape: tuple[int, int, int] = (32, 64, 1),
    n_classes: int,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    bn_momentum: float = 0.99,
    seed: int | None = None,
) -> keras.Model:
    """Build a randomly initialised segment classifier.

    Args:
        name: a key of :data:`BACKBONES`.
        input_shape: ``(n_frames, n_mels, 1)``.
        n_classes: number of emotion classes ``K`` (≥ 2).
        mean: per-Mel-band mean of the training folds' segments, shape ``(n_mels,)``;
            ``None`` (with ``variance=None``): identity normalisation (mean 0, variance 1).
        variance: per-Mel-band variance, shape ``(n_mels,)``, non-negative.
        bn_momentum: momentum of every BatchNormalization layer, in ``[0, 1)``; see the module
            docstring (0.99 for long runs, ~0.9 for short CPU runs).
        seed: if not ``None``, ``keras.utils.set_random_seed(seed)`` is called first so the
            initial weights are reproducible. This is global: it also seeds Python's ``random``,
            NumPy's global generator and the backend.

    Returns:
        An uncompiled :class:`keras.Model` named ``name``: input ``(batch, *input_shape)`` float,
        output ``(batch, n_classes)`` softmax probabilities. Layers: ``"band_normalization"``,
        the backbone (a nested model), ``"predictions"``.
    """
    import keras
    entry = _entry(name, "segments")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise EmorefineError(f"n_classes must be an integer of at least 2. Received: n_classes={n_classes!r}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise EmorefineError(
            "input_shape must be three positive integers (n_frames, n_mels, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    shape = tuple(int(d) for d in shape)
    if shape[0] < entry.min_size or shape[1] < entry.min_size:
        raise EmorefineError(
            f"backbone {name!r} needs at least {entry.min_size} frames and {entry.min_size} Mel bands. "
            f"Received: input_shape={shape}"
        )
    if (mean is None) != (variance is None):
        raise EmorefineError(
            "mean and variance must be given together. "
            f"Received: mean={'None' if mean is None else 'array'}, variance={'None' if variance is None else 'array'}"
        )
    n_mels = shape[1]
    mean = _band_statistic(mean, argname="mean", n_mels=n_mels, default=0.0)
    variance = _band_statistic(variance, argname="variance", n_mels=n_mels, default=1.0)
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 <= bn_momentum < 1:
        raise EmorefineError(f"Received: bn_momentum={bn_momentum!r}; expected a value in [0, 1)")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise EmorefineError(f"seed must be a non-negative integer or None. Received: seed={seed!r}")
        keras.utils.set_random_seed(int(seed))

    inputs = keras.Input(shape=shape, name="segments")
    # axis=2: one mean/variance per Mel band, broadcast over frames and the channel.
    x = keras.layers.Normalization(axis=2, mean=mean, variance=variance, name="band_normalization")(inputs)
    x = entry.build(shape)(x)
    # float32 output even under a mixed-precision policy: softmax and the loss need the range.
    outputs = keras.layers.Dense(int(n_classes), activation="softmax", name="predictions", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=name)
    set_batch_norm_momentum(model, bn_momentum)
    return model


def backbone_names(reads: str = "segments") -> list[str]:
    """Names of the backbones that read ``reads`` (``"segments"``: refine's; ``"utterances"``: whole sequences)."""
    return [n for n, b in BACKBONES.items() if b.reads == reads]


def _entry(name, reads: str) -> Backbone:
    """The registry entry ``name``, which must read ``reads`` (segments or utterances)."""
    names = backbone_names(reads)
    if not isinstance(name, str) or name not in names:
        other = f" (it reads {BACKBONES[name].reads})" if isinstance(name, str) and name in BACKBONES else ""
        raise EmorefineError(f"Received: backbone={name!r}{other}; expected one of {', '.join(names)}")
    return BACKBONES[name]


def build_sequence_model(
    name: str,
    *,
    n_features: int,
    n_classes: int,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    seed: int | None = None,
    activation: str = "softmax",
) -> keras.Model:
    """Build a randomly initialised utterance classifier over whole frame sequences.

    Args:
        name: a key of :data:`BACKBONES` whose entry reads ``"utterances"``.
        n_features: features per frame (e.g. the Mel bands).
        n_classes: ``K`` (≥ 2).
        mean, variance: per-feature statistics of the training frames (``None``: identity).
        seed: as in :func:`build_model`.
        activation: of the output layer: ``"softmax"`` (one class) or ``"sigmoid"`` (each class present
            or not, as MLEE's existence outputs).

    Returns:
        An uncompiled model of ``{"frames": (batch, T, n_features) float, "mask": (batch, T) bool}``
        to ``(batch, K)`` probabilities; padded frames (mask False) do not count. Its layer named
        ``name`` is the backbone (the encoder whose output the output layer reads).
    """
    import keras

    entry = _entry(name, "utterances")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise EmorefineError(f"n_classes must be an integer of at least 2. Received: n_classes={n_classes!r}")
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise EmorefineError(f"n_features must be a positive integer. Received: n_features={n_features!r}")
    if (mean is None) != (variance is None):
        raise EmorefineError("mean and variance must be given together")
    mean = _band_statistic(mean, argname="mean", n_mels=int(n_features), default=0.0)
    variance = _band_statistic(variance, argname="variance", n_mels=int(n_features), default=1.0)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    frames = keras.Input((None, int(n_features)), name="frames")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="feature_normalization")(frames)
    x = entry.build(int(n_features))([x, mask])
    if activation not in ("softmax", "sigmoid"):
        raise EmorefineError(f"Received: activation={activation!r}; expected softmax or sigmoid")
    outputs = keras.layers.Dense(int(n_classes), activation=activation, name="predictions", dtype="float32")(x)
    return keras.Model({"frames": frames, "mask": mask}, outputs, name=name)
