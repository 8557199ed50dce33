"""`emorefine mlee`: MLEE and the dominant-emotion classifiers under the records' folds, resumable per fold.

For held-out fold ``k`` (early stopping on fold ``(k + 1) mod K``, as in ``refine`` and ``lcw``), the
variant's model (:mod:`emotion_refinery.models.existence`) is trained on the other folds' sequence records, with
targets from the utterances' votes, and decides fold ``k``'s utterances. ``pretrain`` and ``fusion``
first train their component models on the same folds. The run directory uses ``refine``'s layout for
one round (``rounds/round-00/models``, ``done``, ``predictions.csv``) plus the test-fold outputs of
each fold model (``rounds/round-00/mlee/fold-KK.npz``); ``report.json`` / ``report.md`` give WA / UA /
macro-F1, the confusion matrix, and the per-class precision / recall / F1 of emotion existence.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emotion_refinery.data.folds import fold_seed, split_folds
from emotion_refinery.data.votes import soft_targets
from emotion_refinery.decision.utterance import decision_scores
from emotion_refinery.errors import EmorefineError
from emotion_refinery.models.backbones import backbone_names
from emotion_refinery.models.existence import (
    HEADS,
    LEARNING_RATES,
    VARIANTS,
    existence_scores,
    existence_targets,
    existence_weights,
    fit_probe,
    inverse_frequency,
    predicted_existence,
    weighted_bce,
)
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from emotion_refinery.util.ranges import EPOCHS, PATIENCE, SEED, Range
from emotion_refinery.util.settings import check_settings
from tf_records.atomic import atomic_path, write_bytes, write_json

__all__ = ["MLEEConfig", "run_mlee", "SPEEDS", "TRAIN_ON", "HELP", "CHOICES", "RANGES"]

#: ``--speed-perturb``: every training utterance once at each of these speeds per epoch (the publication's).
SPEEDS = (0.9, 1.0, 1.1)
#: ``--train-on``: the MLEE model learns from the utterances with a majority label (``dominant``), or
#: also from the records' unlabelled ones (``all``; ``build-records --no-majority keep``), whose existence
#: targets are the classes any annotator chose (none: a negative of every class).
TRAIN_ON = ("dominant", "all")


@dataclasses.dataclass(frozen=True)
class MLEEConfig:
    """Settings of an MLEE run. ``lr`` ``None``: the publication's rate for the variant
    (:data:`~emotion_refinery.models.existence.LEARNING_RATES`; component models of ``pretrain`` / ``fusion`` use
    theirs)."""

    variant: str = "fusion"
    backbone: str = "mlee_crnn"
    epochs: int = 20
    patience: int = 3
    batch_size: int = 16
    lr: float | None = None
    head: str = "adam"
    speed_perturb: bool = False
    speaker_norm: bool = False
    train_on: str = "dominant"
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self, choices=CHOICES, ranges=RANGES)
        if self.train_on == "all" and self.variant in ("hard", "soft"):
            raise EmorefineError(f"Received: train_on='all' with variant={self.variant!r}; the utterances without "
                                 "a majority train the MLEE model only: expected variant mlee, pretrain or fusion")
        if self.speaker_norm and self.train_on == "all":
            raise EmorefineError("Received: speaker_norm=True with train_on='all'; the speaker statistics cover the "
                                 "labelled utterances only: expected train_on='dominant' with speaker_norm")


#: The range of every numeric setting of :class:`MLEEConfig` (``mlee --help`` shows them; ``lr`` None: the
#: published rate).
RANGES: dict[str, Range] = {
    "epochs": EPOCHS,
    "patience": PATIENCE,
    "batch_size": Range(1, 4096),
    "lr": Range(0, 1, integer=False, low_open=True),
    "seed": SEED,
}

#: Settings of :class:`MLEEConfig` whose value is one name of a fixed list.
CHOICES = {"variant": VARIANTS, "backbone": tuple(backbone_names("utterances")), "head": HEADS,
           "train_on": TRAIN_ON}

#: What each setting does, as ``mlee --help`` shows it (the flag is ``--`` and the name with dashes; the CLI
#: appends the default, but for ``lr``, whose default is said here). Every field is a flag; a new setting is a
#: field above and an entry here.
HELP = {
    "variant": "hard / soft: the dominant-emotion classifier on one-hot labels / soft vote targets; mlee: sigmoid "
               "existence outputs; pretrain: the MLEE model fine-tuned (its encoder frozen, its Dense 64 and a new "
               "output layer trained); fusion: the MLEE and soft encoders side by side, frozen but for their Dense "
               "64, and a new output layer.",
    "backbone": "Utterance model.",
    "epochs": "Most epochs per model.",
    "patience": "Epochs without a lower validation loss before a model stops.",
    "batch_size": "Utterances per training step.",
    "lr": "Adam learning rate of the variant's last stage.  [default: as published: "
          + ", ".join(f"{v} {r:g}" for v, r in LEARNING_RATES.items()) + "]",
    "head": "How pretrain / fusion train their classifier part: adam, as published (--lr, --epochs; Dense 64 and the "
            "new output layer); probe, the output layer alone fitted to convergence (logistic regression on the "
            "frozen embeddings, its L2 strength chosen on the validation fold), for corpora too small for the "
            "published rates.",
    "speed_perturb": "Train on every utterance at speeds 0.9, 1.0 and 1.1 each epoch (tempo and pitch scaled in the "
                     "spectrogram; records built with --sequences spectrogram), as published.",
    "speaker_norm": "Z-normalise each speaker's frames with that speaker's own mean and std over all their "
                    "utterances (no labels), as lcw --speaker-norm; not with --train-on all.",
    "train_on": "dominant: every model learns from the utterances with a majority label; all: the MLEE model (of "
                "mlee, pretrain, fusion) also from the records' utterances without one (build-records --no-majority "
                "keep), positives of the classes any annotator chose and negatives of the rest, as published. The "
                "test folds are scored on the labelled utterances.",
    "seed": "Seed of the folds' trainings (each fold derives its own).",
}


def _fold_path(run: RunDir, k: int) -> Path:
    return run.round_dir(0) / "mlee" / f"fold-{k:02d}.npz"


class _Tables:
    """Every utterance's targets (hard, soft, existence), indexed by utterance index: the labelled
    utterances, then the unlabelled ones (``vote_only``: existence from their votes, no hard or soft target)."""

    def __init__(self, manifest: RecordsManifest):
        k, m = len(manifest.classes), len(manifest.vote_only)
        none = np.zeros((m, k), np.float32)
        self.hard = np.concatenate([np.eye(k, dtype=np.float32)[[u["label_index"] for u in manifest.utterances]],
                                    none])
        self.soft = np.concatenate([soft_targets(manifest.utterances, manifest.classes).astype(np.float32), none])
        voted = none.copy()
        for row, u in zip(voted, manifest.vote_only):
            row[[manifest.classes.index(c) for c, n in u["votes"].items() if n > 0]] = 1.0
        self.existence = np.concatenate([existence_targets(manifest.utterances, manifest.classes), voted])


def _datasets(manifest, train_folds, val_fold, targets: np.ndarray, weights: np.ndarray, config, seed,
              vote_only: bool = False, normalize=None):
    """Training and validation batches ``(inputs, target, sample weight)`` with ``targets`` / ``weights`` rows
    looked up by utterance index; ``vote_only``: the training folds' unlabelled utterances too; ``normalize``:
    the speaker tables of :func:`emotion_refinery.records.speaker_norm.sequence_tables`."""
    import tensorflow as tf

    from emotion_refinery.records.datasets import sequence_dataset

    table, w = tf.constant(targets), tf.constant(weights.astype(np.float32))

    def attach(x, y):
        return {"frames": x["frames"], "mask": x["mask"]}, tf.gather(table, x["utt"]), tf.gather(w, x["utt"])

    train = sequence_dataset(manifest, folds=train_folds, batch_size=config.batch_size, shuffle=True, seed=seed,
                             buckets=4, speeds=SPEEDS if config.speed_perturb else (),
                             vote_only=vote_only, normalize=normalize).map(attach)
    val = sequence_dataset(manifest, folds=[val_fold], batch_size=config.batch_size, normalize=normalize).map(attach)
    return train, val


def _fit(model, train, val, *, loss, lr: float, config: MLEEConfig, log, name: str) -> dict:
    import warnings

    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
    stop = keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        h = model.fit(train, validation_data=val, epochs=config.epochs,
                      callbacks=[stop, keras.callbacks.TerminateOnNaN()], verbose=0, shuffle=False)
    losses = h.history["val_loss"]
    if not np.all(np.isfinite(losses)):
        raise EmorefineError(f"{name}: the validation loss became {losses[-1]} at epoch {len(losses)}; "
                             "lower --lr, or check the records (`emorefine verify`)")
    best = int(np.argmin(losses))
    log(f"  {name}: {len(losses)} epochs (best {best + 1}), val_loss {losses[best]:.4f}")
    return {"epochs": len(losses), "best_epoch": best + 1, "val_loss": float(losses[best])}


def _embeddings(model, manifest: RecordsManifest, folds, batch_size: int, normalize=None
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings (n, d), utterance indices (n,))`` of ``folds``' utterances: what ``model``'s output layer reads."""
    import keras

    from emotion_refinery.records.datasets import sequence_dataset

    embed = keras.Model(model.input, model.get_layer("predictions").input)
    xs, utts = [], []
    for x, _ in sequence_dataset(manifest, folds=folds, batch_size=batch_size, normalize=normalize):
        xs.append(np.asarray(embed({"frames": x["frames"], "mask": x["mask"]}, training=False)))
        utts.append(x["utt"].numpy())
    return np.concatenate(xs).astype(np.float64), np.concatenate(utts)


