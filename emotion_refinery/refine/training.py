"""Training of one (round, fold): a fresh model on the other folds, then the out-of-fold step.

Folds: fold ``k`` is held out; fold ``(k + 1) % K`` is the validation part used for early
stopping; the other K − 2 folds train. The Normalization layer inside the model takes its
statistics from the training folds only.

When training ends (early stopping has restored the best weights), the
:class:`OutOfFoldLabels` callback predicts fold ``k``, saves those out-of-fold predictions
and writes fold ``k``'s label shards for the next round with the run's rule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import keras
import numpy as np

from emotion_refinery.data.folds import fold_seed, split_folds
from emotion_refinery.data.votes import soft_targets
from emotion_refinery.errors import TrainingError
from emotion_refinery.models.backbones import build_model
from emotion_refinery.models.distribute import even_batch_size, model_replicas, replica_devices, task_replicas
from emotion_refinery.records.augment import make_augment
from emotion_refinery.records.datasets import (
    SEQUENCE_SHUFFLE_BUFFER,
    count_training_segments,
    evaluation_dataset,
    training_dataset,
)
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from emotion_refinery.refine.rules import RULES, refine_labels
from emotion_refinery.refine.settings import RefineConfig
from emotion_refinery.util.processes import available_memory
from tf_records.atomic import atomic_path, write_json

__all__ = ["OutOfFoldLabels", "ValidationDecisions", "RemainingTime", "train_fold", "train_teacher",
           "write_self_targets", "teacher_halves", "predict_fold", "next_targets", "given_targets", "given_labels",
           "fold_seed", "split_folds"]


def predict_fold(model, manifest: RecordsManifest, fold: int, *, batch_size: int = 512, normalize=None,
                 what: str = "", segments_from: str = "segments") -> np.ndarray:
    """``model``'s class probabilities for every segment of ``fold`` in stored order, rows summing to 1.

    Raises:
        TrainingError: some prediction is NaN or infinite (``what`` names the model in the message).
    """
    lo, hi = manifest.fold_segments(fold)
    batch = even_batch_size(hi - lo, batch_size, model_replicas(model))  # no replica left empty
    ds = evaluation_dataset(manifest, folds=[fold], batch_size=batch, normalize=normalize, segments_from=segments_from)
    q = model.predict(ds, verbose=0).astype(np.float32)
    if len(q) != hi - lo:
        raise RuntimeError(f"predicted {len(q)} segments of fold {fold}; it holds {hi - lo}")
    if not np.all(np.isfinite(q)):
        raise TrainingError(f"{what}: the model predicts NaN or infinite probabilities for "
                            f"{int(np.sum(~np.isfinite(q).all(axis=1)))} segment(s) of fold {fold}; nothing of it "
                            "was kept. Lower --lr, or check the records (`emorefine verify`).")
    return q / q.sum(axis=1, keepdims=True)


def given_targets(manifest: RecordsManifest, fold: int, source: str = "labels", *,
                  labels: np.ndarray | None = None) -> np.ndarray:
    """What round 0 trains on for ``fold``'s segments, float32 ``(fold's segments, K)``: the one-hot
    utterance labels, or (``source="votes"``) the soft targets of :func:`emotion_refinery.data.votes.soft_targets`.

    ``labels``: the class of every utterance as training sees it (planted noise,
    :func:`emotion_refinery.data.label_noise.training_labels`); default, the records' labels."""
    lo, hi = manifest.fold_segments(fold)
    table = manifest.segment_table()
    if source == "labels":
        seg_labels = table["label"][lo:hi] if labels is None else np.asarray(labels)[table["utterance"][lo:hi]]
        return np.eye(len(manifest.classes), dtype=np.float32)[seg_labels]
    per_utterance = soft_targets(manifest.utterances, manifest.classes)
    return per_utterance[table["utterance"][lo:hi]].astype(np.float32)


