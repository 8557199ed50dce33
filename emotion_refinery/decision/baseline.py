"""The classical baseline: eGeMAPSv02 functionals and an RBF SVM under the records' own folds.

For every utterance of a records manifest, the source audio is decoded with :func:`emotion_refinery.data.audio.load`
at the manifest's sample rate (the audio the segments came from) and openSMILE computes the 88 eGeMAPSv02
functionals. ``Pipeline(StandardScaler(), SVC(kernel="rbf"))`` (scikit-learn defaults: C = 1, gamma "scale")
classifies them under the manifest's folds: for each fold id k, fit on the other folds, predict fold k.
WA, UA and macro-F1 are computed on the pooled out-of-fold predictions.

Files in the records folder: ``baseline-features.npz`` caches the features (keyed by the manifest's sha256,
the openSMILE version and the feature set), ``baseline.json`` holds ``{"runs": {"plain": …, "speaker_norm": …}}``,
one entry per variant run (an entry for another manifest is dropped when a run is written).

``opensmile`` is an optional dependency (``pip install "emorefine[baseline]"``); :func:`load_baseline` reads
``baseline.json`` without it.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emotion_refinery.data.extraction import egemaps_of_file
from emotion_refinery.data.feature_config import EGEMAPS
from emotion_refinery.data.label_noise import training_labels
from emotion_refinery.decision.utterance import decision_scores, speaker_normalise
from emotion_refinery.errors import AudioError, EmorefineError
from emotion_refinery.records.audit import speaker_confound
from emotion_refinery.records.manifest import MANIFEST_NAME, RecordsManifest
from emotion_refinery.util.ranges import SEED, SHARE
from tf_records.atomic import atomic_path, write_json

__all__ = ["RESULT_NAME", "FEATURES_NAME", "FEATURE_SET", "INSTALL_HINT", "BaselineUnavailable", "extract_features",
           "speaker_normalise", "make_classifier", "cross_validate", "run_baseline", "load_baseline", "variant_name"]

RESULT_NAME = "baseline.json"
FEATURES_NAME = "baseline-features.npz"
FEATURE_SET = EGEMAPS
CLASSIFIER = "StandardScaler + SVC(kernel='rbf', C=1, gamma='scale') (scikit-learn defaults)"
INSTALL_HINT = 'pip install "emorefine[baseline]"'
MAX_WORKERS = 2
STAGE = "decode + eGeMAPSv02"  # the progress stage (and bar label)


class BaselineUnavailable(EmorefineError):
    """The optional ``opensmile`` package is not installed."""


def _opensmile():
    try:
        import opensmile
    except ImportError as e:
        raise BaselineUnavailable(f"the baseline needs the opensmile package ({e}). Install it with: "
                                  f"{INSTALL_HINT}") from e
    return opensmile


def extract_features(paths: list[str], *, sr: int, workers: int = MAX_WORKERS,
                     progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """eGeMAPSv02 functionals of every file (:func:`emotion_refinery.data.extraction.egemaps_of_file`), decoded
    with :func:`emotion_refinery.data.audio.load` at ``sr`` Hz.

    Args:
        paths: audio files, ``n`` of them.
        sr: sample rate the audio is decoded (and resampled) to.
        workers: worker processes (at most 2), always fresh ones, never this process.
        progress: called as ``progress(STAGE, done, n)``.

    Returns:
        float32 ``(n, 88)``.
    """
    progress = progress or (lambda stage, done, total: None)
    n = len(paths)
    out = np.zeros((n, 88), dtype=np.float32)
    progress(STAGE, 0, n)
    workers = max(1, min(int(workers), MAX_WORKERS, n))

    def failed(i: int, e: Exception) -> AudioError:
        return AudioError(f"Received: path={paths[i]!r}; expected decodable audio (the source of a "
                          f"records utterance): {e}")

    _opensmile()  # fail here, with the install hint, rather than in every worker
    # openSMILE runs in fresh (spawned) processes only: in a process that has loaded TensorFlow its native
    # code aborts the interpreter (opensmile 2.6 with TensorFlow 2.21), and a fork would copy TensorFlow.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(egemaps_of_file, path, sr): i for i, path in enumerate(paths)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            i = futures[future]
            try:
                out[i] = future.result()
            except EmorefineError as e:
                raise failed(i, e) from e
            progress(STAGE, done, n)
    return out


def _digest(root: Path) -> str:
    return hashlib.sha256((root / MANIFEST_NAME).read_bytes()).hexdigest()


def _cached_features(manifest: RecordsManifest, digest: str, *, workers: int, progress) -> tuple[np.ndarray, bool]:
    """The features of the manifest's utterances, ``(n_utterances, 88)``, from the cache when its key matches."""
    opensmile = _opensmile()
    key = {"manifest_sha256": digest, "opensmile_version": opensmile.__version__, "feature_set": FEATURE_SET}
    path = manifest.root / FEATURES_NAME
    ids = [u["id"] for u in manifest.utterances]
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                if all(str(cached[k]) == v for k, v in key.items()) and cached["ids"].tolist() == ids:
                    return cached["features"], True
        except (OSError, ValueError, KeyError):
            pass  # unreadable or from another version of this code: recompute
    x = extract_features([u["path"] for u in manifest.utterances], sr=manifest.features.sr, workers=workers,
                         progress=progress)
    with atomic_path(path, fsync=False, keep_suffix=True) as tmp:  # keep .npz: np.savez would append it
        np.savez(tmp, features=x, ids=np.array(ids, dtype=str), **{k: np.array(v) for k, v in key.items()})
    return x, False


