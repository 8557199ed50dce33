"""Using a finished run: ensemble models, streamed emotion profiles of new audio, utterance decisions.

A round's K fold models form an ensemble (their probabilities averaged). New audio is
decoded and turned into log-Mel frames block by block (soundfile blocks → soxr stream →
frames), and segments are classified as the frames arrive, so memory stays bounded for
long recordings. The utterance decision comes from a random forest on the emotion-profile
statistics of the run's utterances in that round, rebuilt from the stored out-of-fold
predictions (seeded, so the same every time) — nothing executable is stored.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import numpy as np

from emotion_refinery.data import audio as audio_module
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.features import frames_of, segment, segment_starts
from emotion_refinery.decision.choices import majority
from emotion_refinery.decision.deciders import MIN_SPEAKER_FILES, utterance_rule
from emotion_refinery.decision.utterance import fit_forest
from emotion_refinery.errors import AudioError, EmorefineError
from emotion_refinery.outputs.report import chosen_round
from emotion_refinery.records.run_dir import OpenRun, load_run
from emotion_refinery.records.speaker_norm import shift_and_scale, tiled_sums

__all__ = ["Predictor", "Prediction", "default_round", "deployed_choices", "leaky_choice_note", "ensemble_model",
           "stream_frames", "MIN_SPEAKER_FILES"]

def default_round(opened: OpenRun | str | os.PathLike) -> int:
    """The round ``predict`` and ``export`` use without ``--round``: the best by validation-fold UA, or the
    last round of runs without validation scores (:func:`emotion_refinery.outputs.report.chosen_round`).

    Never the round with the best test-fold accuracy: choosing by it would choose on test data.
    """
    return chosen_round(load_run(opened).report()["rounds"])["round"]


def leaky_choice_note(opened: OpenRun | str | os.PathLike, t: int) -> str | None:
    """A note for a refined round ``t`` chosen by default in a run with the papers' ``oof`` targets, whose
    validation folds (that choose the round) were seen by the refined rounds' teachers; else ``None``."""
    config = load_run(opened).config
    if t == 0 or config.get("targets", "oof") != "oof" or config.get("rule") == "lcw":
        return None
    return (f"note: round {t} was chosen on figures its teachers leaked into: with oof targets a refined round "
            "learns from models that trained on the folds it is scored on (see report.md); its figures are "
            "optimistic. --round 0 has no such leak, and a run with the default --targets self (or cross-fit) "
            "chooses without it.")


def _check_round(run, manifest, t: int) -> None:
    missing = [k for k in range(manifest.n_folds) if not run.is_done(t, k)]
    if missing:
        done = run.rounds_done()
        raise EmorefineError(f"Received: round={t}; its folds {missing} are not finished "
                             f"(rounds with finished folds: {done})")


def deployed_choices(opened: OpenRun | str | os.PathLike, t: int) -> dict:
    """What ``predict`` and ``export`` use of round ``t``: ``speaker_norm`` (what most splits chose; ties: off),
    ``folds`` (the fold models trained that way) and ``utterance_classifier`` (the run's rule, or with ``auto``
    the rule most of round ``t``'s splits chose)."""
    opened = load_run(opened)
    splits = opened.speaker_norm_splits()
    speaker_norm = majority(splits, [False, True])
    rule = opened.config.get("utterance_classifier", "forest")
    if rule == "auto":
        rounds = opened.report()["rounds"] if opened.run.has_report else []
        entry = next((r for r in rounds if r["round"] == t), None)
        if entry is None:
            raise EmorefineError(f"Received: round={t}; it has not been evaluated yet (no entry in report.json)")
        rule = entry["decision"]["rule"]
    return {"speaker_norm": speaker_norm, "folds": [k for k, v in enumerate(splits) if v == speaker_norm],
            "utterance_classifier": rule}


def ensemble_model(opened: OpenRun | str | os.PathLike, t: int, folds: list[int] | None = None):
    """One Keras model averaging round ``t``'s fold models (``folds``; default: those :func:`deployed_choices`
    picks): ``(batch, frames, n_mels, 1)`` → ``(batch, K)``."""
    import keras

    opened = load_run(opened)
    run, manifest = opened.run, opened.manifest
    _check_round(run, manifest, t)
    models = []
    for k in (deployed_choices(opened, t)["folds"] if folds is None else folds):
        model = keras.models.load_model(run.model_path(t, k), compile=False)  # safe mode; no loss needed
        model.name = f"fold_{k:02d}"
        models.append(model)
    f = manifest.features
    inputs = keras.Input((f.segment_frames, f.n_mels, 1), name="segments")
    outputs = keras.layers.Average(name="ensemble")([m(inputs) for m in models])
    return keras.Model(inputs, outputs, name=f"emorefine_round_{t:02d}")