def given_labels(manifest: RecordsManifest, config: RefineConfig) -> np.ndarray | None:
    """The class of every utterance as the run's training sees it with ``config.label_noise`` (planted
    noise, :func:`emotion_refinery.data.label_noise.training_labels`); ``None`` without it (the records' labels)."""
    from emotion_refinery.data.label_noise import training_labels

    return training_labels(manifest, config.label_noise, config.seed) if config.label_noise else None


def next_targets(manifest: RecordsManifest, fold: int, q: np.ndarray, *, rule: str, alpha: float | None,
                 source: str = "labels", labels: np.ndarray | None = None) -> np.ndarray:
    """The next round's targets of ``fold``'s segments from predictions ``q`` of them, by ``rule``; the rules
    mix in round 0's targets (:func:`given_targets` of ``source`` and ``labels``)."""
    lo, hi = manifest.fold_segments(fold)
    table = manifest.segment_table()
    utterance = table["utterance"][lo:hi]
    seg_labels = table["label"][lo:hi] if labels is None else np.asarray(labels)[utterance]
    given = None if source == "labels" else given_targets(manifest, fold, source).astype(np.float64)
    return refine_labels(rule, predictions=q, labels=seg_labels, utterance_index=utterance,
                         alpha=alpha if alpha is not None else 0.0, given=given)


class OutOfFoldLabels(keras.callbacks.Callback):
    """At the end of training: predict the held-out fold, save the predictions, write next round's label shards.

    Args:
        manifest: the records.
        run: the run directory.
        t, k: round and held-out fold.
        rule, alpha: the label update rule for round ``t + 1`` (``None``: no labels from this model — the
            last round, or cross-fit targets, which come from teachers).
        source, labels: round 0's targets, which the rule mixes in (:func:`given_targets`).
    """

    def __init__(self, manifest: RecordsManifest, run: RunDir, *, t: int, k: int, rule: str | None,
                 alpha: float | None, batch_size: int = 512, normalize=None, source: str = "labels", labels=None,
                 segments_from: str = "segments"):
        super().__init__()
        self.manifest, self.run, self.t, self.k = manifest, run, t, k
        self.rule, self.alpha, self.batch_size, self.normalize = rule, alpha, batch_size, normalize
        self.source, self.labels, self.segments_from = source, labels, segments_from
        self.seconds = 0.0

    def on_train_end(self, logs=None):
        start = time.perf_counter()
        q = predict_fold(self.model, self.manifest, self.k, batch_size=self.batch_size, normalize=self.normalize,
                         what=f"round {self.t}, fold {self.k}", segments_from=self.segments_from)
        self.run.save_predictions(self.t, self.k, q)
        if self.rule is not None:
            targets = next_targets(self.manifest, self.k, q, rule=self.rule, alpha=self.alpha, source=self.source,
                                   labels=self.labels)
            self.run.write_labels(self.t + 1, self.manifest, self.k, targets)
        self.seconds = time.perf_counter() - start


class ValidationDecisions(keras.callbacks.Callback):
    """At the end of training: the utterance decisions of the model on its validation (early-stopping) fold.

    Each utterance of the validation fold gets the class of its mean segment probability. Pooled
    over the K models of a round, every utterance is decided exactly once by a model that neither
    trained on it nor was tested on it, which gives the round a validation accuracy for choosing
    rounds without looking at the test folds.
    """

    def __init__(self, manifest: RecordsManifest, *, fold: int, batch_size: int = 512, normalize=None,
                 segments_from: str = "segments"):
        super().__init__()
        self.manifest, self.fold, self.batch_size, self.normalize = manifest, fold, batch_size, normalize
        self.segments_from = segments_from
        self.decisions: dict[int, int] = {}

    def on_train_end(self, logs=None):
        lo, hi = self.manifest.fold_segments(self.fold)
        batch = even_batch_size(hi - lo, self.batch_size, model_replicas(self.model))
        ds = evaluation_dataset(self.manifest, folds=[self.fold], batch_size=batch, normalize=self.normalize,
                                segments_from=self.segments_from)
        q = self.model.predict(ds, verbose=0)
        start, _ = self.manifest.fold_segments(self.fold)
        for u in (u for u in self.manifest.utterances if u["fold"] == self.fold):
            lo = u["first_segment"] - start
            self.decisions[u["index"]] = int(np.argmax(q[lo:lo + u["segments"]].mean(axis=0)))


