"""`emorefine lcw`: LC+W under the records' folds, one fold after the other, resumable per fold.

For held-out fold ``k`` (early stopping on fold ``(k + 1) mod K``, as in ``refine``), an utterance
model (:func:`emotion_refinery.models.backbones.build_sequence_model`) is trained on the other folds'
sequence records with :func:`emotion_refinery.models.label_correction.fit_lcw`, then decides fold ``k``'s utterances.
The run directory uses ``refine``'s layout for one round (``rounds/round-00/models``, ``done``,
``predictions.csv``) plus, per fold, the learned labels and weights of its training utterances
(``rounds/round-00/lcw/fold-KK.npz``); ``report.json`` / ``report.md`` give WA / UA / macro-F1,
the confusion matrix, the share of labels moved from each class to each class, the mean learned
weight per class, and the utterances whose learned label left their given label.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emotion_refinery.data.feature_config import LCW_UPDATES as UPDATES
from emotion_refinery.data.folds import fold_seed, split_folds
from emotion_refinery.decision.utterance import decision_scores
from emotion_refinery.errors import EmorefineError
from emotion_refinery.models.backbones import backbone_names
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from emotion_refinery.util.ranges import EPOCHS, PATIENCE, SEED, SHARE, Range
from emotion_refinery.util.settings import check_settings
from tf_records.atomic import atomic_path, write_bytes, write_json

__all__ = ["LCWConfig", "run_lcw", "changed_labels", "HELP", "CHOICES", "RANGES"]



@dataclasses.dataclass(frozen=True)
class LCWConfig:
    """Settings of an LC+W run."""

    update: str = "both"
    backbone: str = "blstm_attention"
    epochs: int = 20
    warmup: int = 1
    label_confidence: float = 0.9
    speaker_norm: bool = False
    label_noise: float = 0.0
    patience: int = 3
    batch_size: int = 32
    lr: float = 0.001
    label_lr: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self, choices=CHOICES, ranges=RANGES)
        if self.update not in NETWORK_ONLY and self.warmup >= self.epochs:
            raise EmorefineError(f"Received: warmup={self.warmup!r} with epochs={self.epochs!r} and update="
                                 f"{self.update!r}; expected warmup < epochs (no label/weight epoch would follow)")


#: The updates that learn nothing besides the network (no label/weight epochs; as
#: :mod:`emotion_refinery.models.label_correction`).
NETWORK_ONLY = ("class-weights", "none", "oversample")

#: The range of every numeric setting of :class:`LCWConfig` (``lcw --help`` shows them).
RANGES: dict[str, Range] = {
    "epochs": EPOCHS,
    "warmup": Range(1, EPOCHS.high),
    "label_confidence": Range(0, 1, integer=False, low_open=True, high_open=True),
    "label_noise": SHARE,
    "patience": PATIENCE,
    "batch_size": Range(1, 4096),
    "lr": Range(0, 1, integer=False, low_open=True),
    "label_lr": Range(0, 10, integer=False, low_open=True),
    "seed": SEED,
}

#: Settings of :class:`LCWConfig` whose value is one name of a fixed list.
CHOICES = {"update": UPDATES, "backbone": tuple(backbone_names("utterances"))}

#: What each setting does, as ``lcw --help`` shows it (the flag is ``--`` and the name with dashes; the CLI
#: appends the default). Every field is a flag; a new setting is a field above and an entry here.
HELP = {
    "update": "both: LC+W (learned labels and weights); labels: learned labels only; weights: learned weights only; "
              "class-weights: fixed inverse-class-frequency weights; none: the publication's baseline, the utterance "
              "model with class-proportion weights (each training utterance weighted by the inverse frequency of its "
              "class in the training folds, mean 1; the same loss as class-weights); oversample: the unweighted "
              "model, every class drawn as often as the largest.",
    "backbone": "Utterance model.",
    "epochs": "Most network epochs per fold; a label/weight epoch follows each from --warmup on.",
    "warmup": "Network epochs before the first label/weight epoch (1: strict alternation, as published).",
    "label_confidence": "Initial learned probability of each utterance's given class (the rest shared equally).",
    "speaker_norm": "Z-normalise every frame feature of each speaker's utterances by that speaker's own statistics "
                    "(no labels; utterances without a speaker id by their own).",
    "label_noise": "Share of utterances given another label at random (seeded by --seed) for training and early "
                   "stopping; the held-out folds are scored on their true labels. report.md then says how many "
                   "flipped labels the learned labels recovered.",
    "patience": "Network epochs without a lower validation loss before a fold stops.",
    "batch_size": "Utterances per training step.",
    "lr": "Adam learning rate of the network.",
    "label_lr": "Adam learning rate of the learned labels and weights.",
    "seed": "Seed of the folds' trainings (each fold derives its own).",
}


def lcw_fold_path(run: RunDir, k: int) -> Path:
    """Fold model ``k``'s learned labels and weights of its training utterances, and its test-fold
    probabilities (``utterances``, ``labels``, ``weights``, ``test_probabilities``)."""
    return run.round_dir(0) / "lcw" / f"fold-{k:02d}.npz"


def _train_fold(manifest: RecordsManifest, run: RunDir, config: LCWConfig, k: int, log) -> dict:
    import keras

    from emotion_refinery.models.label_correction import fit_lcw, oversample_repeats
    from emotion_refinery.models.layers import LabelCorrection
    from emotion_refinery.records.datasets import sequence_dataset

    start = time.perf_counter()
    train_folds, val_fold = split_folds(manifest.n_folds, k)
    train_utts = [u for u in manifest.utterances if u["fold"] in train_folds]
    row_of = -np.ones(len(manifest.utterances), np.int64)
    row_of[[u["index"] for u in train_utts]] = np.arange(len(train_utts))
    seed = fold_seed(config.seed, 0, k)
    keras.utils.set_random_seed(seed)
    normalize = None
    if config.speaker_norm:
        from emotion_refinery.records.speaker_norm import sequence_tables

        normalize = sequence_tables(manifest)  # one pass over the sequences, no labels
    classifier = fold_model(manifest, train_folds, config, normalize=normalize)
    k_classes = len(manifest.classes)
    given = given_labels(manifest, config)  # the labels training sees: with --label-noise, some flipped
    # The given class starts at label_confidence, never below a uniform label.
    correction = LabelCorrection(given[[u["index"] for u in train_utts]], row_of, k_classes,
                                 confidence=max(config.label_confidence, 1.0 / k_classes))
    repeats = None
    if config.update == "oversample":
        repeats = np.zeros(len(manifest.utterances), np.int64)
        repeats[[u["index"] for u in train_utts]] = oversample_repeats(given[[u["index"] for u in train_utts]],
                                                                       len(manifest.classes), seed)
    # Batches of similar lengths (buckets): about half the time of random batches.
    train = sequence_dataset(manifest, folds=train_folds, batch_size=config.batch_size, shuffle=True, seed=seed,
                             buckets=4, repeats=repeats, normalize=normalize)
    val = sequence_dataset(manifest, folds=[val_fold], batch_size=config.batch_size, normalize=normalize)
    if config.label_noise:  # training and early stopping see the noisy labels; the test fold keeps its own
        import tensorflow as tf

        table = tf.constant(np.eye(k_classes, dtype=np.float32)[given])
        train, val = (d.map(lambda x, y: (x, tf.gather(table, x["utt"]))) for d in (train, val))
    result = fit_lcw(classifier, correction, train, val, epochs=config.epochs, warmup=config.warmup,
                     patience=config.patience,
                     lr=config.lr, label_lr=config.label_lr, update=config.update)
    test = sequence_dataset(manifest, folds=[k], batch_size=config.batch_size, normalize=normalize)
    probs = classifier.predict(test.map(lambda x, y: {"frames": x["frames"], "mask": x["mask"]}), verbose=0)
    with atomic_path(lcw_fold_path(run, k)) as tmp, open(tmp, "wb") as f:
        np.savez(f, utterances=np.array([u["index"] for u in train_utts]), labels=result.labels,
                 weights=result.weights, test_probabilities=probs.astype(np.float32))
    with atomic_path(run.model_path(0, k), keep_suffix=True) as tmp:
        classifier.save(tmp)
    info = {"fold": k, "validation_fold": val_fold, "train_utterances": len(train_utts),
            "epochs": len(result.history), "best_epoch": result.best_epoch, "history": result.history,
            "seconds": time.perf_counter() - start, "seed": seed}
    run.write_done(0, k, info)
    log(f"fold {k + 1}/{manifest.n_folds}: {info['epochs']} epochs (best {info['best_epoch']}), "
        f"{info['seconds']:.1f} s")
    return info


def given_labels(manifest: RecordsManifest, config: LCWConfig) -> np.ndarray:
    """The class index training sees for every utterance: its label, or with ``label_noise`` the labels of
    :func:`emotion_refinery.data.label_noise.flip_labels` (seeded by the run's seed)."""
    from emotion_refinery.data.label_noise import training_labels

    return training_labels(manifest, config.label_noise, config.seed)


def fold_model(manifest: RecordsManifest, train_folds: list[int], config: LCWConfig, *, normalize=None):
    """``config.backbone`` for the records' frame features, normalised by the training folds' frame statistics."""
    from emotion_refinery.models.backbones import build_sequence_model
    from emotion_refinery.records.datasets import sequence_statistics

    mean, variance = sequence_statistics(manifest, train_folds, normalize=normalize)
    return build_sequence_model(config.backbone, n_features=manifest.sequence_spec.n_features,
                                n_classes=len(manifest.classes), mean=mean, variance=variance)


def changed_labels(manifest: RecordsManifest, run: RunDir, given: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Training utterances whose learned label left their given label (``given``: the class index training saw
    per utterance; default the records' labels), from every fold's model, ranked by the learned label's
    probability (one row per (utterance, fold) in which it was trained)."""
    rows = []
    classes = manifest.classes
    if given is None:
        given = np.array([u["label_index"] for u in manifest.utterances])
    for k in range(manifest.n_folds):
        with np.load(lcw_fold_path(run, k)) as z:
            for i, s, w in zip(z["utterances"], z["labels"], z["weights"]):
                u = manifest.utterances[int(i)]
                learned = int(np.argmax(s))
                if learned != given[int(i)]:
                    rows.append({"id": u["id"], "fold_model": k, "given": classes[given[int(i)]],
                                 "learned": classes[learned], "probability": float(s[learned]), "weight": float(w),
                                 **({"true": u["label"]} if given[int(i)] != u["label_index"] else {})})
    return sorted(rows, key=lambda r: -r["probability"])


def _evaluate(manifest: RecordsManifest, run: RunDir, config: LCWConfig, record: dict) -> dict:
    k_classes, classes = len(manifest.classes), manifest.classes
    probs = np.zeros((len(manifest.utterances), k_classes), np.float32)
    moved = np.zeros((k_classes, k_classes))
    weight_sum, weight_n = np.zeros(k_classes), np.zeros(k_classes)
    labels = np.array([u["label_index"] for u in manifest.utterances])
    given_all = given_labels(manifest, config)
    recovered = flipped = kept = clean = 0
    for k in range(manifest.n_folds):
        with np.load(lcw_fold_path(run, k)) as z:
            test = [u["index"] for u in manifest.utterances if u["fold"] == k]
            probs[test] = z["test_probabilities"]
            rows = z["utterances"].astype(np.int64)
            given, learned = given_all[rows], z["labels"].argmax(axis=1)
            np.add.at(moved, (given, learned), 1)
            np.add.at(weight_sum, given, z["weights"])
            np.add.at(weight_n, given, 1)
            wrong = given != labels[rows]
            flipped += int(wrong.sum())
            recovered += int((learned[wrong] == labels[rows][wrong]).sum())
            clean, kept = clean + int((~wrong).sum()), kept + int((learned[~wrong] == labels[rows][~wrong]).sum())
    scores = decision_scores(labels, probs.argmax(axis=1), n_classes=k_classes)
    run.write_utterance_predictions(0, manifest, probs.argmax(axis=1), probs)
    folds = [run.fold_info(0, k) for k in range(manifest.n_folds)]
    return {
        "method": "lcw",
        "classes": classes,
        "protocol": {**manifest.data["folds"], "validation": "fold (k + 1) mod K stops training early",
                     "utterance_classifier": f"{config.backbone} on whole utterances"},
        "records": record["records"],
        "config": dataclasses.asdict(config),
        "wa": scores["wa"], "ua": scores["ua"], "macro_f1": scores["macro_f1"],
        "confusion": scores["confusion"].tolist(),
        # Row c: of the training labels given as c (pooled over the fold models), the share learned as each class.
        "label_change": (moved / np.maximum(moved.sum(axis=1, keepdims=True), 1)).tolist(),
        "mean_weight": (weight_sum / np.maximum(weight_n, 1)).tolist(),
        "changed": changed_labels(manifest, run, given_all),
        # With --label-noise: of the (utterance, fold model) pairs trained on a flipped label, the share whose
        # learned label is the true one; of those trained on their true label, the share that kept it.
        "label_noise": None if not config.label_noise else {
            "share": config.label_noise, "flipped_pairs": flipped,
            "recovered": recovered / max(flipped, 1), "kept": kept / max(clean, 1)},
        "seconds": float(sum(f["seconds"] for f in folds)),
        "folds": folds,
    }


def run_lcw(records_dir: str | os.PathLike, run_dir: str | os.PathLike, config: LCWConfig, *,
            log: Callable[[str], None] = print, overwrite: bool = False) -> dict:
    """Run (or resume, or confirm) an LC+W run; return its report (also in ``report.json``). ``overwrite``: start
    over in a run directory emorefine made (:func:`emotion_refinery.refine.rounds.utterance_run`)."""
    from emotion_refinery.outputs.report import lcw_markdown
    from emotion_refinery.refine.rounds import utterance_run

    with utterance_run(records_dir, run_dir, "lcw", config, sequences="log-mel", overwrite=overwrite) as (
            manifest, run, record):
        for k in range(manifest.n_folds):
            if not run.is_done(0, k):
                _train_fold(manifest, run, config, k, log)
        report = _evaluate(manifest, run, config, record)
        write_json(run.report_json, report)
        write_bytes(run.report_md, lcw_markdown(report).encode())
        log(summary(report, config))
        return report


def summary(report: dict, config: LCWConfig) -> str:
    """The run's one-line summary (``lcw`` prints it, also with ``--quiet``)."""
    return (f"LC+W ({config.update}): WA {100 * report['wa']:.2f} %, UA {100 * report['ua']:.2f} %, "
            f"macro-F1 {100 * report['macro_f1']:.2f} %; {len(report['changed'])} learned labels differ from the "
            "given ones")

