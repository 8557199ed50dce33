"""The layout of a refine run directory, and the label shards in it.

::

    RUN_DIR/
      config.json                         the resolved settings + the records they ran on
      choices.json                        per split: speaker normalisation, and the evidence it was chosen on
      speaker-norm.npz                    per-utterance shift and scale (when some split normalises)
      rounds/round-00/labels/*.tfrecord   targets round 0 trained on (one per feature shard, same name)
      rounds/round-01/labels-split-03/*.tfrecord   with --targets self / cross-fit: split 3's targets of its
                                          training folds, from split 3's own round-0 model or its round-0
                                          teachers (none saw fold 3)
      rounds/round-00/teachers/split-03-0.json     written last: teacher 0 of split 3 is complete
      rounds/round-00/models/fold-03.keras
      rounds/round-00/predictions/fold-03.npy   out-of-fold predictions, (fold's segments, K) float32
      rounds/round-00/done/fold-03.json   written last: this (round, fold) is complete
      rounds/round-00/round.json          the round's utterance-level evaluation
      rounds/round-00/predictions.csv     the forest's out-of-fold decision and probabilities per utterance
      logs/round-00/fold-03/              TensorBoard
      report.json, report.md
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotion_refinery.errors import EmorefineError, RecordsError
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.util.processes import DirectoryBusy, directory_lock
from tf_records.atomic import atomic_path, write_bytes, write_json
from tf_records.schema import TargetSpec
from tf_records.writer import ShardWriter

__all__ = ["RunDir", "OpenRun", "load_run", "label_shard_path", "read_label_shards", "PLOTS_DIR"]

#: The run's figures, ``RUN_DIR/plots/`` (report.md links them by this relative path).
PLOTS_DIR = "plots"


class RunDir:
    """Paths and small I/O helpers of one run directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        #: Whether this process wrote (or confirmed) the run's ``config.json``: from then on the folder is tied
        #: to these settings, and an error says how to continue or start over.
        self.started = False

    config = property(lambda self: self.root / "config.json")
    report_json = property(lambda self: self.root / "report.json")
    report_md = property(lambda self: self.root / "report.md")
    speaker_norm = property(lambda self: self.root / "speaker-norm.npz")
    choices = property(lambda self: self.root / "choices.json")
    plots = property(lambda self: self.root / PLOTS_DIR)
    export = property(lambda self: self.root / "export")  # ``emorefine export``'s default folder

    @property
    def is_run(self) -> bool:
        """Whether the folder holds a run's ``config.json`` (a run directory, not a records folder)."""
        return self.config.is_file()

    @property
    def has_report(self) -> bool:
        """Whether a round has finished: the run's ``report.json`` is there."""
        return self.report_json.is_file()

    def report(self) -> dict:
        """The run's ``report.json``; an :class:`EmorefineError` when no round has finished yet."""
        if not self.has_report:
            raise EmorefineError(f"Received: run={str(self.root)!r}; it has no report.json (no round has finished)")
        return json.loads(self.report_json.read_text())

    def saved_config(self) -> dict:
        """The run's ``config.json`` as a dict, refusing one that cannot be read (truncated, foreign) in the house
        form, with the way to start over."""
        try:
            record = json.loads(self.config.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            record = e
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict) or "records" not in record:
            from emotion_refinery.util.overwrite import foreign_reason

            why = f"cannot be read: {record}" if isinstance(record, Exception) else "is not a run's settings"
            way = ("add --overwrite to delete the run directory and start over (or choose another -o)"
                   if foreign_reason(self.root, "run") is None else "choose another -o")
            raise EmorefineError(f"Received: output={str(self.root)!r}, whose config.json {why}; expected the "
                                 f"config.json emorefine wrote there: {way}")
        return record

    def speaker_norm_splits(self, n_folds: int, config: dict | None = None) -> list[bool]:
        """Whether split k's models z-normalise each speaker's bands, for every k: ``choices.json``, else (runs
        made before it) the run's ``speaker_norm`` setting (``config``: the saved settings, if already read)."""
        if self.choices.is_file():
            return [bool(v) for v in json.loads(self.choices.read_text())["speaker_norm"]["splits"]]
        config = json.loads(self.config.read_text())["config"] if config is None else config
        value = config.get("speaker_norm", False)
        return [value in (True, "on")] * n_folds

    def normalises(self, k: int, n_folds: int) -> bool:
        """Whether split ``k``'s models (and teachers) read speaker-normalised bands."""
        return self.speaker_norm_splits(n_folds)[k]

    @contextlib.contextmanager
    def lock(self, command: str = "emorefine") -> Iterator[None]:
        """Hold ``RUN_DIR/.lock`` for the block (:func:`~emotion_refinery.util.processes.directory_lock`): one process
        per run directory; a second one gets an :class:`EmorefineError` naming the first one's pid."""
        with contextlib.ExitStack() as stack:
            try:  # only taking the lock: errors of the run itself pass through unchanged
                stack.enter_context(directory_lock(self.root))
            except DirectoryBusy as e:
                pid = "" if e.pid is None else f" (pid {e.pid})"
                raise EmorefineError(f"Received: output={str(self.root)!r}; another emorefine {command}{pid} is "
                                     "running on it; wait for it or use another run directory") from None
            except (FileExistsError, NotADirectoryError):
                raise EmorefineError(f"Received: output={str(self.root)!r}; expected a new or empty folder, "
                                     "or a run directory to resume (it is a file)") from None
            yield

    # --- the records a run was made on ---------------------------------------------------
    def records_entry(self, manifest: RecordsManifest) -> dict:
        """How ``config.json`` names the records: their absolute path, their path relative to the run
        directory (so that a run and its records can move together), and the manifest's sha256."""
        root = manifest.root.resolve()
        return {"path": str(root), "relative": os.path.relpath(root, self.root.resolve()),
                "manifest_sha256": hashlib.sha256((manifest.root / "manifest.json").read_bytes()).hexdigest()}

    @staticmethod
    def records_identity(entry: dict) -> dict:
        """The part of a :meth:`records_entry` that says which records they are (not where they lie)."""
        return {"manifest_sha256": entry.get("manifest_sha256")}

    def records_root(self, entry: dict) -> Path:
        """The records folder of a :meth:`records_entry`: at its absolute path, or else at its path relative
        to this run directory (both moved together)."""
        candidates = [Path(entry["path"])]
        if "relative" in entry and Path(os.path.normpath(self.root / entry["relative"])) not in candidates:
            candidates.append(Path(os.path.normpath(self.root / entry["relative"])))
        for root in candidates:
            if (root / "manifest.json").is_file():
                return root
        raise EmorefineError(f"Received: run={str(self.root)!r}, whose records are not at "
                             f"{' nor at '.join(repr(str(c)) for c in candidates)}; expected the records folder "
                             "(with its manifest.json) at one of those paths: move it back, or beside the run "
                             "as it was")

    def prepare_utterance_run(self, method: str, config: dict, manifest: RecordsManifest, version: str,
                              defaults: dict | None = None) -> dict:
        """Create the config record of an utterance-level run (``lcw``, ``mlee``), or check that the run
        directory holds one of the same method, settings and records (to resume it); return the record.
        ``defaults``: every setting's default, which settings added after a run was made compare as."""
        from emotion_refinery.records.manifest import settings_difference

        record = {"method": method, "config": config, "records": self.records_entry(manifest),
                  "emorefine_version": version}
        if self.config.is_file():
            old = self.saved_config()
            if old.get("method", "refine") != method:
                raise EmorefineError(f"{self.root} holds a {old.get('method', 'refine')} run; use another run "
                                     f"directory for {method}, or --overwrite to delete it and start over")
            diff = settings_difference({"config": {**(defaults or {}), **old["config"]},
                                        "records": self.records_identity(old["records"])},
                                       {"config": config, "records": self.records_identity(record["records"])})
            if diff:
                raise EmorefineError(f"{self.root} holds a run with other settings ({'; '.join(diff)}). "
                                     "Use another run directory, the same settings to resume it, or --overwrite to "
                                     "delete it and start over with these settings.")
        elif self.root.exists() and any(p.name != ".lock" for p in self.root.iterdir()):
            raise EmorefineError(f"Received: output={str(self.root)!r}; expected a new or empty folder, "
                                 f"or an {method} run directory to resume")
        write_json(self.config, record)
        self.started = True
        return record

    def round_dir(self, t: int) -> Path:
        return self.root / "rounds" / f"round-{t:02d}"

    def labels_dir(self, t: int, split: int | None = None) -> Path:
        """Round ``t``'s label shards: shared by every split, or (cross-fit targets) split ``split``'s own."""
        return self.round_dir(t) / ("labels" if split is None else f"labels-split-{split:02d}")

    def teacher_done_path(self, t: int, k: int, h: int) -> Path:
        return self.round_dir(t) / "teachers" / f"split-{k:02d}-{h}.json"

    def model_path(self, t: int, k: int) -> Path:
        return self.round_dir(t) / "models" / f"fold-{k:02d}.keras"

    def predictions_path(self, t: int, k: int) -> Path:
        return self.round_dir(t) / "predictions" / f"fold-{k:02d}.npy"

    def done_path(self, t: int, k: int) -> Path:
        return self.round_dir(t) / "done" / f"fold-{k:02d}.json"

    def round_report(self, t: int) -> Path:
        return self.round_dir(t) / "round.json"

    def utterance_predictions(self, t: int) -> Path:
        return self.round_dir(t) / "predictions.csv"

    def logs_dir(self, t: int, k: int) -> Path:
        return self.root / "logs" / f"round-{t:02d}" / f"fold-{k:02d}"

    def is_done(self, t: int, k: int) -> bool:
        return self.done_path(t, k).is_file()

    def rounds_done(self, k: int | None = None) -> list[int]:
        """The rounds in which fold ``k`` (or, without ``k``, at least one fold) is done."""
        rounds = (int(p.name.split("-")[1]) for p in (self.root / "rounds").glob("round-*"))
        return sorted(t for t in rounds if (self.is_done(t, k) if k is not None
                                            else any((self.round_dir(t) / "done").glob("fold-*.json"))))

    def fold_info(self, t: int, k: int) -> dict:
        return json.loads(self.done_path(t, k).read_text())

    # --- arrays ---------------------------------------------------------------------
    def save_predictions(self, t: int, k: int, predictions: np.ndarray) -> None:
        with atomic_path(self.predictions_path(t, k)) as tmp, open(tmp, "wb") as f:
            np.save(f, predictions.astype(np.float32))

    def save_speaker_norm(self, shift: np.ndarray, scale: np.ndarray, groups: list[str]) -> None:
        with atomic_path(self.speaker_norm) as tmp, open(tmp, "wb") as f:
            np.savez(f, shift=shift, scale=scale, groups=np.array(groups))

    def load_speaker_norm(self) -> tuple[np.ndarray, np.ndarray]:
        """``(shift, scale)`` per utterance, float32 ``(n_utterances, n_mels)``."""
        with np.load(self.speaker_norm) as z:
            return z["shift"], z["scale"]

    def load_predictions(self, t: int, manifest: RecordsManifest) -> np.ndarray:
        """Round ``t``'s out-of-fold predictions of every segment, ``(n_segments, K)``, in global index order."""
        return np.concatenate([np.load(self.predictions_path(t, k)) for k in range(manifest.n_folds)])

    def write_labels(self, t: int, manifest: RecordsManifest, fold: int, targets: np.ndarray,
                     split: int | None = None) -> None:
        """Write fold ``fold``'s label shards of round ``t`` (of split ``split``, for cross-fit targets):
        ``targets`` ``(fold's segments, K)`` in global order."""
        spec = TargetSpec(len(manifest.classes))
        start, _ = manifest.fold_segments(fold)
        for shard in (s for s in manifest.shards if s["fold"] == fold):
            path = label_shard_path(self.labels_dir(t, split), shard)
            lo = shard["first_segment"] - start
            with ShardWriter(path) as w:
                for i in range(shard["segments"]):
                    w.write(spec.encode(targets[lo + i], index=shard["first_segment"] + i))

    def labels_complete(self, t: int, manifest: RecordsManifest, fold: int, split: int | None = None) -> bool:
        return all(label_shard_path(self.labels_dir(t, split), s).is_file()
                   for s in manifest.shards if s["fold"] == fold)

    def load_targets(self, t: int, manifest: RecordsManifest) -> np.ndarray:
        """The targets round ``t`` trained on, ``(n_segments, K)`` float32, in global index order.

        With cross-fit targets (one label set per split) a segment's target is the mean of the
        targets the splits that train on it gave it.
        """
        if self.labels_dir(t).is_dir():
            return np.concatenate([self.load_fold_targets(t, manifest, f) for f in range(manifest.n_folds)])
        total = np.zeros((manifest.n_segments, len(manifest.classes)), np.float64)
        count = np.zeros(manifest.n_segments)
        for k in range(manifest.n_folds):
            for fold in range(manifest.n_folds):
                if self.labels_dir(t, k).is_dir() and self.labels_complete(t, manifest, fold, split=k):
                    lo, hi = manifest.fold_segments(fold)
                    total[lo:hi] += self.load_fold_targets(t, manifest, fold, split=k)
                    count[lo:hi] += 1
        if not count.all():
            raise ValueError(f"round {t} has no targets for {int((count == 0).sum())} segment(s)")
        return (total / count[:, None]).astype(np.float32)

    def load_fold_targets(self, t: int, manifest: RecordsManifest, fold: int, split: int | None = None) -> np.ndarray:
        """Round ``t``'s targets of fold ``fold`` (split ``split``'s own, for cross-fit), ``(fold's segments, K)``."""
        return read_label_shards(self.labels_dir(t, split), manifest, [fold])

    def write_utterance_predictions(self, t: int, manifest: RecordsManifest, predictions: np.ndarray,
                                    probabilities: np.ndarray) -> None:
        """Write ``predictions.csv`` of round ``t``: one row per utterance in manifest order.

        Columns: ``id``, ``speaker`` (empty when unknown), ``fold``, ``label`` (true), ``predicted``,
        then ``p_<class>`` for every class: the utterance forest's out-of-fold probabilities
        (``probabilities``, ``(n_utterances, K)``; ``predictions``, ``(n_utterances,)`` class indices).
        """
        classes = manifest.classes
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "speaker", "fold", "label", "predicted", *(f"p_{c}" for c in classes)])
        for u, pred, proba in zip(manifest.utterances, predictions, probabilities):
            w.writerow([u["id"], "" if u.get("speaker") is None else u["speaker"], u["fold"], u["label"],
                        classes[int(pred)], *(f"{p:.6f}" for p in proba)])
        write_bytes(self.utterance_predictions(t), buf.getvalue().encode())

    def write_done(self, t: int, k: int, info: dict) -> None:
        write_json(self.done_path(t, k), info)