def _check_losses(history: dict, name: str) -> None:
    """Raise :class:`TrainingError` naming the first epoch whose training or validation loss is not finite."""
    losses = [float(v) for v in history.get("loss", [])]
    validated = "val_loss" in history  # not without an early-stopping fold
    val_losses = [float(v) for v in history.get("val_loss", [])]
    # TerminateOnNaN ended an epoch before validation; without validation there is nothing to pad
    val_losses += [np.nan if validated else 0.0] * (len(losses) - len(val_losses))
    bad = [e for e, pair in enumerate(zip(losses, val_losses)) if not np.all(np.isfinite(pair))]
    if bad or not losses:
        raise TrainingError(f"{name}: the loss became NaN or infinite in epoch {bad[0] + 1 if bad else 1} "
                            f"(training losses {losses}, validation losses {val_losses}); the fold is not marked "
                            "done. Lower --lr, or check the records (`emorefine verify`).")


class RemainingTime(keras.callbacks.Callback):
    """After the first epoch, log an estimate of the time left for the whole run.

    Args:
        tasks_left: (round, fold) trainings still to run after this one.
        epochs: most epochs of each.
        log: where the line goes.
    """

    def __init__(self, *, tasks_left: int, epochs: int, log: Callable[[str], None]):
        super().__init__()
        self.tasks_left, self.epochs, self.log = tasks_left, epochs, log

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 0:
            self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            per_epoch = time.perf_counter() - self.start
            left = per_epoch * (self.epochs - 1 + self.tasks_left * self.epochs)
            self.log(f"first epoch took {per_epoch:.0f} s; at most {_duration(left)} left for this run "
                     f"({self.tasks_left} more fold trainings of up to {self.epochs} epochs)")


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{seconds:.0f} s" if minutes < 1 else (f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h")


#: Share of the available memory the cached training set and its shuffle buffer may take.
MEMORY_SHARE = 0.5


def memory_plan(n_segments: int, segment_bytes: int, cache: str, available: int | None, *,
                frame_bytes: int | None = None) -> tuple[str, int | None, str]:
    """``(cache, shuffle_buffer, note)`` for a training set of ``n_segments`` segments of ``segment_bytes``.

    In memory, the cache and a whole-set shuffle buffer hold the set about twice; with ``frame_bytes``
    (segments cut from the sequence shards, ``--segments-from sequences``) the cache holds the utterances'
    frames, ``frame_bytes`` in all, and the buffer at most :data:`SEQUENCE_SHUFFLE_BUFFER` segments. When that
    would take more than :data:`MEMORY_SHARE` of the ``available`` bytes, segments are re-read every epoch
    instead and shuffled in a buffer that fits (the order then differs from a cached run's; ``note`` says so).
    ``shuffle_buffer`` ``None``: the default one.
    """
    if frame_bytes is None:
        need = 2 * n_segments * segment_bytes
    else:
        need = frame_bytes + min(n_segments, SEQUENCE_SHUFFLE_BUFFER) * segment_bytes
    if available is None or need <= MEMORY_SHARE * available:
        return cache, None, ""
    buffer = min(max(1024, int(MEMORY_SHARE * available / segment_bytes)), n_segments)
    hint = "" if frame_bytes is not None else (
        "; with records built with `--sequences log-mel`, `--segments-from sequences` caches the utterances' "
        "frames instead of their segments")
    return "none", buffer, (
        f"the training set ({n_segments:,} segments, {need / 2**30:.1f} GiB cached and shuffled) would not fit in "
        f"{MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available: segments are re-read every epoch and "
        f"shuffled in a buffer of {buffer:,}{hint}")