def make_classifier():
    """A new, unfitted ``StandardScaler + SVC(rbf)`` pipeline (scikit-learn defaults): the baseline's model."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(kernel="rbf"))


def cross_validate(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, *, n_classes: int,
                   train_labels: np.ndarray | None = None) -> dict[str, Any]:
    """``StandardScaler + SVC(rbf)`` under the given folds; metrics of the pooled out-of-fold predictions.

    Args:
        features: ``(n_utterances, n_features)``.
        labels: int ``(n_utterances,)`` in ``[0, n_classes)``: what the predictions are scored against.
        folds: int ``(n_utterances,)``; each fold id is predicted by a model fitted on all other folds.
        train_labels: the labels the models are fitted on, if not ``labels`` (planted noise).

    Returns:
        ``wa``, ``ua`` (mean recall over the classes present), ``macro_f1`` (over the same classes),
        ``confusion`` ``(n_classes, n_classes)`` (rows true, columns predicted) and ``predictions``
        ``(n_utterances,)``, as lists and floats.
    """
    x, y, f = np.asarray(features, dtype=np.float64), np.asarray(labels), np.asarray(folds)
    fit_y = y if train_labels is None else np.asarray(train_labels)
    if x.ndim != 2 or y.shape != (x.shape[0],) or f.shape != y.shape or fit_y.shape != y.shape or \
            len(np.unique(f)) < 2:
        raise EmorefineError(f"Received: features {x.shape}, labels {y.shape}, train labels {fit_y.shape}, folds "
                             f"{f.shape} ({len(np.unique(f))} fold ids); expected (n, n_features), (n,), (n,), (n,), "
                             "2+ fold ids")
    predictions = np.empty(len(y), dtype=np.int64)
    for fold in np.unique(f):
        test = f == fold
        predictions[test] = make_classifier().fit(x[~test], fit_y[~test]).predict(x[test])
    scores = decision_scores(y, predictions, n_classes=n_classes)
    return {**scores, "confusion": scores["confusion"].tolist(), "predictions": predictions.tolist()}


def run_baseline(records_dir: str | os.PathLike, *, speaker_norm: bool = False, label_noise: float = 0.0,
                 seed: int = 0, workers: int = MAX_WORKERS,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Compute (or reuse) the features, cross-validate, and record the result in ``RECORDS_DIR/baseline.json``.

    Args:
        records_dir: a folder made by ``build-records``.
        speaker_norm: z-normalise each speaker's features by that speaker's statistics first.
        label_noise: fit on the labels of :func:`emotion_refinery.data.label_noise.training_labels` (this share
            flipped, seeded by ``seed``: the same flips as ``refine`` / ``lcw --label-noise`` with that seed);
            the predictions are scored on the true labels.
        workers: feature-extraction processes (at most 2).

    Returns:
        This variant's entry of ``baseline.json`` (``runs["plain"]`` or ``runs["speaker_norm"]``; with noise
        ``runs["plain-noise0.2-seed0"]`` and so on), plus
        ``cached`` (whether the features came from the cache) and ``path`` (the JSON written); neither is stored.

    Raises:
        BaselineUnavailable: ``opensmile`` is not installed.
    """
    SHARE.check("label_noise", label_noise)
    SEED.check("seed", seed)
    start = time.perf_counter()
    manifest = RecordsManifest.load(records_dir)
    _opensmile()  # before any work: the install hint
    _check_writable(manifest.root)  # before any work: the features and the result are stored there
    digest = _digest(manifest.root)
    utts = manifest.utterances
    x, cached = _cached_features(manifest, digest, workers=workers, progress=progress)
    if speaker_norm:
        x = speaker_normalise(x, [u.get("speaker") for u in utts])
    classes = manifest.classes
    scores = cross_validate(x, np.array([u["label_index"] for u in utts]), np.array([u["fold"] for u in utts]),
                            n_classes=len(classes), train_labels=training_labels(manifest, label_noise, seed))
    predicted = scores.pop("predictions")
    entry = {
        "feature_set": f"{FEATURE_SET} functionals (openSMILE {_opensmile().__version__}), 88 per utterance",
        "classifier": CLASSIFIER, "speaker_norm": speaker_norm, "protocol": manifest.data["folds"],
        "confound": speaker_confound([u["label"] for u in utts], [u.get("speaker") for u in utts]),
        "label_noise": {"share": label_noise, "seed": seed} if label_noise else None,
        **scores, "classes": classes, "n_utterances": len(utts), "manifest_sha256": digest,
        "predictions": [{"id": u["id"], "fold": u["fold"], "label": u["label"], "predicted": classes[p]}
                        for u, p in zip(utts, predicted)],
    }
    entry["seconds"] = time.perf_counter() - start
    path = manifest.root / RESULT_NAME
    runs = load_baseline(manifest.root, predictions=True) or {}  # the other variant, if made on this manifest
    runs[variant_name(speaker_norm, label_noise, seed)] = entry
    write_json(path, {"runs": dict(sorted(runs.items()))})
    return {**entry, "cached": cached, "path": str(path)}