def _fit_probe(model, manifest: RecordsManifest, train_folds, val_fold: int, targets: np.ndarray,
               weights: np.ndarray, config: MLEEConfig, seed: int, log, name: str, normalize=None) -> dict:
    """Set ``model``'s output layer (a softmax on frozen encoders) to the converged probe (:func:`fit_probe`)."""
    (tx, tu), (vx, vu) = (_embeddings(model, manifest, f, config.batch_size, normalize)
                          for f in (train_folds, [val_fold]))
    probe = fit_probe(tx, targets[tu], weights[tu], vx, targets[vu], weights[vu], seed=seed)
    model.get_layer("predictions").set_weights([probe["kernel"], probe["bias"]])
    log(f"  {name}: probe fitted to convergence (C {probe['C']:g}), val_loss {probe['val_loss']:.4f}")
    return {"epochs": 0, "best_epoch": 0, "val_loss": probe["val_loss"], "probe_c": probe["C"]}


#: The layer of a backbone that fine-tuning trains on with the new output layer: the classifier part of MLEE's
#: encoder (``mlee_crnn``'s Dense 64). Backbones without one fine-tune the output layer alone.
TUNED_LAYER = "embedding"


def _layers(model):
    """Every layer inside ``model``, nested models' included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _encoder(model, name: str):
    """``model``'s input normalisation and backbone: ``{"frames", "mask"}`` → the embedding its output layer
    reads, frozen (batch-norm statistics included) but for the backbone's :data:`TUNED_LAYER`, which fine-tuning
    trains on from the trained model's weights (the publication fine-tunes the classifier part: Dense 64 and the
    output layer)."""
    import keras

    encoder = keras.Model(model.input, model.get_layer("predictions").input, name=name)
    for layer in _layers(encoder):
        if not hasattr(layer, "layers"):  # nested models stay trainable containers; their layers decide
            layer.trainable = layer.name == TUNED_LAYER
    return encoder


def _head(encoders: list, n_classes: int, name: str):
    import keras

    frames = keras.Input(encoders[0].input["frames"].shape[1:], name="frames")
    mask = keras.Input((None,), dtype="bool", name="mask")
    parts = [e({"frames": frames, "mask": mask}, training=False) for e in encoders]
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="fused")(parts)
    out = keras.layers.Dense(n_classes, activation="softmax", name="predictions", dtype="float32")(x)
    return keras.Model({"frames": frames, "mask": mask}, out, name=name)


def _train_fold(manifest: RecordsManifest, run: RunDir, config: MLEEConfig, tables: _Tables, k: int, log) -> dict:
    import keras

    from emotion_refinery.models.backbones import build_sequence_model
    from emotion_refinery.records.datasets import sequence_dataset, sequence_statistics

    start = time.perf_counter()
    train_folds, val_fold = split_folds(manifest.n_folds, k)
    train_rows = np.array([u["index"] for u in manifest.utterances if u["fold"] in train_folds])
    seed = fold_seed(config.seed, 0, k)
    keras.utils.set_random_seed(seed)
    normalize = None
    if config.speaker_norm:
        from emotion_refinery.records.speaker_norm import sequence_tables

        normalize = sequence_tables(manifest)  # one pass over the sequences, no labels
    mean, variance = sequence_statistics(manifest, train_folds, normalize=normalize)
    n_classes = len(manifest.classes)
    # Inverse class frequencies of the training folds: per utterance by its label for the classifiers; for the
    # existence loss, per class the inverse shares of the utterances where it exists and where it does not.
    label_weight = np.zeros(len(tables.hard), np.float32)  # unlabelled utterances: no classifier target
    label_weight[:len(manifest.utterances)] = inverse_frequency(tables.hard[train_rows])[
        [u["label_index"] for u in manifest.utterances]]
    everyone = config.train_on == "all"
    if everyone:  # the existence loss also learns from the training folds' unlabelled utterances
        train_rows = np.concatenate([train_rows, np.array([u["index"] for u in manifest.vote_only
                                                           if u["fold"] in train_folds], np.int64)])
    exist_weight = existence_weights(tables.existence[train_rows])
    ones = np.ones(len(tables.hard), np.float32)
    stages: dict[str, dict] = {}

    def model_of(activation):
        return build_sequence_model(config.backbone, n_features=manifest.sequence_spec.n_features,
                                    n_classes=n_classes, mean=mean, variance=variance, activation=activation)

    def train(stage, model, targets, weights, loss, lr, vote_only=False):
        data = _datasets(manifest, train_folds, val_fold, targets, weights, config, seed, vote_only=vote_only,
                         normalize=normalize)
        stages[stage] = _fit(model, *data, loss=loss, lr=lr, config=config, log=log,
                             name=f"fold {k + 1}/{manifest.n_folds} {stage}")
        return model

    def mlee_model():
        return train("mlee", model_of("sigmoid"), tables.existence, ones, weighted_bce(*exist_weight),
                     config.lr if config.variant == "mlee" and config.lr else LEARNING_RATES["mlee"],
                     vote_only=everyone)

    def classifier(stage, targets):
        return train(stage, model_of("softmax"), targets, label_weight, "categorical_crossentropy",
                     config.lr if config.variant == stage and config.lr else LEARNING_RATES[stage])

    last_lr = config.lr or LEARNING_RATES[config.variant]
    if config.variant in ("hard", "soft"):
        final = classifier(config.variant, tables.hard if config.variant == "hard" else tables.soft)
    elif config.variant == "mlee":
        final = mlee_model()
    else:
        encoders = [_encoder(mlee_model(), "mlee_encoder")]
        if config.variant == "fusion":
            encoders.append(_encoder(classifier("soft", tables.soft), "soft_encoder"))
        final = _head(encoders, n_classes, config.variant)
        if config.head == "probe":
            stages[config.variant] = _fit_probe(final, manifest, train_folds, val_fold, tables.soft, label_weight,
                                                config, seed, log, f"fold {k + 1}/{manifest.n_folds} {config.variant}",
                                                normalize)
        else:
            final = train(config.variant, final, tables.soft, label_weight, "categorical_crossentropy", last_lr)
    test = sequence_dataset(manifest, folds=[k], batch_size=config.batch_size, normalize=normalize)
    probs = final.predict(test.map(lambda x, y: {"frames": x["frames"], "mask": x["mask"]}), verbose=0)
    with atomic_path(_fold_path(run, k)) as tmp, open(tmp, "wb") as f:
        np.savez(f, test_probabilities=probs.astype(np.float32))
    with atomic_path(run.model_path(0, k), keep_suffix=True) as tmp:
        final.save(tmp)
    info = {"fold": k, "validation_fold": val_fold, "train_utterances": len(train_rows), "stages": stages,
            **stages[config.variant], "seconds": time.perf_counter() - start, "seed": seed}
    run.write_done(0, k, info)
    log(f"fold {k + 1}/{manifest.n_folds}: {config.variant}, {info['seconds']:.1f} s")
    return info


def _evaluate(manifest: RecordsManifest, run: RunDir, config: MLEEConfig, tables: _Tables, record: dict) -> dict:
    classes = manifest.classes
    probs = np.zeros((len(manifest.utterances), len(classes)), np.float32)
    for k in range(manifest.n_folds):
        with np.load(_fold_path(run, k)) as z:
            probs[[u["index"] for u in manifest.utterances if u["fold"] == k]] = z["test_probabilities"]
    labels = np.array([u["label_index"] for u in manifest.utterances])
    scores = decision_scores(labels, probs.argmax(axis=1), n_classes=len(classes))
    present = predicted_existence(probs, sigmoid=config.variant == "mlee")
    decided = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)  # sigmoid outputs, scaled to sum to 1
    run.write_utterance_predictions(0, manifest, probs.argmax(axis=1), decided)
    folds = [run.fold_info(0, k) for k in range(manifest.n_folds)]
    return {
        "method": "mlee",
        "classes": classes,
        "protocol": {**manifest.data["folds"], "validation": "fold (k + 1) mod K stops training early",
                     "utterance_classifier": f"{config.backbone}, variant {config.variant}"},
        "records": record["records"],
        "config": dataclasses.asdict(config),
        "wa": scores["wa"], "ua": scores["ua"], "macro_f1": scores["macro_f1"],
        "confusion": scores["confusion"].tolist(),
        "existence": existence_scores(tables.existence[:len(manifest.utterances)], present, classes),
        "vote_only_utterances": len(manifest.vote_only) if config.train_on == "all" else 0,
        "voted_utterances": sum(bool(u.get("votes")) for u in manifest.utterances),
        "seconds": float(sum(f["seconds"] for f in folds)),
        "folds": folds,
    }


#: The variants whose targets come from the annotators' votes (soft targets, emotion existence); ``hard``
#: learns the labels alone.
VOTED_VARIANTS = tuple(v for v in VARIANTS if v != "hard")
#: Where records get votes from.
VOTE_SOURCES = "iemocap, cremad, emodb with its erkennung.txt, or a CSV manifest's votes column"


def check_inputs(manifest: RecordsManifest, config: MLEEConfig) -> list[str]:
    """Refuse, before anything is written or trained, records that lack what ``config`` trains on: spectrogram
    sequences for ``speed_perturb``, unlabelled utterances for ``train_on='all'``, votes for every variant but
    ``hard``. Returns the notes to print before training (what the run trains on, where it is not obvious)."""
    kind = manifest.data["settings"].get("sequences")
    if config.speed_perturb and kind != "spectrogram":
        raise EmorefineError(f"Received: speed_perturb=True with records of {kind or 'no'} sequences; expected "
                             "records built with `build-records --sequences spectrogram` (linear-frequency bins, "
                             "which a speed change scales)")
    if config.train_on == "all" and not manifest.vote_only:
        raise EmorefineError(f"Received: train_on='all' with records {str(manifest.root)!r} that hold no "
                             "unlabelled utterances; expected records built with `build-records "
                             "--no-majority keep` from a corpus with utterances voted on without a majority")
    voted = sum(bool(u.get("votes")) for u in manifest.utterances)
    if not voted and config.variant in VOTED_VARIANTS:
        raise EmorefineError(f"Received: variant={config.variant!r} with records {str(manifest.root)!r} whose "
                             f"{len(manifest.utterances)} utterances carry no annotator votes; the {config.variant} "
                             "variant learns from the votes (without them every target is the one-hot label and "
                             f"every utterance holds one emotion): expected records of a corpus with votes "
                             f"({VOTE_SOURCES}), or --variant hard")
    if not voted:
        return ["note: no utterance of these records carries votes: variant hard trains on the labels alone, and "
                "emotion existence is scored against each utterance's label"]
    if voted < len(manifest.utterances):
        return [f"note: {voted} of {len(manifest.utterances)} utterances carry votes; the others train on their "
                "one-hot label"]
    return []


def run_mlee(records_dir: str | os.PathLike, run_dir: str | os.PathLike, config: MLEEConfig, *,
             log: Callable[[str], None] = print, overwrite: bool = False) -> dict:
    """Run (or resume, or confirm) an MLEE run; return its report (also in ``report.json``). The records are
    checked for what the variant needs (:func:`check_inputs`) before the run directory is touched; ``overwrite``:
    start over in a run directory emorefine made (:func:`emotion_refinery.refine.rounds.utterance_run`)."""
    from emotion_refinery.outputs.report import mlee_markdown
    from emotion_refinery.refine.rounds import utterance_run

    notes = check_inputs(RecordsManifest.load(records_dir), config)
    with utterance_run(records_dir, run_dir, "mlee", config, sequences="spectrogram", overwrite=overwrite) as (
            manifest, run, record):
        tables = _Tables(manifest)
        for note in notes:
            log(note)
        for k in range(manifest.n_folds):
            if not run.is_done(0, k):
                _train_fold(manifest, run, config, tables, k, log)
        report = _evaluate(manifest, run, config, tables, record)
        write_json(run.report_json, report)
        write_bytes(run.report_md, mlee_markdown(report).encode())
        log(summary(report, config))
        return report


def summary(report: dict, config: MLEEConfig) -> str:
    """The run's one-line summary (``mlee`` prints it, also with ``--quiet``)."""
    return (f"MLEE ({config.variant}): WA {100 * report['wa']:.2f} %, UA {100 * report['ua']:.2f} %, "
            f"macro-F1 {100 * report['macro_f1']:.2f} %; existence macro-F1 "
            f"{100 * report['existence']['macro_f1']:.2f} %")
