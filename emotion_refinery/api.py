"""The Python API: load what was trained, predict files or arrays.

>>> from emotion_refinery import load
>>> model = load("runs/emodb")              # a run directory, or a folder written by `emorefine export`
>>> result = model.predict("speech.wav")    # or model.predict(samples, sr=16000)
>>> result.label, result.probabilities      # the utterance decision, (K,)
>>> result.profile, result.start_seconds    # the emotion profile (n_segments, K) and segment starts (refine)

:func:`load` returns a :class:`~emotion_refinery.outputs.inference.Predictor` for a ``refine`` run (streamed
segments, bounded memory on long recordings) and an :class:`ExportedModel` for an export folder or an
``lcw`` / ``mlee`` run (one waveform-to-decision Keras model, :mod:`emotion_refinery.outputs.export`). Both
have ``classes``, ``predict``, ``predict_all`` and ``set_speaker`` and return
:class:`~emotion_refinery.outputs.inference.Prediction` objects; a file that cannot be used comes back with its
``error``, never raised.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import AudioError, EmorefineError
from emotion_refinery.outputs.inference import Prediction

__all__ = ["load", "ExportedModel", "find_sidecar"]

#: What :class:`ExportedModel` reads of an export's sidecar.
_SIDECAR_KEYS = ("files", "classes", "round", "features", "speaker_norm", "decision", "inputs", "sample_rate")


def find_sidecar(folder: str | os.PathLike, t: int | None = None) -> Path | None:
    """The export sidecar in ``folder`` (round ``t``'s, or the only one), or ``None`` if it holds none."""
    from emotion_refinery.outputs.export import SIDECAR_KIND

    found = []
    for path in sorted(Path(folder).glob("emorefine-round-*.json")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("kind") == SIDECAR_KIND and (t is None or meta.get("round") == t):
            found.append(path)
    if len(found) > 1:
        rounds = ", ".join(p.stem.rsplit("-", 1)[1] for p in found)
        raise EmorefineError(f"Received: {str(folder)!r} holds exports of rounds {rounds}; choose one with --round")
    return found[0] if found else None


def load(path: str | os.PathLike, *, t: int | None = None):
    """A run directory or an export folder, ready to predict; ``t``: the round (default: the one ``predict``
    uses, chosen on validation folds)."""
    folder = Path(path)
    if not folder.is_dir():
        raise EmorefineError(f"Received: path={str(path)!r}; expected a run directory or an export folder")
    sidecar = find_sidecar(folder, t)
    if sidecar is not None:
        return ExportedModel.from_folder(folder, sidecar)
    if t is not None and any(folder.glob("emorefine-round-*.json")):
        raise EmorefineError(f"Received: round={t}; {str(path)!r} holds no export of that round")
    from emotion_refinery.records.run_dir import RunDir, load_run

    if not RunDir(folder).is_run and any(folder.glob("emorefine-round-*.keras")):
        raise EmorefineError(f"Received: {str(path)!r}; an export that did not finish (it has no sidecar "
                             "emorefine-round-RR.json): run `emorefine export` again")
    opened = load_run(folder)
    if opened.method == "refine":
        from emotion_refinery.outputs.inference import Predictor

        return Predictor(opened, t=t)
    return ExportedModel.from_run(opened, t=t)


class ExportedModel:
    """A waveform-to-decision model (:func:`emotion_refinery.outputs.export.decision_model`) and its sidecar.

    Attributes:
        classes: the class names, in the order of every probability vector.
        t: the round the model comes from.
        speaker_norm: whether the model normalises a speaker's bands (see :meth:`set_speaker`).
        utterance_classifier: the run's decision rule; ``decided_by`` says what the model applied.
        opened: the run it was built from (:meth:`from_run`), else ``None`` (an export folder).
    """

    def __init__(self, model, meta: dict, opened=None):
        self.model, self.meta, self.opened = model, meta, opened
        self.classes: list[str] = list(meta["classes"])
        self.t: int = meta["round"]
        self.features = FeatureConfig.from_dict(meta["features"])
        self.speaker_norm: bool = bool(meta["speaker_norm"])
        self.utterance_classifier: str = meta["decision"]["rule"]
        self.speaker: tuple[np.ndarray, np.ndarray] | None = None
        self._input = "waveform" if "waveform" in meta["inputs"] else "frames"

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, sidecar: str | os.PathLike) -> ExportedModel:
        """The ``.keras`` model of an export folder (loaded in safe mode) with its sidecar."""
        import keras

        meta = json.loads(Path(sidecar).read_text())
        again = "run `emorefine export` again"
        missing = [key for key in _SIDECAR_KEYS if key not in meta]
        if missing:
            raise EmorefineError(f"Received: {str(folder)!r}; its sidecar {Path(sidecar).name} lacks "
                                 f"{', '.join(missing)}: {again}")
        name = meta.get("files", {}).get("keras")
        if not name or not (Path(folder) / name).is_file():
            raise EmorefineError(f"Received: {str(folder)!r}; its sidecar {Path(sidecar).name} names no .keras file "
                                 f"that is there: {again} (the .keras file is always written)")
        try:
            model = keras.saving.load_model(Path(folder) / name)
        except Exception as e:  # Keras reports a damaged archive as ValueError, OSError, KeyError, BadZipFile …
            raise EmorefineError(f"Received: {str(Path(folder) / name)!r}; it cannot be loaded "
                                 f"({type(e).__name__}: {str(e).splitlines()[0][:200]}): {again}") from None
        return cls(model, meta)

    @classmethod
    def from_run(cls, run_dir, *, t: int | None = None) -> ExportedModel:
        """The model :func:`emotion_refinery.outputs.export.export_run` would write for ``run_dir`` (a path, or its
        :class:`~emotion_refinery.records.run_dir.OpenRun`), built in memory."""
        from emotion_refinery.outputs.export import decision_model, sidecar_of
        from emotion_refinery.records.run_dir import load_run

        opened = load_run(run_dir)
        model, notes = decision_model(opened, t=t)
        notes.pop("predictor", None)
        return cls(model, sidecar_of(model, notes, opened.manifest, opened.record, files={}), opened)

    # -- inputs ----------------------------------------------------------------------------------------

    def _signal(self, audio, sr: int | None) -> np.ndarray:
        from emotion_refinery.data import audio as decode

        if isinstance(audio, (str, os.PathLike)):
            return decode.load(audio, sr=self.features.sr)
        return decode.from_array(audio, sr=sr, target_sr=self.features.sr)

    def _inputs(self, audio, sr: int | None, *, own_statistics: bool = False) -> dict[str, np.ndarray]:
        if self._input == "frames":
            frames = _opensmile_frames(audio, self.meta)
            x = {"frames": frames[None].astype(np.float32)}
        else:
            y = self._signal(audio, sr)
            need = self.meta["min_samples"] if self.meta.get("outputs", {}).get("profile") else self.features.win_length
            if len(y) < need:
                raise AudioError(f"too short: the model needs {need / self.features.sr:.3f} s")
            x = {"waveform": y[None]}
        if self.speaker_norm:
            if self.speaker is None and not own_statistics:
                raise EmorefineError("this model normalises every speaker's bands: call set_speaker(paths of the "
                                     "speaker's audio) first")
            width = self.meta["inputs"]["speaker_shift"]["shape"][-1]
            shift, scale = self.speaker if (self.speaker and not own_statistics) else (np.zeros(width), np.zeros(width))
            x["speaker_shift"] = np.asarray(shift, np.float32)[None]
            x["speaker_scale"] = np.asarray(scale, np.float32)[None]
        return x

    # -- API -------------------------------------------------------------------------------------------

    def set_speaker(self, audio: list) -> dict[str, str]:
        """Per-band statistics of one speaker from their audio (paths, or arrays at the model's rate), for the
        files predicted next; returns ``{path: reason}`` for those that could not be read."""
        if not self.speaker_norm:
            return {}
        sums, bad = None, {}
        for item in audio:
            try:
                s = np.asarray(self.model(self._inputs(item, self.features.sr, own_statistics=True))["speaker_sums"],
                               np.float64)
            except AudioError as e:
                bad[str(item)] = str(e)
                continue
            sums = s if sums is None else sums + s
        if sums is None:
            raise AudioError("no file to compute the speaker's statistics from"
                             + (f" ({'; '.join(f'{p}: {r}' for p, r in bad.items())})" if bad else ""))
        from emotion_refinery.records.speaker_norm import shift_and_scale

        self.speaker = shift_and_scale(sums[0, 0], sums[1], sums[2])
        return bad

    def predict(self, audio, *, sr: int | None = None) -> Prediction:
        """Profile (``refine`` models) and decision of one file (a path) or signal (an array with ``sr``)."""
        name = str(audio) if isinstance(audio, (str, os.PathLike)) else "<array>"
        try:
            out = self.model(self._inputs(audio, sr))
        except AudioError as e:
            return Prediction(name, error=str(e))
        probabilities = np.asarray(out["probabilities"], np.float64)[0]
        result = Prediction(name, probabilities=probabilities, label=self.classes[int(np.argmax(probabilities))],
                            decided_by=self.meta["decision"]["in_graph"])
        if "profile" in out:
            result.profile = np.asarray(out["profile"], np.float32)
            result.start_seconds = np.asarray(out["start_seconds"], np.float64)
        return result

    def predict_all(self, paths: list) -> list[Prediction]:
        """:meth:`predict` of every path, failures returned in place."""
        return [self.predict(p) for p in paths]


def _opensmile_frames(audio, meta: dict) -> np.ndarray:
    """openSMILE frames (``--sequences lld`` / ``egemaps``) of one file, computed in a worker process (openSMILE
    and TensorFlow do not share a process)."""
    import multiprocessing
    import tempfile

    from emotion_refinery.data import extraction

    if not isinstance(audio, (str, os.PathLike)):
        raise EmorefineError("this model reads openSMILE features: give audio files, not arrays")
    extract = {"lld": extraction.extract_llds, "egemaps": extraction.extract_egemaps}[meta["sequences"]]
    with tempfile.TemporaryDirectory() as scratch:
        cache = os.path.join(scratch, "frames.bin")
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            done = pool.apply(extract, (os.fspath(audio), cache, meta["features"]))
        if isinstance(done, str):
            raise AudioError(done)
        frames, _ = extraction.read_frames(cache)
    return frames