def teacher_halves(train_folds: list[int]) -> tuple[list[int], list[int]]:
    """The two halves of a split's training folds that its cross-fit teachers train on (alternate folds)."""
    return list(train_folds[0::2]), list(train_folds[1::2])



def _segment_model(manifest: RecordsManifest, config: RefineConfig, normalize, exclude_folds: tuple[int, ...]):
    """A fresh segment classifier of ``config.backbone``; its band normalisation is the identity under
    ``--speaker-norm`` (``normalize`` given), else the training folds' statistics."""
    f = manifest.features
    if normalize is not None:
        mean, variance = np.zeros(f.n_mels), np.ones(f.n_mels)
    else:
        mean, variance = manifest.normalization(exclude_folds=exclude_folds)
    return build_model(config.backbone, input_shape=(f.segment_frames, f.n_mels, 1),
                       n_classes=len(manifest.classes), mean=mean, variance=variance,
                       bn_momentum=config.bn_momentum)

def _fit(manifest: RecordsManifest, run: RunDir, config: RefineConfig, *, seed: int, train_folds: list[int],
         val_fold: int, train_labels, val_labels, exclude_folds: tuple[int, ...], normalize, logs_dir,
         end_callbacks: list, name: str, verbose: int, log: Callable[[str], None], tasks_left: int | None):
    """Build, compile and fit a fresh model; ``end_callbacks`` run after early stopping restored the best weights.

    ``normalize``: per-utterance ``(shift, scale)`` of ``--speaker-norm`` (then the model's own band
    normalisation is the identity), else ``None`` (the model normalises with the training folds' statistics).

    Returns:
        ``(history, best_epoch_index, n_train_segments)``.
    """
    keras.utils.set_random_seed(seed)
    f = manifest.features
    replicas = task_replicas()  # several GPUs: data-parallel over all of them (emotion_refinery.models.distribute)
    batch_size = config.batch_size * replicas.count
    n_train = count_training_segments(manifest, train_folds, config.train_stride)
    if replicas.count > 1:
        log(f"{name}: {replicas.describe(config.batch_size)}")
        if n_train < batch_size:
            raise TrainingError(f"{name}: {n_train} training segments are fewer than one global batch of "
                                f"{batch_size} ({config.batch_size} × {replicas.count} replicas); lower --batch-size")
    steps = n_train // batch_size if replicas.count > 1 else math.ceil(n_train / batch_size)
    with replicas.scope():
        model = _segment_model(manifest, config, normalize, exclude_folds)
        schedule = keras.optimizers.schedules.ExponentialDecay(
            config.lr, decay_steps=config.decay_epochs * steps, decay_rate=config.decay_rate, staircase=True)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.CategoricalCrossentropy(),
                      metrics=["accuracy"], jit_compile=config.jit_compile)
    augment = make_augment(spec_augment_masks=config.spec_augment, freq_shift_bands=config.freq_shift,
                           mixup_alpha=config.mixup)
    item = np.dtype(f.dtype).itemsize
    frame_bytes = None if config.segments_from == "segments" else sum(
        u["sequence_frames"] * f.n_mels * item for u in manifest.utterances if u["fold"] in set(train_folds))
    cache, buffer, note = memory_plan(n_train, f.segment_frames * f.n_mels * item, config.cache, available_memory(),
                                      frame_bytes=frame_bytes)
    if note:
        log(f"{name}: {note}")
    train = training_dataset(manifest, labels_dir=train_labels, folds=train_folds, batch_size=batch_size,
                             seed=seed, cache=cache, stride=config.train_stride, augment=augment,
                             normalize=normalize, shuffle_buffer=buffer, segments_from=config.segments_from,
                             drop_remainder=replicas.count > 1)
    val, stopping = None, None
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 keras.callbacks.TensorBoard(log_dir=str(logs_dir), write_graph=False, profile_batch=0)]
    if val_fold is not None:  # without one (early_stopping none), every epoch trains and the last one is kept
        val_batch = even_batch_size(count_training_segments(manifest, [val_fold], config.train_stride), 512,
                                    replicas.count)
        val = training_dataset(manifest, labels_dir=val_labels, folds=[val_fold], batch_size=val_batch,
                               cache=config.cache, stride=config.train_stride, shuffle=False, normalize=normalize,
                               segments_from=config.segments_from)
        # Early stopping watches the validation loss only from epoch `min_epochs` on: in the first epochs
        # the inference-mode loss is still unstable (BN statistics settling) and would stop a fold for good.
        stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                 restore_best_weights=True, start_from_epoch=config.min_epochs)
        callbacks.insert(1, stopping)
    if tasks_left is not None:
        callbacks.append(RemainingTime(tasks_left=tasks_left, epochs=config.epochs, log=log))
    try:  # end_callbacks after EarlyStopping, whose on_train_end restores the best weights first
        history = model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks + end_callbacks,
                            verbose=verbose, shuffle=False)
    except TrainingError:  # NaN predictions found at the end: name the epoch whose loss went bad, if one did
        _check_losses(model.history.history, name)
        raise
    _check_losses(history.history, name)
    # The weights kept: the best monitored epoch's, or the last epoch's when none was monitored.
    monitored = stopping is not None and stopping.best_weights is not None
    best = stopping.best_epoch if monitored else len(history.history["loss"]) - 1
    return model, history.history, best, n_train


