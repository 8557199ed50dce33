"""LC+W: labels and sample contribution weights learned during training (utterance level).

Every training utterance ``n`` gets learnable label logits ``l_n`` (initialised to its one-hot
label; its learned label is ``s_n = softmax(l_n)``) and a contribution weight ``w_n``
(initialised to ``K · N_c / N`` for its class ``c``, rescaled to mean 1 after every update). The
loss of utterance ``n`` with predicted probabilities ``y_n`` is

    L_n = − Σ_c s_{n,c} log y_{n,c} / w_n

Training alternates: an epoch that updates the network θ with ``l``, ``w`` fixed, then an epoch
that updates ``l`` and ``w`` (or only one of them, for the ablations) with θ fixed. ``epochs``
counts θ epochs, so every variant trains its network equally long; ``warmup`` θ epochs may come
before the first label epoch. Early stopping
watches the validation loss (cross-entropy on the validation utterances' given labels) after the
θ epochs and restores the best θ.

The baselines learn nothing besides the network: ``class-weights`` and ``none`` (the publication's
baseline, BLSTM + attention trained with class-proportion weights) keep ``w_n`` at its start
``K · N_c / N``, i.e. weigh every training utterance by the inverse frequency of its class in the training
folds, normalised to mean 1 over them (``N / (K · N_c)``); ``oversample`` balances the classes by
drawing them equally often instead, with weight 1.

The math is in ``keras.ops`` (:class:`emotion_refinery.models.layers.LabelCorrection`, :func:`lcw_loss`),
so it runs on every Keras backend.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from emotion_refinery.data.feature_config import LCW_UPDATES as UPDATES
from emotion_refinery.errors import EmorefineError
from emotion_refinery.models.layers import LabelCorrection

__all__ = ["UPDATES", "lcw_loss", "update_loss", "lcw_model", "fit_lcw", "LCWResult"]

_LEARNED_LABELS = ("both", "labels")
#: The updates whose loss divides by the contribution weights (``none``: the fixed class-proportion ones, as
#: the publication's baseline; ``oversample`` balances the classes by drawing them instead).
_WEIGHTED = ("both", "weights", "class-weights", "none")
_NETWORK_ONLY = ("none", "class-weights", "oversample")

_EPS = 1e-7


def lcw_loss(n_classes: int, *, learned_labels: bool = True, weighted: bool = True) -> Callable:
    """The LC+W loss over the outputs of :func:`lcw_model` ``[y (K), s (K), w, has_row]``.

    Targets are the learned labels ``s`` (or, with ``learned_labels=False``, the given ``y_true``), divided
    by ``w`` (or by 1 with ``weighted=False``). Rows without a training row (validation utterances) use
    their given label and weight 1, i.e. plain cross-entropy.
    """
    k = int(n_classes)

    def loss(y_true, out):
        y = ops.clip(out[:, :k], _EPS, 1.0)
        s, w, has_row = out[:, k:2 * k], out[:, 2 * k], out[:, 2 * k + 1]
        given = ops.cast(y_true, s.dtype)
        use_s = has_row[:, None] if learned_labels else ops.zeros_like(has_row)[:, None]
        target = use_s * s + (1.0 - use_s) * given
        weight = has_row * w + (1.0 - has_row) if weighted else ops.ones_like(w)
        return -ops.sum(target * ops.log(y), axis=-1) / weight

    return loss


def update_loss(n_classes: int, update: str) -> Callable:
    """The :func:`lcw_loss` that ``update`` (one of :data:`UPDATES`) trains with."""
    if update not in UPDATES:
        raise EmorefineError(f"Received: update={update!r}; expected one of {', '.join(UPDATES)}")
    return lcw_loss(n_classes, learned_labels=update in _LEARNED_LABELS, weighted=update in _WEIGHTED)


def _accuracy(n_classes: int) -> Callable:
    def accuracy(y_true, out):
        return ops.cast(ops.argmax(out[:, :n_classes], axis=-1) == ops.argmax(y_true, axis=-1), "float32")
    return accuracy


def lcw_model(classifier: keras.Model, correction: LabelCorrection, *, index: str = "utt") -> keras.Model:
    """The classifier's inputs plus a row index ``index`` → ``[classifier probabilities (K), s (K), w, has_row]``,
    ``(batch, 2K + 2)``.

    An utterance model takes ``{"frames", "mask", index}``; a segment model (one input tensor) takes
    ``{"segments", index}``. ``index`` is what ``correction.row_of`` maps to training rows: the utterance
    index (``"utt"``) or the global segment index (``"row"``).
    """
    if isinstance(classifier.input, dict):
        inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name) for name, t in classifier.input.items()}
        y = classifier(inputs)
    else:
        inputs = {"segments": keras.Input(classifier.input.shape[1:], name="segments")}
        y = classifier(inputs["segments"])
    inputs[index] = keras.Input((), dtype="int64", name=index)
    out = keras.layers.Concatenate(name="lcw_outputs")([y, correction(inputs[index])])
    return keras.Model(inputs, out, name="lcw")


@dataclasses.dataclass
class LCWResult:
    """What :func:`fit_lcw` learned: the learned labels ``s`` ``(n, K)`` and weights ``w`` ``(n,)`` of the training
    rows, and per epoch its phase (``"theta"`` or ``"labels"``) and losses."""

    labels: np.ndarray
    weights: np.ndarray
    history: list[dict]
    best_epoch: int


def oversample_repeats(labels, n_classes: int, seed: int = 0) -> np.ndarray:
    """How often each row of ``labels`` (class indices) is used per epoch so that every class is drawn
    ``max_c N_c`` times: ``N_max // N_c`` times each, plus once more for ``N_max % N_c`` rows of the class
    chosen at random (reproducible from ``seed``). Classes absent from ``labels`` stay absent."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_classes)
    target = counts.max(initial=0)
    repeats = np.zeros(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for c in np.flatnonzero(counts):
        rows = np.flatnonzero(labels == c)
        repeats[rows] = target // counts[c]
        repeats[rng.choice(rows, size=target % counts[c], replace=False)] += 1
    return repeats


def _set_phase(classifier: keras.Model, correction: LabelCorrection, phase: str, update: str) -> None:
    classifier.trainable = phase == "theta"
    correction.trainable = phase != "theta"
    correction.logits.trainable = phase != "theta" and update in _LEARNED_LABELS
    correction.contribution.trainable = phase != "theta" and update in ("both", "weights")


def fit_lcw(classifier: keras.Model, correction: LabelCorrection, train, validation, *, epochs: int,
            warmup: int = 1, patience: int = 3, lr: float = 1e-3, label_lr: float = 0.05, update: str = "both",
            log: Callable[[str], None] = lambda s: None,
            on_epoch: Callable[[int, str], None] | None = None, index: str = "utt") -> LCWResult:
    """Train θ for at most ``epochs`` epochs, each followed by a label/weight epoch from the ``warmup``-th on
    (none after the last), early stopping on the θ epochs' validation loss; the best θ is restored.

    Args:
        classifier: an utterance model (e.g. :func:`emotion_refinery.models.backbones.build_sequence_model`).
        correction: the training rows' :class:`LabelCorrection` (its ``row_of`` maps the ``utt`` of
            ``train`` to rows; validation utterances have none).
        train, validation: ``({"frames", "mask", "utt"}, y)`` batches
            (:func:`emotion_refinery.records.datasets.sequence_dataset`).
        lr, label_lr: Adam learning rates of θ and of ``l``, ``w``.
        update: one of :data:`UPDATES` (:func:`update_loss`; ``none`` weighs the classes by their inverse
            frequency among the training rows).
        warmup: θ epochs before the first label/weight epoch (1: strict alternation, as published). The
            learned labels follow the network's predictions, so a network that has not yet learned much
            pulls them towards its mistakes.
        patience: θ epochs without a lower validation loss before stopping.
        on_epoch: called as ``on_epoch(epoch, phase)`` after every epoch (e.g. to checkpoint).
        index: the input key of the row index (see :func:`lcw_model`).
    """
    if update not in UPDATES:
        raise EmorefineError(f"Received: update={update!r}; expected one of {', '.join(UPDATES)}")
    if int(warmup) != warmup or warmup < 1:
        raise EmorefineError(f"Received: warmup={warmup!r}; expected an integer of at least 1")
    k = int(classifier.outputs[0].shape[-1])
    model = lcw_model(classifier, correction, index=index)
    optimizers = {"theta": keras.optimizers.Adam(lr), "labels": keras.optimizers.Adam(label_lr)}
    history: list[dict] = []
    best, best_epoch, best_weights, waited = np.inf, -1, None, 0

    def run_epoch(phase: str) -> dict:
        _set_phase(classifier, correction, phase, update)
        model.compile(optimizer=optimizers[phase], metrics=[_accuracy(k)], loss=update_loss(k, update))
        with warnings.catch_warnings():  # length-bucketed data has no known length: Keras warns at its end
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            h = model.fit(train, validation_data=validation if phase == "theta" else None, epochs=1, verbose=0,
                          shuffle=False)
        entry = {"epoch": len(history) + 1, "phase": phase, **{n: float(v[-1]) for n, v in h.history.items()}}
        history.append(entry)
        log(f"epoch {entry['epoch']} ({phase}): " + ", ".join(f"{n} {v:.4f}" for n, v in entry.items()
                                                             if n not in ("epoch", "phase")))
        if on_epoch is not None:
            on_epoch(entry["epoch"] - 1, phase)
        return entry

    for theta_epoch in range(1, epochs + 1):
        entry = run_epoch("theta")
        if entry["val_loss"] < best:
            best, best_epoch, best_weights, waited = entry["val_loss"], entry["epoch"], classifier.get_weights(), 0
        else:
            waited += 1
            if waited > patience:
                break
        if update not in _NETWORK_ONLY and warmup <= theta_epoch < epochs:
            run_epoch("labels")
    if best_weights is not None:
        classifier.set_weights(best_weights)
    classifier.trainable = correction.trainable = True
    s = ops.convert_to_numpy(ops.softmax(correction.logits, axis=-1))
    return LCWResult(labels=np.asarray(s), weights=ops.convert_to_numpy(correction.contribution),
                     history=history, best_epoch=best_epoch)
