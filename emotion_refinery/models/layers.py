"""Keras layers of emorefine's own, registered so that saved models load in safe mode.

Written with ``keras.ops`` only, so they run on every Keras backend.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["AttentionPooling", "LabelCorrection", "MaskedMeanPooling", "MeanOne", "StridedMask"]


@keras.saving.register_keras_serializable(package="emorefine")
class AttentionPooling(keras.layers.Layer):
    """Attention pooling over time: ``α_t = softmax_t(h_t · u)`` over the unmasked frames, output ``Σ_t α_t h_t``.

    Input ``(batch, T, d)`` with an optional boolean mask ``(batch, T)``; output ``(batch, d)``.
    ``u`` (``d``) is learned.
    """

    def build(self, input_shape):
        self.u = self.add_weight(shape=(input_shape[-1],), initializer="glorot_uniform", name="u")

    def call(self, h, mask=None):
        scores = ops.tensordot(h, ops.cast(self.u, h.dtype), axes=1)  # (batch, T)
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        alpha = ops.softmax(scores, axis=-1)
        return ops.sum(alpha[..., None] * h, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="emorefine")
class MeanOne(keras.constraints.Constraint):
    """Keeps a weight vector positive (≥ ``floor``) and rescales it to mean 1 after every update."""

    def __init__(self, floor: float = 1e-3):
        self.floor = float(floor)

    def __call__(self, w):
        w = ops.maximum(w, self.floor)
        return w / ops.mean(w)

    def get_config(self):
        return {"floor": self.floor}


@keras.saving.register_keras_serializable(package="emorefine")
class LabelCorrection(keras.layers.Layer):
    """LC+W's learned labels and contribution weights, one row per training utterance.

    Holds label logits ``l`` ``(n, K)``, initialised from each utterance's given label so that
    ``softmax(l)`` gives it probability ``confidence`` and the other classes equal shares, and
    contribution weights ``w`` ``(n,)``, initialised to ``K · N_c / N`` for an utterance of class ``c``
    (frequent classes start with a larger weight and so count less) and rescaled to mean 1 after
    every update (:class:`MeanOne`).

    Called on utterance indices ``(batch,)`` (into ``row_of``, which maps a corpus-wide utterance
    index to its training row, −1 for utterances that are not trained on), it returns
    ``(batch, K + 2)``: ``softmax(l)`` of the row, ``w`` of the row, and 1 where the utterance has a
    row (0 elsewhere, e.g. validation utterances, whose loss then uses their given label).

    Args:
        labels: class index of every training row, ``(n,)``.
        row_of: training row of every corpus utterance index, ``(n_utterances,)``, −1 for none.
        n_classes: ``K``.
        initial: starting labels ``(n, K)`` instead (e.g. a previous round's soft targets); then
            ``confidence`` is not used.
        confidence: initial learned probability of the given class, in ``[1/K, 1)``. Logits set to
            the one-hot label itself give ``e / (e + K − 1)`` (0.31 for ``K = 7``), i.e. heavily
            smoothed targets from the first epoch on.
    """

    def __init__(self, labels, row_of, n_classes: int, confidence: float = 0.9, initial=None, **kwargs):
        super().__init__(**kwargs)
        self.labels = [int(c) for c in labels]
        self.row_of = [int(r) for r in row_of]
        self.n_classes = int(n_classes)
        self.confidence = float(confidence)
        #: optional starting labels ``(n, K)`` (rows summing to 1), instead of the given class at ``confidence``
        self.initial = initial
        if not (self.n_classes <= 1 or 1.0 / self.n_classes <= self.confidence < 1.0):
            raise ValueError(f"Received: confidence={confidence!r}; expected a number in "
                             f"[1/{self.n_classes}, 1) for {self.n_classes} classes")

    def build(self, input_shape):
        import numpy as np

        labels = np.asarray(self.labels, np.int64)
        n, k = len(labels), self.n_classes
        share = np.bincount(labels, minlength=k) / max(n, 1)
        if self.initial is not None:  # logits whose softmax is the given starting labels
            start = np.log(np.clip(np.asarray(self.initial, np.float64), 1e-6, None)).astype("float32")
        else:  # softmax of (a on the given class, 0 elsewhere) gives the given class e^a / (e^a + K − 1)
            a = np.log(self.confidence * (k - 1) / (1.0 - self.confidence)) if k > 1 else 0.0
            start = (a * np.eye(k, dtype="float32")[labels]).astype("float32")
        self.logits = self.add_weight(shape=(n, k), name="label_logits", initializer=keras.initializers.Constant(start))
        self.contribution = self.add_weight(shape=(n,), name="contribution_weights", constraint=MeanOne(),
                                        initializer=keras.initializers.Constant((k * share[labels]).astype("float32")))
        self._row_of = ops.convert_to_tensor(np.asarray(self.row_of, np.int32))

    def call(self, utt):
        rows = ops.take(self._row_of, ops.cast(utt, "int32"))
        valid = rows >= 0
        safe = ops.where(valid, rows, ops.zeros_like(rows))
        s = ops.softmax(ops.take(self.logits, safe, axis=0), axis=-1)
        w = ops.take(self.contribution, safe)
        return ops.concatenate([s, w[:, None], ops.cast(valid, s.dtype)[:, None]], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_classes + 2)

    def get_config(self):
        return {**super().get_config(), "labels": self.labels, "row_of": self.row_of, "n_classes": self.n_classes,
                "confidence": self.confidence}


@keras.saving.register_keras_serializable(package="emorefine")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the unmasked time steps: ``(batch, T, d)`` with a boolean mask ``(batch, T)`` → ``(batch, d)``."""

    def call(self, h, mask=None):
        if mask is None:
            return ops.mean(h, axis=1)
        m = ops.cast(mask, h.dtype)[..., None]
        return ops.sum(h * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="emorefine")
class StridedMask(keras.layers.Layer):
    """The time mask of a layer stack that halves time ``log2(stride)`` times with ``"same"`` padding.

    A padding mask is a run of True then False, so a "same" stride-2 step keeps step ``i`` exactly
    when input step ``2i`` was real: the mask becomes ``mask[:, ::stride]``.
    """

    def __init__(self, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, inputs):  # not named "mask": Keras passes an argument of that name as the layer's mask
        return inputs[:, :: self.stride]

    def compute_output_shape(self, input_shape):
        t = input_shape[1]
        return (input_shape[0], None if t is None else -(-t // self.stride))

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}