def _fit_lcw(manifest: RecordsManifest, run: RunDir, config: RefineConfig, *, seed: int, train_folds: list[int],
             val_fold: int, train_labels, val_labels, exclude_folds: tuple[int, ...], normalize, logs_dir,
             end_callbacks: list, name: str, verbose: int, log: Callable[[str], None], tasks_left: int | None,
             fold_targets: Callable[[int], np.ndarray]):
    """:func:`_fit` for the ``lcw`` rule: the network alternates with epochs that learn a label and a weight
    per training segment (:func:`emotion_refinery.models.label_correction.fit_lcw`), starting from the targets it is
    given.

    Returns ``(model, history, best_epoch_index, n_train)`` as :func:`_fit`; ``history`` also holds
    ``"learned"`` (the learned labels, one row per training segment) and ``"rows"`` (their global segment
    indices). ``fold_targets(fold)``: the targets this round trains on, of one training fold.
    """
    from emotion_refinery.models.label_correction import fit_lcw
    from emotion_refinery.models.layers import LabelCorrection

    keras.utils.set_random_seed(seed)
    if len(devices := replica_devices()) > 1:  # its label / weight epochs update per-segment tables
        log(f"{name}: the lcw rule trains on one device ({devices[0]}) of the {len(devices)} this task sees")
    model = _segment_model(manifest, config, normalize, exclude_folds)
    # mixup is refused for lcw (RefineConfig): it would mix the targets that the segment indices name.
    augment = make_augment(spec_augment_masks=config.spec_augment, freq_shift_bands=config.freq_shift)
    train = training_dataset(manifest, labels_dir=train_labels, folds=train_folds, batch_size=config.batch_size,
                             seed=seed, cache=config.cache, stride=config.train_stride, normalize=normalize,
                             augment=augment, with_index=True, segments_from=config.segments_from)
    val = training_dataset(manifest, labels_dir=val_labels, folds=[val_fold], batch_size=512, cache=config.cache,
                           stride=config.train_stride, shuffle=False, normalize=normalize, with_index=True,
                           segments_from=config.segments_from)
    # The training rows: every training segment the stride keeps, in global index order, with the targets
    # this round trains on as their starting labels.
    table = manifest.segment_table()
    counts = [u["segments"] for u in manifest.utterances]
    position = np.arange(manifest.n_segments) - np.repeat([u["first_segment"] for u in manifest.utterances], counts)
    rows = np.flatnonzero(np.isin(table["fold"], train_folds) & (position % config.train_stride == 0))
    targets = np.zeros((manifest.n_segments, len(manifest.classes)), np.float32)
    for fold in train_folds:
        targets[slice(*manifest.fold_segments(fold))] = fold_targets(fold)
    initial = targets[rows]
    # Hard starting targets (round 0) start at the given class with probability 0.9, so the labels can move.
    initial = np.where(initial.max(axis=1, keepdims=True) > 0.999,
                       0.9 * initial + 0.1 * (1 - initial) / max(len(manifest.classes) - 1, 1), initial)
    row_of = -np.ones(manifest.n_segments, np.int64)
    row_of[rows] = np.arange(len(rows))
    # The contribution weights start from the classes training sees (with --label-noise, the flipped ones).
    given = given_labels(manifest, config)
    seen = table["label"][rows] if given is None else given[table["utterance"][rows]]
    correction = LabelCorrection(seen, row_of, len(manifest.classes), initial=initial)
    result = fit_lcw(model, correction, train, val, epochs=config.epochs, patience=config.patience, lr=config.lr,
                     index="row", log=log if verbose else (lambda s: None))
    for callback in end_callbacks:  # as after Keras' fit: the classifier with its best weights
        callback.set_model(model)
        callback.on_train_end()
    theta = [h for h in result.history if h["phase"] == "theta"]
    history = {"loss": [h["loss"] for h in theta], "val_loss": [h["val_loss"] for h in theta],
               "learned": result.labels, "rows": rows}
    best = [h["epoch"] for h in theta].index(result.best_epoch) if result.best_epoch > 0 else len(theta) - 1
    _check_losses({"loss": history["loss"], "val_loss": history["val_loss"]}, name)
    return model, history, best, len(rows)