def stream_frames(path: str | os.PathLike, config: FeatureConfig, *,
                  block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Log-Mel frames of an audio file, block by block: yields ``(n, n_mels)`` float32 arrays.

    Concatenated, the blocks equal ``log_mel`` of the whole (resampled, mono) signal.

    Raises:
        AudioError: the file cannot be decoded, is empty, or holds NaN or infinite samples.
    """
    pending = np.zeros(0, dtype=np.float32)
    for y in audio_module.stream(path, sr=config.sr, block_seconds=block_seconds, min_block=config.win_length):
        pending = np.concatenate([pending, y])
        n = config.n_frames(len(pending))
        if n:
            frames = frames_of(pending[: (n - 1) * config.hop_length + config.win_length], config)
            yield frames.astype(config.dtype).astype(np.float32)
            pending = pending[n * config.hop_length:]


@dataclasses.dataclass
class Prediction:
    """The result for one file: its emotion profile and utterance decision, or the reason it failed."""

    path: str
    error: str | None = None
    start_seconds: np.ndarray | None = None  # (n_segments,)
    profile: np.ndarray | None = None  # (n_segments, K)
    probabilities: np.ndarray | None = None  # (K,) utterance-level
    label: str | None = None
    decided_by: str | None = None  # the name of the rule that decided (decision.deciders.UTTERANCE_RULES)


class Predictor:
    """Round ``t``'s ensemble plus the utterance forest, ready for new audio.

    Args:
        run_dir: a finished (or partly finished) run directory, or the :class:`OpenRun` of one (opened once by
            the command that predicts).
        t: the round; default: the one :func:`default_round` chooses (validation folds, never test folds).
        batch_size: segments per model call.
    """

    def __init__(self, run_dir: OpenRun | str | os.PathLike, *, t: int | None = None, batch_size: int = 1024):
        #: the run, opened once: what the command that predicts passes on (e.g. to :func:`leaky_choice_note`)
        self.opened = load_run(run_dir)
        self.run, record, self.manifest = self.opened
        self.t = default_round(self.opened) if t is None else t
        chosen = deployed_choices(self.opened, self.t)
        #: the fold models of the ensemble: those trained with the speaker normalisation most splits chose
        self.folds = chosen["folds"]
        self.model = ensemble_model(self.opened, self.t, self.folds)
        self.features = self.manifest.features
        self.classes = self.manifest.classes
        self.batch_size = batch_size
        #: whether the ensemble's models read speaker-normalised bands (then :meth:`set_speaker` comes first)
        self.speaker_norm = chosen["speaker_norm"]
        self.speaker: tuple[np.ndarray, np.ndarray] | None = None
        #: how an utterance is decided from its profile: the run's rule, or the one most splits chose (auto)
        self.utterance_classifier = chosen["utterance_classifier"]
        self.rule = utterance_rule(self.utterance_classifier)
        self.forest = None
        if self.rule.forest:
            # The forest of the report's evaluation, refit on every utterance of the run (same seed).
            utts = self.manifest.utterances
            x = self.rule.statistics(self.run.load_predictions(self.t, self.manifest),
                                     self.manifest.segment_table()["utterance"], len(utts),
                                     [u.get("speaker") for u in utts])
            self.forest = fit_forest(x, np.array([u["label_index"] for u in utts]), seed=record["config"]["seed"])

    def set_speaker(self, paths: list[str | os.PathLike]) -> dict[str, str]:
        """Per-band statistics of one speaker from their audio ``paths``, for the files predicted next.

        Needed for runs made with ``--speaker-norm`` (each speaker's log-Mel bands z-normalised by
        that speaker's own mean and standard deviation). Returns ``{path: reason}`` for files that
        could not be read; raises :class:`AudioError` when none could.
        """
        f = self.features
        count, total, total_sq, bad = 0, np.zeros(f.n_mels), np.zeros(f.n_mels), {}
        for path in paths:
            try:
                n, s, s2 = tiled_sums(np.concatenate(list(stream_frames(path, f))), f)
            except AudioError as e:
                bad[str(path)] = str(e)
                continue
            count, total, total_sq = count + n, total + s, total_sq + s2
        if count == 0:
            raise AudioError("no segment to compute the speaker's statistics from"
                             + (f" ({'; '.join(f'{p}: {r}' for p, r in bad.items())})" if bad else ""))
        self.speaker = shift_and_scale(count, total, total_sq)
        return bad

    def _classify(self, segments: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(segments), self.batch_size):
            batch = np.ascontiguousarray(segments[i:i + self.batch_size], dtype=np.float32)[..., None]
            out.append(np.asarray(self.model.predict_on_batch(batch), dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def _blocks(self, audio, sr: int | None) -> Iterator[np.ndarray]:
        """Log-Mel frames of a file (streamed) or of a signal ``(n,)`` / ``(n, channels)`` at ``sr`` Hz."""
        if isinstance(audio, (str, os.PathLike)):
            yield from stream_frames(audio, self.features)
            return
        y = audio_module.from_array(audio, sr=sr, target_sr=self.features.sr)
        yield frames_of(y, self.features).astype(self.features.dtype).astype(np.float32)

    def profile(self, audio, *, sr: int | None = None) -> np.ndarray:
        """Emotion profile ``(n_segments, K)`` of a file (a path; segments are classified as its frames stream
        in) or of a signal (an array ``(n,)`` or ``(n, channels)`` at ``sr`` Hz)."""
        f = self.features
        if self.speaker_norm and self.speaker is None:
            raise EmorefineError("this run normalises every speaker's log-Mel bands (--speaker-norm): "
                                 "call set_speaker(paths of the speaker's audio) before predicting")
        rows, buffer, buffer_start, next_start = [], np.zeros((0, f.n_mels), np.float32), 0, 0
        for frames in self._blocks(audio, sr):
            if self.speaker is not None and self.speaker_norm:
                frames = ((frames - self.speaker[0]) / self.speaker[1]).astype(f.dtype).astype(np.float32)
            buffer = np.concatenate([buffer, frames])
            available = buffer_start + len(buffer) - next_start  # frames from the next segment's start
            if available >= f.segment_frames:
                segs = segment(buffer[next_start - buffer_start:], segment_frames=f.segment_frames,
                               segment_hop=f.segment_hop)
                rows.append(self._classify(segs))
                next_start += len(segs) * f.segment_hop
                drop = next_start - buffer_start
                buffer, buffer_start = buffer[drop:], next_start
        if not rows:
            raise AudioError(f"too short: one segment needs {f.segment_seconds:.3f} s")
        return np.concatenate(rows)

    def predict(self, audio, *, sr: int | None = None) -> Prediction:
        """Profile and utterance decision of a file (a path) or a signal (an array at ``sr`` Hz); a failure is
        returned, not raised. For a ``speaker-forest`` run, one file alone is decided by its mean profile (see
        :meth:`predict_all`)."""
        return self.predict_all([audio], sr=sr)[0]

    def predict_all(self, paths: list, *, sr: int | None = None) -> list[Prediction]:
        """:meth:`predict` of every path, failures returned in place.

        For a run whose utterance classifier is ``speaker-forest``, the files are taken as one
        speaker's utterances: each file's EP statistics are z-normalised by those of all the files
        that could be read, as the run normalised each speaker's utterances. With fewer than
        :data:`MIN_SPEAKER_FILES` readable files there are no such statistics, and each file is
        decided by its mean profile instead (``decided_by`` says which).
        """
        f = self.features
        results = []
        for path in paths:
            name = str(path) if isinstance(path, (str, os.PathLike)) else "<array>"
            try:
                ep = self.profile(path, sr=sr)
            except AudioError as e:
                results.append(Prediction(name, error=str(e)))
                continue
            results.append(Prediction(name, start_seconds=segment_starts(len(ep), f),
                                      profile=ep))
        done = [r for r in results if r.error is None]
        rule = self.rule.for_files(len(done))
        probabilities = rule.decide_files([r.profile for r in done], n_classes=len(self.classes), forest=self.forest)
        for r, proba in zip(done, probabilities):
            r.probabilities, r.label, r.decided_by = proba, self.classes[int(np.argmax(proba))], rule.name
        return results
