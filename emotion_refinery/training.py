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

from emotion_refinery.backbones import build_model
from emotion_refinery.augment import make_augment
from emotion_refinery.errors import TrainingError
from emotion_refinery.folds import split_folds
from emotion_refinery.datasets import count_training_segments, evaluation_dataset, training_dataset
from emotion_refinery.manifest import RecordsManifest
from emotion_refinery.refine_config import RefineConfig
from emotion_refinery.rules import refine_labels
from emotion_refinery.run_dir import RunDir
from tf_records.atomic import atomic_path

__all__ = ["OutOfFoldLabels", "ValidationDecisions", "RemainingTime", "train_fold", "fold_seed", "split_folds"]


def fold_seed(seed: int, t: int, k: int) -> int:
    """A distinct, stable seed for every (round, fold)."""
    return (seed * 1_000_003 + t * 1_009 + k) % (2**31 - 1)


class OutOfFoldLabels(keras.callbacks.Callback):
    """At the end of training: predict the held-out fold, save the predictions, write next round's label shards.

    Args:
        manifest: the records.
        run: the run directory.
        t, k: round and held-out fold.
        rule, alpha: the label update rule for round ``t + 1`` (``None``: last round, no labels).
    """

    def __init__(self, manifest: RecordsManifest, run: RunDir, *, t: int, k: int, rule: str | None,
                 alpha: float | None, batch_size: int = 512, normalize=None):
        super().__init__()
        self.manifest, self.run, self.t, self.k = manifest, run, t, k
        self.rule, self.alpha, self.batch_size, self.normalize = rule, alpha, batch_size, normalize
        self.seconds = 0.0

    def on_train_end(self, logs=None):
        start = time.perf_counter()
        ds = evaluation_dataset(self.manifest, folds=[self.k], batch_size=self.batch_size, normalize=self.normalize)
        q = self.model.predict(ds, verbose=0).astype(np.float32)
        lo, hi = self.manifest.fold_segments(self.k)
        if len(q) != hi - lo:
            raise RuntimeError(f"predicted {len(q)} segments of fold {self.k}; it holds {hi - lo}")
        if not np.all(np.isfinite(q)):
            raise TrainingError(f"round {self.t}, fold {self.k}: the model predicts NaN or infinite probabilities "
                                f"for {int(np.sum(~np.isfinite(q).all(axis=1)))} segment(s); nothing of this fold "
                                "was kept. Lower --lr, or check the records (`emorefine verify`).")
        q /= q.sum(axis=1, keepdims=True)
        self.run.save_predictions(self.t, self.k, q)
        if self.rule is not None:
            table = self.manifest.segment_table()
            targets = refine_labels(self.rule, predictions=q, labels=table["label"][lo:hi],
                                    utterance_index=table["utterance"][lo:hi],
                                    alpha=self.alpha if self.alpha is not None else 0.0)
            self.run.write_labels(self.t + 1, self.manifest, self.k, targets)
        self.seconds = time.perf_counter() - start


class ValidationDecisions(keras.callbacks.Callback):
    """At the end of training: the utterance decisions of the model on its validation (early-stopping) fold.

    Each utterance of the validation fold gets the class of its mean segment probability. Pooled
    over the K models of a round, every utterance is decided exactly once by a model that neither
    trained on it nor was tested on it, which gives the round a validation accuracy for choosing
    rounds without looking at the test folds.
    """

    def __init__(self, manifest: RecordsManifest, *, fold: int, batch_size: int = 512, normalize=None):
        super().__init__()
        self.manifest, self.fold, self.batch_size, self.normalize = manifest, fold, batch_size, normalize
        self.decisions: dict[int, int] = {}

    def on_train_end(self, logs=None):
        ds = evaluation_dataset(self.manifest, folds=[self.fold], batch_size=self.batch_size, normalize=self.normalize)
        q = self.model.predict(ds, verbose=0)
        start, _ = self.manifest.fold_segments(self.fold)
        for u in (u for u in self.manifest.utterances if u["fold"] == self.fold):
            lo = u["first_segment"] - start
            self.decisions[u["index"]] = int(np.argmax(q[lo:lo + u["segments"]].mean(axis=0)))