def _write_learned_labels(manifest: RecordsManifest, run: RunDir, *, t: int, k: int, train_folds: list[int],
                          labels: np.ndarray, rows: np.ndarray, fold_targets: Callable[[int], np.ndarray]) -> None:
    """Split ``k``'s targets of round ``t + 1`` for its training folds: the labels its model learned (segments
    the stride left out keep their round-``t`` targets). Fold ``k`` gets none from its own split."""
    for fold in train_folds:
        lo, hi = manifest.fold_segments(fold)
        targets = np.array(fold_targets(fold), np.float32)
        inside = (rows >= lo) & (rows < hi)
        targets[rows[inside] - lo] = labels[inside]
        run.write_labels(t + 1, manifest, fold, targets, split=k)


def train_fold(
    manifest: RecordsManifest,
    run: RunDir,
    config: RefineConfig,
    *,
    t: int,
    k: int,
    verbose: int = 0,
    log: Callable[[str], None] = print,
    tasks_left: int | None = None,
) -> dict:
    """Train round ``t``'s model for held-out fold ``k`` and finish the fold (model, predictions, labels).

    With ``targets="cross-fit"``, rounds after the first train on split ``k``'s own targets (from its
    teachers) and stop early on the utterance labels of the validation fold, and the model writes no
    labels (its split's teachers do). With ``targets="self"`` the model itself predicts its training
    folds at the end and writes split ``k``'s targets of round ``t + 1`` (it never saw fold ``k``).

    Args:
        tasks_left: trainings after this one; when given, the time left is estimated
            and logged after the first epoch.

    Returns:
        The fold's summary, also written to ``done/fold-KK.json`` as the completion mark.
    """
    start = time.perf_counter()
    train_folds, val_fold = split_folds(manifest.n_folds, k, validation=config.early_stopping == "fold")
    seed = fold_seed(config.seed, t, k)
    last = t == config.rounds - 1
    cross_fit = config.split_targets_round(t)  # split k trains on its own targets
    learned = RULES[config.rule].learned
    rule = None if last or config.targets != "oof" or learned else config.rule
    normalize = run.load_speaker_norm() if run.normalises(k, manifest.n_folds) else None
    oof = OutOfFoldLabels(manifest, run, t=t, k=k, rule=rule, alpha=None if rule is None else config.alphas()[t + 1],
                          normalize=normalize, source=config.label_source, labels=given_labels(manifest, config),
                          segments_from=config.segments_from)
    decisions = None if val_fold is None else ValidationDecisions(manifest, fold=val_fold, normalize=normalize,
                                                                  segments_from=config.segments_from)
    own = None  # self targets: this model predicts its own training folds → split k's targets of round t + 1
    if config.targets == "self" and not last and not learned:
        own = _TeacherTargets(manifest, run, t=t, k=k, folds=train_folds, rule=config.rule,
                              alpha=config.alphas()[t + 1], name=f"round {t}, split {k}, self targets",
                              normalize=normalize, source=config.label_source, labels=given_labels(manifest, config),
                              segments_from=config.segments_from)

    def fold_targets(fold):  # the targets of a training fold this round trains on
        return run.load_fold_targets(t, manifest, fold, split=k if cross_fit else None)

    fit, extra = (_fit_lcw, {"fold_targets": fold_targets}) if learned else (_fit, {})
    model, history, best, n_train = fit(
        manifest, run, config, seed=seed, train_folds=train_folds, val_fold=val_fold,
        train_labels=run.labels_dir(t, k if cross_fit else None), val_labels=run.labels_dir(0 if cross_fit else t),
        exclude_folds=(k,) if val_fold is None else (k, val_fold), normalize=normalize, logs_dir=run.logs_dir(t, k),
        end_callbacks=[c for c in (decisions, oof, own) if c is not None],
        name=f"round {t}, fold {k}", verbose=verbose, log=log, tasks_left=tasks_left, **extra)
    if learned and not last:  # split k's own targets for round t + 1: its learned labels
        _write_learned_labels(manifest, run, t=t, k=k, train_folds=train_folds, labels=history.pop("learned"),
                              rows=history.pop("rows"), fold_targets=fold_targets)
    val_losses = [float(v) for v in history.get("val_loss", [])]
    with atomic_path(run.model_path(t, k), keep_suffix=True) as tmp:
        model.save(tmp)
    seconds = time.perf_counter() - start
    info = {"round": t, "fold": k, "validation_fold": val_fold, "train_segments": n_train,
            "epochs": len(history["loss"]), "best_epoch": best + 1,
            "val_loss": val_losses[best] if val_losses else None, "seconds": seconds, "oof_seconds": oof.seconds,
            "seed": seed}
    if decisions is not None:
        info["validation_decisions"] = {str(u): c for u, c in decisions.decisions.items()}
    run.write_done(t, k, info)
    loss = "no early-stopping fold" if info["val_loss"] is None else f"val_loss {info['val_loss']:.4f}"
    log(f"round {t} fold {k + 1}/{manifest.n_folds}: {info['epochs']} epochs (best {info['best_epoch']}), "
        f"{loss}, {seconds:.1f} s (out-of-fold step {oof.seconds:.1f} s)")
    return info