def label_shard_path(labels_dir: str | os.PathLike, shard: dict) -> Path:
    """The label shard of feature shard ``shard`` (a manifest entry) in ``labels_dir``: the same file name."""
    return Path(labels_dir) / Path(shard["path"]).name


def read_label_shards(labels_dir: str | os.PathLike, manifest: RecordsManifest, folds) -> np.ndarray:
    """The targets of the label shards of ``folds`` in ``labels_dir``, ``(segments, K)`` float32, in global segment
    order; a :class:`RecordsError` when their segment indices are not the records' (out of step)."""
    from tf_records.reader import read_targets

    shards = [s for s in manifest.shards if s["fold"] in set(folds)]
    targets, order = read_targets([label_shard_path(labels_dir, s) for s in shards], len(manifest.classes))
    expected = np.concatenate([np.arange(s["first_segment"], s["first_segment"] + s["segments"]) for s in shards])
    if not np.array_equal(order, expected):
        raise RecordsError(f"label shards in {str(labels_dir)!r} are out of step with the records' segments")
    return targets


@dataclasses.dataclass
class OpenRun:
    """A run directory opened once per command, passed to whatever the command does with it: its layout
    (:class:`RunDir`), its config record (``config.json``, read once) and its records' manifest. Unpacks as
    ``run, record, manifest``."""

    run: RunDir
    record: dict
    manifest: RecordsManifest
    _report: dict | None = dataclasses.field(default=None, repr=False)

    def __iter__(self):
        return iter((self.run, self.record, self.manifest))

    @property
    def root(self) -> Path:
        return self.run.root

    @property
    def method(self) -> str:
        """The command that made the run: ``refine``, ``lcw`` or ``mlee``."""
        return self.record.get("method", "refine")

    @property
    def config(self) -> dict:
        """The run's saved settings."""
        return self.record["config"]

    def speaker_norm_splits(self) -> list[bool]:
        """:meth:`RunDir.speaker_norm_splits` of every split of the run."""
        return self.run.speaker_norm_splits(self.manifest.n_folds, self.config)

    def report(self) -> dict:
        """The run's ``report.json`` (read once; :meth:`RunDir.report`)."""
        if self._report is None:
            self._report = self.run.report()
        return self._report


def load_run(run_dir: str | os.PathLike | OpenRun) -> OpenRun:
    """Open a run directory (an :class:`OpenRun` is returned as it is): its layout, its saved config record, and
    its records' manifest."""
    if isinstance(run_dir, OpenRun):
        return run_dir
    run = RunDir(run_dir)
    if not run.is_run:
        raise EmorefineError(f"Received: run={str(run_dir)!r}; expected a folder made by `emorefine refine` "
                             "(it has no config.json)")
    record = json.loads(run.config.read_text())
    return OpenRun(run, record, RecordsManifest.load(run.records_root(record["records"])))