def _check_losses(history: dict, t: int, k: int) -> None:
    """Raise :class:`TrainingError` naming the first epoch whose training or validation loss is not finite."""
    losses = [float(v) for v in history.get("loss", [])]
    val_losses = [float(v) for v in history.get("val_loss", [])]
    val_losses += [np.nan] * (len(losses) - len(val_losses))  # TerminateOnNaN ended an epoch before validation
    bad = [e for e, pair in enumerate(zip(losses, val_losses)) if not np.all(np.isfinite(pair))]
    if bad or not losses:
        raise TrainingError(f"round {t}, fold {k}: the loss became NaN or infinite in epoch {bad[0] + 1 if bad else 1} "
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

    Args:
        tasks_left: (round, fold) trainings after this one; when given, the time left is estimated
            and logged after the first epoch.

    Returns:
        The fold's summary, also written to ``done/fold-KK.json`` as the completion mark.
    """
    start = time.perf_counter()
    train_folds, val_fold = split_folds(manifest.n_folds, k)
    seed = fold_seed(config.seed, t, k)
    keras.utils.set_random_seed(seed)
    if config.speaker_norm:  # segments arrive z-normalised per speaker; the model's own band normalisation is the identity
        normalize = run.load_speaker_norm()
        mean, variance = np.zeros(manifest.features.n_mels), np.ones(manifest.features.n_mels)
    else:
        normalize = None
        mean, variance = manifest.normalization(exclude_folds=(k, val_fold))
    f = manifest.features
    model = build_model(config.backbone, input_shape=(f.segment_frames, f.n_mels, 1),
                        n_classes=len(manifest.classes), mean=mean, variance=variance,
                        bn_momentum=config.bn_momentum)
    n_train = count_training_segments(manifest, train_folds, config.train_stride)
    steps = math.ceil(n_train / config.batch_size)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.lr, decay_steps=config.decay_epochs * steps, decay_rate=config.decay_rate, staircase=True)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=["accuracy"], jit_compile=config.jit_compile)
    labels = run.labels_dir(t)
    augment = make_augment(spec_augment_masks=config.spec_augment, mixup_alpha=config.mixup)
    train = training_dataset(manifest, labels_dir=labels, folds=train_folds, batch_size=config.batch_size,
                             seed=seed, cache=config.cache, stride=config.train_stride, augment=augment,
                             normalize=normalize)
    val = training_dataset(manifest, labels_dir=labels, folds=[val_fold], batch_size=512, cache=config.cache,
                           stride=config.train_stride, shuffle=False, normalize=normalize)
    last = t == config.rounds - 1
    oof = OutOfFoldLabels(manifest, run, t=t, k=k, rule=None if last else config.rule,
                          alpha=None if last else config.alphas()[t + 1], normalize=normalize)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        # Early stopping watches the validation loss only from epoch `min_epochs` on: in the first epochs
        # the inference-mode loss is still unstable (BN statistics settling) and would stop a fold for good.
        stopping := keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                  restore_best_weights=True, start_from_epoch=config.min_epochs),
        keras.callbacks.TensorBoard(log_dir=str(run.logs_dir(t, k)), write_graph=False, profile_batch=0),
    ]
    if tasks_left is not None:
        callbacks.append(RemainingTime(tasks_left=tasks_left, epochs=config.epochs, log=log))
    decisions = ValidationDecisions(manifest, fold=val_fold, normalize=normalize)
    callbacks += [decisions, oof]  # after EarlyStopping, whose on_train_end restores the best weights first
    try:
        history = model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks, verbose=verbose,
                            shuffle=False)
    except TrainingError:  # NaN predictions found at the end: name the epoch whose loss went bad, if one did
        _check_losses(model.history.history, t, k)
        raise
    _check_losses(history.history, t, k)
    val_losses = [float(v) for v in history.history["val_loss"]]
    with atomic_path(run.model_path(t, k), keep_suffix=True) as tmp:
        model.save(tmp)
    seconds = time.perf_counter() - start
    # The weights kept: the best monitored epoch's, or the last epoch's when none was monitored.
    best = stopping.best_epoch if stopping.best_weights is not None else len(val_losses) - 1
    info = {"round": t, "fold": k, "validation_fold": val_fold, "train_segments": n_train,
            "epochs": len(val_losses), "best_epoch": best + 1, "val_loss": val_losses[best],
            "seconds": seconds, "oof_seconds": oof.seconds, "seed": seed,
            "validation_decisions": {str(u): c for u, c in decisions.decisions.items()}}
    run.write_done(t, k, info)
    log(f"round {t} fold {k + 1}/{manifest.n_folds}: {info['epochs']} epochs (best {info['best_epoch']}), "
        f"val_loss {info['val_loss']:.4f}, {seconds:.1f} s (out-of-fold step {oof.seconds:.1f} s)")
    return info