class _TeacherTargets(keras.callbacks.Callback):
    """At the end of a training: its predictions of ``folds`` → split ``k``'s targets of round ``t + 1`` (a cross-fit
    teacher predicts the other half of the split's training folds; with self targets, the split's model
    predicts its own training folds)."""

    def __init__(self, manifest: RecordsManifest, run: RunDir, *, t: int, k: int, folds: list[int], rule: str,
                 alpha: float | None, name: str, normalize=None, source: str = "labels", labels=None,
                 segments_from: str = "segments"):
        super().__init__()
        self.manifest, self.run, self.t, self.k, self.folds = manifest, run, t, k, folds
        self.rule, self.alpha, self.name, self.normalize = rule, alpha, name, normalize
        self.source, self.labels, self.segments_from = source, labels, segments_from

    def on_train_end(self, logs=None):
        for fold in self.folds:
            q = predict_fold(self.model, self.manifest, fold, normalize=self.normalize, what=self.name,
                             segments_from=self.segments_from)
            targets = next_targets(self.manifest, fold, q, rule=self.rule, alpha=self.alpha, source=self.source,
                                   labels=self.labels)
            self.run.write_labels(self.t + 1, self.manifest, fold, targets, split=self.k)


def write_self_targets(manifest: RecordsManifest, run: RunDir, config: RefineConfig, *, t: int, k: int) -> None:
    """Split ``k``'s self targets of round ``t`` from its saved round ``t − 1`` model (a run extended with more
    rounds: its former last round wrote none)."""
    train_folds, _ = split_folds(manifest.n_folds, k, validation=config.early_stopping == "fold")
    normalize = run.load_speaker_norm() if run.normalises(k, manifest.n_folds) else None
    writer = _TeacherTargets(manifest, run, t=t - 1, k=k, folds=train_folds, rule=config.rule,
                             alpha=config.alphas()[t], name=f"round {t - 1}, split {k}, self targets",
                             normalize=normalize, source=config.label_source, labels=given_labels(manifest, config),
                             segments_from=config.segments_from)
    writer.set_model(keras.models.load_model(run.model_path(t - 1, k)))
    writer.on_train_end()