def _check_writable(root: Path) -> None:
    """Refuse a records folder this user cannot write into (probed with a temporary file, removed at once)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=root, prefix=".emorefine-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise EmorefineError(f"Received: records={str(root)!r} ({e.strerror or e}); expected a records folder that "
                             f"can be written: the baseline stores {FEATURES_NAME} and {RESULT_NAME} there") from None


def variant_name(speaker_norm: bool, label_noise: float = 0.0, seed: int = 0) -> str:
    """The key of a baseline variant in ``baseline.json``: ``plain`` / ``speaker_norm``, with planted noise
    ``plain-noise0.2-seed0``."""
    name = "speaker_norm" if speaker_norm else "plain"
    return f"{name}-noise{label_noise:g}-seed{seed}" if label_noise else name


def load_baseline(records_dir: str | os.PathLike, *, predictions: bool = False) -> dict[str, dict[str, Any]] | None:
    """The runs of ``RECORDS_DIR/baseline.json`` made on the folder's current manifest, or None.

    Args:
        predictions: keep each entry's per-utterance ``predictions`` (dropped by default: a report
            needs the figures only).

    Returns:
        ``{"plain": entry, "speaker_norm": entry}`` (whichever were run), each entry as
        :func:`run_baseline` stored it; ``None`` when there is no ``baseline.json``, it cannot be read,
        or every run in it was made on another manifest. Needs no ``opensmile``.
    """
    root = Path(records_dir)
    try:
        data = json.loads((root / RESULT_NAME).read_text())
        digest = _digest(root)
        runs = {name: {k: v for k, v in run.items() if predictions or k != "predictions"}
                for name, run in data["runs"].items() if run.get("manifest_sha256") == digest}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return runs or None
