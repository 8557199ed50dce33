"""Decide the emotion of WAV files with a model written by `emorefine export`, without emorefine.

    python examples/use_exported_model.py EXPORT_DIR a.wav [b.wav ...] [--format keras|savedmodel|tflite|onnx]

Needs only NumPy, soundfile and the runtime of the chosen format (keras, tensorflow, ai-edge-litert or
onnxruntime); audio at another rate than the sidecar's ``sample_rate`` is resampled with soxr. Prints one
JSON object: for every file, the decision and class probabilities of every format asked for.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np
import soundfile


def read(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate``."""
    y, sr = soundfile.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1, dtype=np.float32)
    if sr != sample_rate:
        import soxr

        y = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32)
    return y


def inputs(meta: dict, y: np.ndarray) -> dict[str, np.ndarray]:
    """The model's inputs for one utterance: its waveform, and for a model that normalises speakers, zeros as
    the speaker's statistics (the model then uses the utterance's own)."""
    feed = {"waveform": y[None]}
    if "speaker_scale" in meta["inputs"]:
        width = meta["inputs"]["speaker_scale"]["shape"][-1]
        feed["speaker_shift"] = np.zeros((1, width), np.float32)
        feed["speaker_scale"] = np.zeros((1, width), np.float32)
    return feed


def runner(folder: str, meta: dict, fmt: str):
    """A function from the inputs to the ``probabilities`` output, ``(1, K)``, for one format."""
    path = os.path.join(folder, meta["files"][fmt])
    if fmt == "keras":
        import keras

        model = keras.saving.load_model(path)  # safe mode: Keras's own layers and ops only
        return lambda feed: np.asarray(model(feed)["probabilities"])
    if fmt == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(path).signatures["serving_default"]
        return lambda feed: serve(**{k: tf.constant(v) for k, v in feed.items()})["probabilities"].numpy()
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        signature = Interpreter(path).get_signature_runner()
        return lambda feed: signature(**feed)["probabilities"]
    import onnxruntime

    session = onnxruntime.InferenceSession(path)
    names = [o.name for o in session.get_outputs()]
    return lambda feed: dict(zip(names, session.run(None, feed)))["probabilities"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--format", action="append", choices=("keras", "savedmodel", "tflite", "onnx"))
    args = parser.parse_args(argv)
    (sidecar,) = glob.glob(os.path.join(args.folder, "emorefine-round-*.json"))
    with open(sidecar) as f:
        meta = json.load(f)
    formats = args.format or list(meta["files"])
    models = {fmt: runner(args.folder, meta, fmt) for fmt in formats}
    results = {}
    for path in args.audio:
        feed = inputs(meta, read(path, meta["sample_rate"]))
        results[path] = {}
        for fmt, run in models.items():
            p = np.asarray(run(feed), np.float64)[0]
            results[path][fmt] = {"label": meta["classes"][int(np.argmax(p))], "probabilities": p.round(6).tolist()}
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
    assert not any(m.split(".")[0] in ("emotion_refinery", "cli", "tf_records") for m in sys.modules)