def train_teacher(
    manifest: RecordsManifest,
    run: RunDir,
    config: RefineConfig,
    *,
    t: int,
    k: int,
    h: int,
    verbose: int = 0,
    log: Callable[[str], None] = print,
    tasks_left: int | None = None,
) -> dict:
    """Train teacher ``h`` (0 or 1) of split ``k`` in round ``t`` and write its half of split ``k``'s next targets.

    The teacher trains on one half of split ``k``'s training folds (with the targets split ``k``
    trains on in round ``t``), stops early on the validation fold's utterance labels, and predicts
    the other half; the rule turns those predictions into round ``t + 1``'s targets of that half
    for split ``k`` alone. Neither teacher sees fold ``k``, so nothing of the held-out fold reaches
    the targets of the model that is tested on it.
    """
    start = time.perf_counter()
    train_folds, val_fold = split_folds(manifest.n_folds, k, validation=config.early_stopping == "fold")
    halves = teacher_halves(train_folds)
    seed = fold_seed(config.seed + 7_919 * (h + 1), t, k)
    name = f"round {t}, split {k}, teacher {h}"
    normalize = run.load_speaker_norm() if run.normalises(k, manifest.n_folds) else None
    targets = _TeacherTargets(manifest, run, t=t, k=k, folds=halves[1 - h], rule=config.rule,
                              alpha=config.alphas()[t + 1], name=name, normalize=normalize,
                              source=config.label_source, labels=given_labels(manifest, config),
                              segments_from=config.segments_from)
    _, history, best, n_train = _fit(
        manifest, run, config, seed=seed, train_folds=halves[h], val_fold=val_fold,
        train_labels=run.labels_dir(t, k if config.cross_fit_round(t) else None), val_labels=run.labels_dir(0),
        exclude_folds=tuple(halves[1 - h]) + ((k,) if val_fold is None else (k, val_fold)), normalize=normalize,
        logs_dir=run.logs_dir(t, k) / f"teacher-{h}",
        end_callbacks=[targets], name=name, verbose=verbose, log=log, tasks_left=tasks_left)
    seconds = time.perf_counter() - start
    info = {"round": t, "split": k, "teacher": h, "train_folds": halves[h], "predicted_folds": halves[1 - h],
            "validation_fold": val_fold, "train_segments": n_train, "epochs": len(history["loss"]),
            "best_epoch": best + 1, "val_loss": float(history["val_loss"][best]) if "val_loss" in history else None,
            "seconds": seconds, "seed": seed}
    write_json(run.teacher_done_path(t, k, h), info)
    loss = "no early-stopping fold" if info["val_loss"] is None else f"val_loss {info['val_loss']:.4f}"
    log(f"round {t} split {k + 1}/{manifest.n_folds} teacher {h + 1}/2: {info['epochs']} epochs "
        f"(best {info['best_epoch']}), {loss}, {seconds:.1f} s")
    return info
