"""The round loop: train every fold of a round, evaluate at the utterance level, repeat on refined labels.

Round 0 trains on the pseudo one-hot labels of the utterances. Round t ≥ 1 trains fresh
models on the label shards written from round t−1's out-of-fold predictions with the run's
rule. After each round, the emotion profiles (out-of-fold segment predictions) of every
utterance are summarised by 8 statistics per class and classified by a random forest under
the same folds: WA and UA per round.

Resumable: a (round, fold) is done when its completion mark exists, which is written after
its model, predictions and next-round label shards; a run re-started with the same
settings skips what is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from emotion_refinery import __version__
from emotion_refinery.data.folds import split_folds
from emotion_refinery.data.label_noise import training_labels
from emotion_refinery.decision.baseline import load_baseline
from emotion_refinery.decision.choices import (
    DECISION_RULES,
    ProfileDecider,
    band_functionals,
    majority,
    nested_decisions,
    nested_rounds,
    speaker_norm_choices,
)
from emotion_refinery.decision.deciders import AUTO_DESCRIPTION, UTTERANCE_RULES
from emotion_refinery.decision.utterance import decision_scores, ep_entropy, mean_ep_decisions
from emotion_refinery.errors import EmorefineError, RecordsError
from emotion_refinery.outputs.report import write_reports
from emotion_refinery.records.audit import CONFOUND_WARNING, leakage_audit, speaker_confound
from emotion_refinery.records.manifest import RecordsManifest, settings_difference
from emotion_refinery.records.run_dir import RunDir, load_run
from emotion_refinery.records.speaker_norm import speaker_groups, speaker_tables, utterance_statistics
from emotion_refinery.refine.executors import Task, check_executor, run_stage, shutdown
from emotion_refinery.refine.rules import PEPR_ALPHA, RULES
from emotion_refinery.refine.settings import RefineConfig, check_for_records
from emotion_refinery.util.overwrite import check_overwrite, clear_folder, start_over_hint, with_hint
from emotion_refinery.util.processes import LOCK_NAME, cpu_count
from tf_records.atomic import remove_leftovers, write_json

__all__ = ["refine", "check_records", "utterance_arrays"]


def check_records(manifest: RecordsManifest, config: RefineConfig | None = None, *, verify: bool = True) -> None:
    """Refuse records that cannot be refined, before any training: bad shards, too few folds, or a split
    whose training folds miss a class.

    A held-out or early-stopping fold without some class is accepted (leave-one-speaker-out on Emo-DB
    has such folds; the pooled WA and UA are still defined); a model whose training folds hold no
    utterance of a class could never predict it, so that split is refused.
    """
    if manifest.n_folds < 3:
        raise RecordsError(f"Received: records with folds={manifest.n_folds}; refine needs at least 3 "
                           "(one held out, one for early stopping, one or more to train on)")
    if config is not None and config.targets == "cross-fit" and config.rounds > 1 and manifest.n_folds < 4:
        raise RecordsError(f"Received: targets='cross-fit' with records of folds={manifest.n_folds}; cross-fit "
                           "targets need at least 4 folds (two training folds per split, one per teacher); "
                           "use targets='oof' or rebuild the records with more folds")
    if config is not None and config.label_source == "votes" and not any(u.get("votes") for u in manifest.utterances):
        raise RecordsError("Received: label_source='votes' with records whose utterances carry no votes; expected "
                           "records built from a corpus with votes (iemocap, cremad, or a CSV manifest's votes "
                           "column), or label_source='labels'")
    if config is not None and config.segments_from == "sequences" and \
            manifest.data["settings"].get("sequences") != "log-mel":
        raise RecordsError(f"Received: segments_from='sequences' with records whose sequence shards are "
                           f"{manifest.data['settings'].get('sequences') or 'absent'}; expected records built with "
                           "`build-records --sequences log-mel` (the frames the segments are cut from), or "
                           "segments_from='segments'")
    classes = manifest.classes
    per_fold = [{u["label_index"] for u in manifest.utterances if u["fold"] == f} for f in range(manifest.n_folds)]
    splits = []
    for k in range(manifest.n_folds):
        train, val = split_folds(manifest.n_folds, k)
        present = set().union(*(per_fold[f] for f in train))
        missing = [classes[c] for c in range(len(classes)) if c not in present]
        if missing:
            splits.append(f"split {k} (fold {k} held out, fold {val} stops training early) trains on folds "
                          f"{train}, which have no utterances of class(es) {', '.join(map(repr, missing))}")
    if splits:
        raise RecordsError(f"{'; '.join(splits)}. Refine needs every class in the training folds of every split "
                           "(a held-out or early-stopping fold may lack a class); rebuild the records with fewer "
                           "folds or another fold assignment (build-records --folds N, --folds-by, --seed)")
    if verify:
        bad = manifest.verify()
        if bad:
            listing = "; ".join(f"{path}: {', '.join(p)}" for path, p in bad.items())
            raise RecordsError(f"{len(bad)} shard(s) of {manifest.root} fail verification ({listing}); "
                               "rebuild the records")



@contextlib.contextmanager
def utterance_run(records_dir: str | os.PathLike, run_dir: str | os.PathLike, method: str, config, *,
                  sequences: str, overwrite: bool = False) -> Iterator[tuple[RecordsManifest, RunDir, dict]]:
    """Open an utterance-level run (``lcw``, ``mlee``) for as long as the ``with`` block lasts: records with
    sequence shards, verified; the run directory locked, its config record created or checked for a resume;
    deterministic ops on CPU. Yields ``(manifest, run, config record)``. ``sequences``: the ``build-records
    --sequences`` choice the error names when the records have no sequence shards. ``config``: the run's settings
    dataclass (a run made before a setting existed resumes as if it had that setting's default). ``overwrite``:
    empty the run directory first, if emorefine made it (:mod:`emotion_refinery.util.overwrite`). An emorefine error
    of the block, once the run's settings are written, says how to continue or start over."""
    manifest = RecordsManifest.load(records_dir)
    if manifest.sequence_spec is None:
        raise EmorefineError(f"Received: records={str(records_dir)!r} without sequence shards; {method} reads whole "
                             f"utterances: build the records with `build-records --sequences {sequences}`")
    check_records(manifest, verify=True)
    run = RunDir(run_dir)
    if overwrite:  # before the lock: nothing is written into a folder that is not emorefine's
        check_overwrite(run.root, "run", inputs={"records": manifest.root})
    with run.lock(method):
        import tensorflow as tf

        if overwrite:
            clear_folder(run.root, "run", inputs={"records": manifest.root})
        record = run.prepare_utterance_run(method, dataclasses.asdict(config), manifest, __version__,
                                           defaults=dataclasses.asdict(type(config)()))
        if not tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()
        try:
            yield manifest, run, record
        except EmorefineError as e:
            with_hint(e, start_over_hint(run.root))
            raise


def cpu_time_warning(manifest: RecordsManifest, config: RefineConfig, trainings: int) -> str | None:
    """A warning, before training on a machine without a GPU, when the backbone is sized for GPUs."""
    from emotion_refinery.models.backbones import BACKBONES
    from emotion_refinery.records.datasets import count_training_segments

    entry = BACKBONES[config.backbone]
    if not entry.gpu_sized:
        return None
    advice = "On a CPU use --preset cpu (backbone 'tcnn')."
    if entry.cpu_segments_per_second is None:
        return f"warning: no GPU is visible and backbone {config.backbone!r} is sized for GPUs. {advice}"
    cores = cpu_count()
    per_training = count_training_segments(manifest, range(manifest.n_folds - 2), config.train_stride) * config.epochs
    hours = trainings * per_training / (entry.cpu_segments_per_second * cores / 2) / 3600
    return (f"warning: no GPU is visible and backbone {config.backbone!r} is sized for GPUs (about "
            f"{entry.cpu_segments_per_second:.0f} training segments/s on 2 CPU cores): {trainings} fold trainings "
            f"of up to {config.epochs} epochs would take about {hours:.1f} h on {cores} "
            f"core{'s' if cores != 1 else ''}. {advice}")


def _prepare(run: RunDir, manifest: RecordsManifest, config: RefineConfig) -> dict:
    """Create the run directory or check that an existing one was made with the same settings."""
    record = {
        "config": config.to_dict(),
        "records": run.records_entry(manifest),
        "emorefine_version": __version__,
    }
    if run.config.is_file():
        old = run.saved_config()
        # Settings added to emorefine after a run was made compare as their defaults.
        old_cfg, new_cfg = {**RefineConfig().to_dict(), **old["config"]}, dict(record["config"])
        if isinstance(old_cfg["speaker_norm"], bool):  # a switch before it had the value auto
            old_cfg["speaker_norm"] = "on" if old_cfg["speaker_norm"] else "off"
        if RULES[config.rule].learned and new_cfg["rounds"] != old_cfg["rounds"]:
            raise EmorefineError(f"Received: rounds={config.rounds} for {run.root}, an lcw run of "
                                 f"{old_cfg['rounds']} rounds; its last round learned no labels for a next one: "
                                 f"expected rounds={old_cfg['rounds']}, another run directory, or --overwrite "
                                 "to delete this one and start over")
        if new_cfg["rounds"] >= old_cfg["rounds"]:  # more rounds extend a run
            old_cfg.pop("rounds"), new_cfg.pop("rounds")
        # The records are the same when their manifest is (they may have moved with the run).
        diff = settings_difference({"config": old_cfg, "records": run.records_identity(old["records"])},
                                   {"config": new_cfg, "records": run.records_identity(record["records"])})
        if diff:
            raise EmorefineError(f"{run.root} holds a run with other settings ({'; '.join(diff)}). "
                                 f"{SETTINGS_CHANGED}")
        # An α schedule 'start:end' spreads over the rounds: more rounds would change the α of rounds
        # already trained (their labels are written), so the extended run would not match its config.
        old_alphas = RefineConfig(**old["config"]).alphas()
        if config.rule == "wdsl" and config.alphas()[:len(old_alphas)] != old_alphas:
            changed = [f"round {t}: {a:g} → {b:g}" for t, (a, b) in enumerate(zip(old_alphas, config.alphas()))
                       if a != b]
            raise EmorefineError(f"Received: rounds={config.rounds} with alpha={config.alpha!r}; {run.root} trained "
                                 f"{old['config']['rounds']} rounds with that schedule, and {config.rounds} rounds "
                                 f"would change the α of rounds already trained ({'; '.join(changed)}). "
                                 "Use another run directory, a constant alpha to extend a run, or --overwrite to "
                                 "delete this one and start over.")
        remove_leftovers(run.root)
    elif run.root.exists() and any(p.name != LOCK_NAME for p in run.root.iterdir()):
        raise EmorefineError(f"Received: output={str(run.root)!r}; expected a new or empty folder, "
                             "or a run directory to resume")
    write_json(run.config, record)
    run.started = True
    return record


#: What a run directory of other settings leaves the user to do.
SETTINGS_CHANGED = ("Use another run directory, the same settings to resume it, or --overwrite to delete it and "
                    "start over with these settings.")


TARGET_DESCRIPTIONS = {
    "oof": "refined rounds train on the previous round's out-of-fold predictions of every fold (the papers'; "
           "split k's targets come from models that trained on fold k)",
    "cross-fit": "refined rounds of split k train on targets from two teachers of split k, each trained on half "
                 "of its training folds and predicting the other half (no teacher saw fold k)",
    "self": "refined rounds of split k train on targets from split k's own previous model, which predicts its "
            "training folds (born-again distillation; it never saw fold k)",
}


def _alpha_of(config: RefineConfig, t: int) -> float | None:
    if t == 0:
        return None
    if config.rule == "wdsl":
        return config.alphas()[t]
    return PEPR_ALPHA if config.rule == "pepr" else None


UTTERANCE_CLASSIFIER_DESCRIPTIONS = {**{r.name: r.description for r in UTTERANCE_RULES.values()},
                                     "auto": AUTO_DESCRIPTION}


def choose_speaker_norm(run: RunDir, manifest: RecordsManifest, config: RefineConfig,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Decide, once per run and before any training, which splits z-normalise each speaker's bands; write
    ``choices.json`` (and the speaker tables when some split normalises). ``auto``: per split by
    :func:`emotion_refinery.decision.choices.choose_speaker_norm` on the other folds. Returns the ``speaker_norm``
    entry."""
    if run.choices.is_file():
        return json.loads(run.choices.read_text())["speaker_norm"]
    utts, k = manifest.utterances, manifest.n_folds
    seen = training_labels(manifest, config.label_noise, config.seed)
    confound = speaker_confound(seen.tolist(), [u.get("speaker") for u in utts])
    entry: dict[str, Any] = {"mode": config.speaker_norm, "confound": confound, "evidence": None}
    stats = None
    if config.speaker_norm == "auto":
        log("choosing speaker normalisation per split (an SVM on band means and deviations, other folds only) …")
        stats = utterance_statistics(manifest)
        entry["evidence"] = speaker_norm_choices(band_functionals(stats), seen, np.array([u["fold"] for u in utts]),
                                                 speaker_groups(manifest), n_classes=len(manifest.classes))
        entry["splits"] = [e["speaker_norm"] for e in entry["evidence"]]
    else:
        entry["splits"] = [config.speaker_norm == "on"] * k
    share = confound["single_class_share"]
    if config.speaker_norm == "on" and share is not None and share > CONFOUND_WARNING:
        log(f"warning: --speaker-norm on, but {100 * share:.0f} % of the utterances come from speakers who show a "
            "single class: normalising each speaker by their own statistics removes what tells those classes "
            "apart (--speaker-norm auto chooses per split)")
    if any(entry["splits"]) and not run.speaker_norm.is_file():
        log("per-speaker statistics of the log-Mel bands (one pass over the records) …")
        run.save_speaker_norm(*speaker_tables(manifest, stats), groups=speaker_groups(manifest))
    write_json(run.choices, {"speaker_norm": entry})
    return entry


def selection(rounds: list[dict[str, Any]], labels: np.ndarray, n_classes: int) -> dict[str, Any] | None:
    """The round each split chose on its other folds, and the scores of every fold decided by its split's round
    (``None`` for runs whose rounds carry no per-split decisions)."""
    if not rounds or any("decision" not in r for r in rounds):
        return None
    picks = nested_rounds([r["decision"]["splits"] for r in rounds])
    folds = [s["fold"] for s in rounds[0]["decision"]["splits"]]
    fold_of = np.array(rounds[0]["folds_of_utterances"])
    decided = np.empty(len(labels), np.int64)
    for fold, i in zip(folds, picks):
        rows = fold_of == fold
        decided[rows] = np.asarray(rounds[i]["predicted"])[rows]
    scores = decision_scores(labels, decided, n_classes=n_classes)
    return {"rounds_by_split": [rounds[i]["round"] for i in picks], "wa": scores["wa"], "ua": scores["ua"],
            "macro_f1": scores["macro_f1"],
            "round": majority([rounds[i]["round"] for i in picks], [r["round"] for r in rounds])}


def _ensure_labels(run: RunDir, manifest: RecordsManifest, config: RefineConfig, t: int, k: int) -> None:
    """Round ``t``'s label shards of fold ``k``: hard labels for round 0, else from round t−1's saved predictions."""
    from emotion_refinery.refine.training import given_labels, given_targets, next_targets, write_self_targets

    if config.targets == "self" and t > 0 and not RULES[config.rule].learned:
        train_folds, _ = split_folds(manifest.n_folds, k, validation=config.early_stopping == "fold")
        if run.is_done(t - 1, k) and not all(run.labels_complete(t, manifest, f, split=k) for f in train_folds):
            write_self_targets(manifest, run, config, t=t, k=k)  # a run extended with more rounds
        return
    if config.split_targets_round(t) or run.labels_complete(t, manifest, k):
        return  # per-split targets come from each split's teachers, or its own learned labels (lcw)

    labels = given_labels(manifest, config)
    if t == 0:
        targets = given_targets(manifest, k, config.label_source, labels=labels)
    else:  # a run extended with more rounds: its former last round wrote no next labels
        targets = next_targets(manifest, k, np.load(run.predictions_path(t - 1, k)), rule=config.rule,
                               alpha=config.alphas()[t], source=config.label_source, labels=labels)
    run.write_labels(t, manifest, k, targets)


def mean_ep_scores(q: np.ndarray, utterance_index: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """``mean_ep_wa`` and ``mean_ep_ua``: each utterance decided by the argmax of its mean out-of-fold segment
    probability, without the forest (which learns from the other folds' speakers, and loses when speakers are
    held out)."""
    mean = mean_ep_decisions(q, utterance_index, len(labels))
    scores = decision_scores(labels, mean.argmax(axis=1), n_classes=n_classes)
    return {"mean_ep_wa": scores["wa"], "mean_ep_ua": scores["ua"]}


def validation_scores(folds: list[dict], labels: np.ndarray, n_classes: int) -> dict[str, float | None]:
    """``validation_wa`` and ``validation_ua`` of a round: its models' decisions on their early-stopping folds.

    Fold k's model decides the utterances of its validation fold (k + 1) mod K by their mean segment
    probability (:class:`~emotion_refinery.refine.training.ValidationDecisions`); pooled over the K models every
    utterance is decided once, by a model that neither trained nor was tested on it. Rounds can so be
    compared without the test folds. ``None`` for rounds trained before these decisions were kept.
    ``labels``: every utterance's class as training sees it (with planted noise, the noisy ones: a user
    chooses a round by the labels they have).
    """
    decided: dict[int, int] = {}
    for info in folds:
        if "validation_decisions" not in info:
            return {"validation_wa": None, "validation_ua": None}
        decided.update({int(u): c for u, c in info["validation_decisions"].items()})
    index = sorted(decided)
    scores = decision_scores(np.asarray(labels)[index],
                             np.array([decided[u] for u in index]), n_classes=n_classes)
    return {"validation_wa": scores["wa"], "validation_ua": scores["ua"]}


def flag_folds(folds: list[dict], *, ratio: float = 1.5) -> list[dict]:
    """Folds whose training looks broken: the best epoch was the first of several (the model hardly
    learnt before early stopping ended it), or the validation loss is more than ``ratio`` × the median
    of its siblings' in the same round.
    """
    if any(f.get("val_loss") is None for f in folds):
        return []  # no early-stopping fold: nothing to compare
    losses = np.array([f["val_loss"] for f in folds], dtype=np.float64)
    median = float(np.median(losses))
    flagged = []
    for f, loss in zip(folds, losses):
        reasons = []
        if f["best_epoch"] == 1 and f["epochs"] > 1:
            reasons.append(f"best epoch {f['best_epoch']} of {f['epochs']}")
        if len(folds) > 2 and loss > ratio * median:
            reasons.append(f"validation loss {loss:.3f} > {ratio:g} × the median {median:.3f}")
        if reasons:
            flagged.append({"fold": f["fold"], "reasons": reasons})
    return flagged


def _noise_recovery(targets: np.ndarray, utterance_index: np.ndarray, labels: np.ndarray,
                    seen: np.ndarray) -> dict[str, float]:
    """With planted noise: of the utterances trained on a flipped label, the share whose round's training
    targets (mean over their segments) put the true class on top (``recovered``); of the others, the share
    whose targets kept their label (``kept``)."""
    top = mean_ep_decisions(targets, utterance_index, len(labels)).argmax(axis=1)
    flipped = seen != labels
    return {"flipped": int(flipped.sum()), "recovered": float(np.mean(top[flipped] == labels[flipped])),
            "kept": float(np.mean(top[~flipped] == labels[~flipped]))}


def _round0_rules(run: RunDir, t: int) -> dict[int, str] | None:
    """``{fold: rule}`` each split chose in round 0, which it keeps in refined rounds (``None`` for round 0, or a
    run whose round 0 kept no per-split decisions)."""
    if t == 0 or not run.round_report(0).is_file():
        return None
    decision = json.loads(run.round_report(0).read_text()).get("decision")
    return None if decision is None else {s["fold"]: s["rule"] for s in decision["splits"]}


def evaluate_round(run: RunDir, manifest: RecordsManifest, config: RefineConfig, t: int) -> dict[str, Any]:
    """Utterance-level WA/UA/macro-F1 and segment-level indicators of round ``t``; written to ``round.json``
    (after the per-utterance forest decisions, ``predictions.csv``)."""
    start = time.perf_counter()
    k_classes = len(manifest.classes)
    q = run.load_predictions(t, manifest)
    table = manifest.segment_table()
    utts = manifest.utterances
    labels = np.array([u["label_index"] for u in utts])
    seen = training_labels(manifest, config.label_noise, config.seed)  # as training sees them (planted noise)
    folds_of = np.array([u["fold"] for u in utts])
    # Each fold decided by the rule its split chose on the other folds' profiles (the one rule unless auto).
    decider = ProfileDecider(q, table["utterance"], seen, folds_of, [u.get("speaker") for u in utts],
                             n_classes=k_classes, seed=config.seed)
    probabilities, splits = nested_decisions(decider, config.decision_rules(), kept=_round0_rules(run, t))
    predictions = probabilities.argmax(axis=1)
    scores = decision_scores(labels, predictions, n_classes=k_classes)
    entropy = ep_entropy(q)
    targets = run.load_targets(t, manifest)
    drift = 0.0 if t == 0 else float(np.mean(targets.argmax(1) != run.load_targets(t - 1, manifest).argmax(1)))
    folds = [run.fold_info(t, k) for k in range(manifest.n_folds)]
    teachers = [json.loads(run.teacher_done_path(t - 1, k, h).read_text())["seconds"]
                for k in range(manifest.n_folds) for h in (0, 1)] if config.cross_fit_round(t) else []
    entry = {
        "round": t,
        "rule": "hard" if t == 0 else config.rule,
        "alpha": _alpha_of(config, t),
        "wa": scores["wa"],
        "ua": scores["ua"],
        "macro_f1": scores["macro_f1"],
        "decision": {"rule": majority([s["rule"] for s in splits], DECISION_RULES), "splits": splits},
        "predicted": predictions.tolist(),
        "folds_of_utterances": folds_of.tolist(),
        "segment_accuracy": float(np.mean(q.argmax(axis=1) == table["label"])),
        "ep_entropy": float(entropy.mean()),
        "label_drift": drift,
        "confusion": scores["confusion"].tolist(),
        **mean_ep_scores(q, table["utterance"], labels, k_classes),
        **validation_scores(folds, seen, k_classes),
        "label_noise": _noise_recovery(targets, table["utterance"], labels, seen) if config.label_noise else None,
        "flagged_folds": flag_folds(folds),
        # With cross-fit targets, the round's time includes the teachers that made its targets.
        "seconds": float(sum(f["seconds"] for f in folds) + sum(teachers) + time.perf_counter() - start),
        "folds": folds,
    }
    run.write_utterance_predictions(t, manifest, predictions, probabilities)  # before round.json
    write_json(run.round_report(t), entry)
    return entry


def refine(
    records_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: RefineConfig,
    *,
    verbose: int = 0,
    log: Callable[[str], None] = print,
    verify: bool = True,
    executor: str = "local",
    parallel: int = 1,
    ray_address: str | None = None,
    task_gpus: float = 0.0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run (or resume, or confirm) a refine run; return the report (also in ``report.json``).

    One process at a time per run directory: a second one is refused while the first runs (the lock is
    the kernel's, so a killed run leaves none behind). ``executor`` and ``parallel``: where the trainings
    run (:mod:`emotion_refinery.refine.executors`; ``ray_address`` and ``task_gpus`` for ``ray``); not part of the
    run's settings, so a run can be resumed with another executor.

    Everything that can be checked is checked before the run directory's ``config.json`` is written.
    ``overwrite``: empty the run directory first, if emorefine made it (:mod:`emotion_refinery.util.overwrite`; any
    other folder is refused untouched). An emorefine error after ``config.json`` is written (a NaN loss, …)
    says how to continue or start over.
    """
    check_executor(executor, parallel)
    manifest = RecordsManifest.load(records_dir)
    check_for_records(config, manifest.features.n_mels)
    check_records(manifest, config, verify=verify)
    run = RunDir(run_dir)
    if overwrite:  # before the lock: nothing is written into a folder that is not emorefine's
        check_overwrite(run.root, "run", inputs={"records": manifest.root})
    with run.lock("refine"):
        if overwrite:
            clear_folder(run.root, "run", inputs={"records": manifest.root})
        try:
            return _refine_locked(run, manifest, config, verbose=verbose, log=log,
                                  executor={"executor": executor, "parallel": parallel, "ray_address": ray_address,
                                            "gpus": task_gpus})
        except EmorefineError as e:
            if run.started:  # its config.json holds this run's settings: say how to go on
                with_hint(e, start_over_hint(run.root))
            raise
        finally:
            shutdown()


def _refine_locked(run: RunDir, manifest: RecordsManifest, config: RefineConfig, *, verbose: int,
                   log: Callable[[str], None], executor: dict | None = None) -> dict[str, Any]:
    """The body of :func:`refine`, while this process holds the run directory's lock."""
    import keras
    import tensorflow as tf

    record = _prepare(run, manifest, config)
    if not tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()  # a resumed CPU run reproduces an uninterrupted one
    keras.mixed_precision.set_global_policy("mixed_float16" if config.mixed_precision else "float32")
    tf.get_logger().setLevel("ERROR")  # a fresh model per fold retraces predict; that is expected

    todo = [(t, k) for t in range(config.rounds) for k in range(manifest.n_folds) if not run.is_done(t, k)]
    todo += [(t, k, h) for t in range(config.rounds - 1) for k in range(manifest.n_folds) for h in (0, 1)
             if config.targets == "cross-fit" and not run.teacher_done_path(t, k, h).is_file()]
    todo.sort()
    if todo:
        choose_speaker_norm(run, manifest, config, log)
    rounds = []
    if todo and not tf.config.list_physical_devices("GPU"):
        warning = cpu_time_warning(manifest, config, len(todo))
        if warning:
            log(warning)
    for t in range(config.rounds):
        for k in range(manifest.n_folds):
            _ensure_labels(run, manifest, config, t, k)
        stages = []
        if config.cross_fit_round(t):  # split k's targets for round t, from round t − 1's teachers of split k
            stages.append([Task(t - 1, k, h) for k in range(manifest.n_folds) for h in (0, 1)
                           if not run.teacher_done_path(t - 1, k, h).is_file()])
        stages.append([Task(t, k) for k in range(manifest.n_folds) if not run.is_done(t, k)])
        for stage in stages:  # a barrier after each: the next stage reads what this one wrote
            # The first training of this process estimates the time left.
            first = bool(stage) and stage[0].key == todo[0]
            run_stage(stage, records_dir=str(manifest.root), run_dir=str(run.root), config=config.to_dict(),
                      verbose=verbose, log=log, first_estimates=len(todo) - 1 if first else None,
                      **(executor or {"executor": "local", "parallel": 1}))
        entry = (json.loads(run.round_report(t).read_text()) if run.round_report(t).is_file()
                 else evaluate_round(run, manifest, config, t))
        rounds.append(entry)
        alpha = "" if entry["alpha"] is None else f", alpha {entry['alpha']:g}"
        validation = ("" if entry.get("validation_ua") is None else
                      f", validation WA {100 * entry['validation_wa']:.2f} % / UA {100 * entry['validation_ua']:.2f} %")
        log(f"round {t} ({entry['rule']}{alpha}): "
            f"WA {100 * entry['wa']:.2f} %, UA {100 * entry['ua']:.2f} %, macro-F1 {100 * entry['macro_f1']:.2f} %"
            f"{validation}, segment accuracy {100 * entry['segment_accuracy']:.2f} %, "
            f"EP entropy {entry['ep_entropy']:.3f}, label drift {100 * entry['label_drift']:.1f} %")
        report = {
            "classes": manifest.classes,
            "protocol": {**manifest.data["folds"],
                         "validation": ("fold (k + 1) mod K stops training early" if config.early_stopping == "fold"
                                        else "no early-stopping fold: each split trains on the other K − 1 folds"),
                         "utterance_classifier": UTTERANCE_CLASSIFIER_DESCRIPTIONS[config.utterance_classifier],
                         "targets": TARGET_DESCRIPTIONS[config.targets]},
            "records": record["records"],
            "baseline": load_baseline(manifest.root),  # `emorefine baseline` on these records, or None
            "config": config.to_dict(),
            "rounds": rounds,
            "choices": json.loads(run.choices.read_text()) if run.choices.is_file() else None,
            "selection": selection(rounds, np.array([u["label_index"] for u in manifest.utterances]),
                                   len(manifest.classes)),
            "audit": leakage_audit(manifest.utterances, manifest.n_folds),  # speakers/texts shared across folds
        }
        write_reports(run, report)
        if _rounds_stalled(rounds, config.round_patience) and t < config.rounds - 1:
            log(f"stopping after round {t}: validation UA has not improved for {config.round_patience} round(s) "
                f"(--round-patience {config.round_patience})")
            break
    return report


def _rounds_stalled(rounds: list[dict], patience: int) -> bool:
    """True when the last ``patience`` rounds did not beat the best validation UA before them (0: never)."""
    scores = [r.get("validation_ua") for r in rounds]
    if patience < 1 or len(scores) <= patience or any(v is None for v in scores):
        return False
    return max(scores[-patience:]) <= max(scores[:-patience])


def utterance_arrays(run_dir: str | os.PathLike, *, t: int, uid: str) -> dict[str, np.ndarray]:
    """``targets`` (what round ``t`` trained on), ``predictions`` (round ``t``'s out-of-fold EP), ``label``."""
    run, record, manifest = load_run(run_dir)
    u = manifest.utterance(uid)
    # The utterance's own fold: in an interrupted round other folds may be done while this one is not.
    if not run.predictions_path(t, u["fold"]).is_file():
        done = run.rounds_done(u["fold"])
        raise EmorefineError(f"Received: round={t}; this run has rounds {done} for utterance {uid!r} "
                             f"(fold {u['fold']})")
    lo, hi = manifest.fold_segments(u["fold"])
    start = u["first_segment"] - lo
    q = np.load(run.predictions_path(t, u["fold"]))[start:start + u["segments"]]
    targets = run.load_targets(t, manifest)[u["first_segment"]:u["first_segment"] + u["segments"]]
    return {"targets": targets, "predictions": q, "label": np.int64(u["label_index"])}
