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
from emotion_refinery.datasets import count_segments, evaluation_dataset, training_dataset
from emotion_refinery.manifest import RecordsManifest
from emotion_refinery.refine_config import RefineConfig
from emotion_refinery.rules import refine_labels
from emotion_refinery.run_dir import RunDir
from tf_records.atomic import atomic_path

__all__ = ["OutOfFoldLabels", "train_fold", "fold_seed", "split_folds"]


def fold_seed(seed: int, t: int, k: int) -> int:
    """A distinct, stable seed for every (round, fold)."""
    return (seed * 1_000_003 + t * 1_009 + k) % (2**31 - 1)


def split_folds(n_folds: int, k: int) -> tuple[list[int], int]:
    """``(training folds, validation fold)`` when fold ``k`` is held out."""
    val = (k + 1) % n_folds
    return [f for f in range(n_folds) if f not in (k, val)], val


class OutOfFoldLabels(keras.callbacks.Callback):
    """At the end of training: predict the held-out fold, save the predictions, write next round's label shards.

    Args:
        manifest: the records.
        run: the run directory.
        t, k: round and held-out fold.
        rule, alpha: the label update rule for round ``t + 1`` (``None``: last round, no labels).
    """

    def __init__(self, manifest: RecordsManifest, run: RunDir, *, t: int, k: int, rule: str | None,
                 alpha: float | None, batch_size: int = 512):
        super().__init__()
        self.manifest, self.run, self.t, self.k = manifest, run, t, k
        self.rule, self.alpha, self.batch_size = rule, alpha, batch_size
        self.seconds = 0.0

    def on_train_end(self, logs=None):
        start = time.perf_counter()
        ds = evaluation_dataset(self.manifest, folds=[self.k], batch_size=self.batch_size)
        q = self.model.predict(ds, verbose=0).astype(np.float32)
        lo, hi = self.manifest.fold_segments(self.k)
        if len(q) != hi - lo:
            raise RuntimeError(f"predicted {len(q)} segments of fold {self.k}; it holds {hi - lo}")
        q /= q.sum(axis=1, keepdims=True)
        self.run.save_predictions(self.t, self.k, q)
        if self.rule is not None:
            table = self.manifest.segment_table()
            targets = refine_labels(self.rule, predictions=q, labels=table["label"][lo:hi],
                                    utterance_index=table["utterance"][lo:hi],
                                    alpha=self.alpha if self.alpha is not None else 0.0)
            self.run.write_labels(self.t + 1, self.manifest, self.k, targets)
        self.seconds = time.perf_counter() - start


class _FoldLine(keras.callbacks.Callback):
    """Remembers per-epoch validation losses for the fold's summary line."""

    def __init__(self):
        super().__init__()
        self.val_losses: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        self.val_losses.append(float((logs or {}).get("val_loss", math.nan)))


def train_fold(
    manifest: RecordsManifest,
    run: RunDir,
    config: RefineConfig,
    *,
    t: int,
    k: int,
    verbose: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Train round ``t``'s model for held-out fold ``k`` and finish the fold (model, predictions, labels).

    Returns:
        The fold's summary, also written to ``done/fold-KK.json`` as the completion mark.
    """
    start = time.perf_counter()
    train_folds, val_fold = split_folds(manifest.n_folds, k)
    seed = fold_seed(config.seed, t, k)
    keras.utils.set_random_seed(seed)
    mean, variance = manifest.normalization(exclude_folds=(k, val_fold))
    f = manifest.features
    model = build_model(config.backbone, input_shape=(f.segment_frames, f.n_mels, 1),
                        n_classes=len(manifest.classes), mean=mean, variance=variance,
                        bn_momentum=config.bn_momentum)
    n_train = count_segments(manifest, train_folds)
    steps = math.ceil(n_train / config.batch_size)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.lr, decay_steps=config.decay_epochs * steps, decay_rate=config.decay_rate, staircase=True)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=["accuracy"], jit_compile=config.jit_compile)
    labels = run.labels_dir(t)
    train = training_dataset(manifest, labels_dir=labels, folds=train_folds, batch_size=config.batch_size,
                             seed=seed, cache=config.cache)
    val = evaluation_dataset(manifest, folds=[val_fold], labels_dir=labels, batch_size=512)
    last = t == config.rounds - 1
    oof = OutOfFoldLabels(manifest, run, t=t, k=k, rule=None if last else config.rule,
                          alpha=None if last else config.alphas()[t + 1])
    line = _FoldLine()
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        line,
        keras.callbacks.TensorBoard(log_dir=str(run.logs_dir(t, k)), write_graph=False, profile_batch=0),
        oof,  # after EarlyStopping, whose on_train_end restores the best weights first
    ]
    model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    with atomic_path(run.model_path(t, k), keep_suffix=True) as tmp:
        model.save(tmp)
    seconds = time.perf_counter() - start
    best = int(np.nanargmin(line.val_losses)) if line.val_losses else 0
    info = {"round": t, "fold": k, "validation_fold": val_fold, "train_segments": n_train,
            "epochs": len(line.val_losses), "best_epoch": best + 1,
            "val_loss": line.val_losses[best] if line.val_losses else None,
            "seconds": seconds, "oof_seconds": oof.seconds, "seed": seed}
    run.write_done(t, k, info)
    log(f"round {t} fold {k + 1}/{manifest.n_folds}: {info['epochs']} epochs (best {info['best_epoch']}), "
        f"val_loss {info['val_loss']:.4f}, {seconds:.1f} s (out-of-fold step {oof.seconds:.1f} s)")
    return info
