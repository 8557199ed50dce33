"""Export a run as one model from waveform to decision, in the formats other programs load.

The model (:func:`decision_model`) takes a float32 mono waveform at the records' sample rate, shape
``(1, n_samples)``, and holds everything ``predict`` does: the log-Mel front end (a ``Conv1D`` DFT and
the Mel filterbank; :mod:`emotion_refinery.outputs.graphs`), the segments, the fold ensemble, the emotion
profile and the utterance decision with the run's rule (the mean profile exactly; the random forest
as a node table walked by gathers). Outputs:

- ``probabilities`` ``(1, K)``: the utterance's class probabilities (the decision is their argmax);
- ``profile`` ``(n_segments, K)`` and ``start_seconds`` ``(n_segments,)`` (``refine`` runs);
- ``speaker_sums`` ``(3, n_mels)`` (runs with speaker normalisation): the frame count, sums and sums of
  squares from which a speaker's ``speaker_shift`` / ``speaker_scale`` inputs are made.

``lcw`` and ``mlee`` runs export their utterance models the same way (whole-utterance frames instead of
segments); on openSMILE features (``--sequences lld`` / ``egemaps``), which no graph computes, the model
starts from the feature frames and the sidecar says so.

Every model is built from Keras's own layers and ``keras.ops``: the ``.keras`` file loads without
emorefine, and the SavedModel, TFLite and ONNX files are converted from it. The sidecar
``emorefine-round-RR.json`` names the files, inputs, outputs, classes and feature settings.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from emotion_refinery import __version__
from emotion_refinery.decision.deciders import utterance_rule
from emotion_refinery.errors import EmorefineError
from tf_records.atomic import atomic_path, write_json

__all__ = ["EXPORT_FORMATS", "SIDECAR_KIND", "decision_model", "export_run", "export_round", "portable_model",
           "decision_agreement", "sidecar_of"]

#: ``export --format``: what each writes (``all`` writes every one).
EXPORT_FORMATS = {
    "keras": "emorefine-round-RR.keras: keras.saving.load_model (safe mode, no emorefine needed)",
    "savedmodel": "emorefine-round-RR/: a TensorFlow SavedModel, signature 'serve'",
    "tflite": "emorefine-round-RR.tflite: LiteRT / TFLite (ai-edge-litert's Interpreter)",
    "onnx": "emorefine-round-RR.onnx: ONNX (onnxruntime), converted by tf2onnx",
}
#: The sidecar's ``kind``: how ``predict`` tells an export folder from a run.
SIDECAR_KIND = "emorefine-export"


# ---------------------------------------------------------------------------------------------- the graph


def _inline(layer, *args, **kwargs):
    """Call ``layer``, or for emorefine's own layers (and ``Normalization``) compute the same with Keras layers
    and ops."""
    import keras
    from keras import ops

    from emotion_refinery.models.layers import AttentionPooling, MaskedMeanPooling, StridedMask

    if isinstance(layer, AttentionPooling):
        h, mask = args[0], kwargs.get("mask")
        score = keras.layers.Dense(1, use_bias=False, trainable=False, name=layer.name)
        scores = score(h)[..., 0]
        score.set_weights([np.asarray(layer.u)[:, None]])
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        return ops.sum(ops.softmax(scores, axis=-1)[..., None] * h, axis=1)
    if isinstance(layer, MaskedMeanPooling):
        h, mask = args[0], kwargs.get("mask")
        if mask is None:
            return ops.mean(h, axis=1)
        m = ops.cast(mask, h.dtype)[..., None]
        return ops.sum(h * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
    if isinstance(layer, StridedMask):
        return args[0][:, :: layer.stride]
    if isinstance(layer, keras.layers.Normalization) and not layer.invert:
        # As the layer computes it, with its statistics as constants of the graph (the layer keeps them as
        # captured tensors, which the ONNX converter would turn into inputs).
        mean = np.asarray(layer.mean, np.float32)
        scale = np.maximum(np.sqrt(np.asarray(layer.variance, np.float32)), np.float32(keras.backend.epsilon()))
        return (ops.cast(args[0], "float32") - mean) / scale
    return layer(*args, **kwargs)


def portable_model(model):
    """``model`` with emorefine's own layers replaced by the same computation in Keras layers and ops (the
    other layers, and so the weights, shared): it saves and loads without emorefine."""
    import keras

    # Operations saved inside a model keep their automatic names ("multiply"); the computations put in place of
    # emorefine's layers get new automatic names, which may be the same: prefix the saved ones with the model's.
    for op in _operations(model):
        if not isinstance(op, keras.layers.Layer) and not op.name.startswith(f"{model.name}_"):
            op.name = f"{model.name}_{op.name}"
    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=_inline,
                                    recursive=True)


def _operations(model):
    for op in model.operations:
        yield op
        if hasattr(op, "operations"):
            yield from _operations(op)


def _average(outputs: list, name: str):
    import keras

    return outputs[0] if len(outputs) == 1 else keras.layers.Average(name=name)(outputs)


def _refine_graph(predictor) -> tuple[Any, dict]:
    import keras
    from keras import ops

    from emotion_refinery.data.features import segment_step
    from emotion_refinery.outputs import graphs
    from emotion_refinery.records.speaker_norm import EPSILON

    f, k = predictor.features, len(predictor.classes)
    waveform = keras.Input((None,), batch_size=1, name="waveform")
    inputs = {"waveform": waveform}
    frames = graphs.log_mel_frames(waveform, f)
    segs = graphs.segments(frames, f)
    outputs = {}
    if predictor.speaker_norm:
        inputs["speaker_shift"] = keras.Input((f.n_mels,), batch_size=1, name="speaker_shift")
        inputs["speaker_scale"] = keras.Input((f.n_mels,), batch_size=1, name="speaker_scale")
        outputs["speaker_sums"] = graphs.tiled_frame_sums(frames, f)
        segs = graphs.normalise_segments(segs, outputs["speaker_sums"], inputs["speaker_shift"],
                                         inputs["speaker_scale"], f, EPSILON)
    folds = [portable_model(layer) for layer in predictor.model.layers if isinstance(layer, keras.Model)]
    profile = _average([m(segs) for m in folds], "ensemble")
    rule = utterance_rule(predictor.utterance_classifier)
    in_graph = utterance_rule(rule.in_graph)
    if in_graph.forest:
        probabilities = graphs.forest(graphs.ep_statistics(profile, k), predictor.forest, k)
    else:
        probabilities = graphs.mean_profile(profile)
    step = segment_step(f)
    outputs.update(probabilities=probabilities, profile=profile,
                   start_seconds=(ops.cumsum(ops.ones_like(profile[:, 0])) - 1.0) * step)
    model = keras.Model(inputs, outputs, name=f"emorefine_round_{predictor.t:02d}")
    notes = {"decision": in_graph.name}
    if rule.graph_note:
        notes["decision_note"] = rule.graph_note
    return model, notes


def _sequence_graph(run, record: dict, manifest) -> tuple[Any, dict]:
    import keras
    from keras import ops

    from emotion_refinery.data.feature_config import SPECTROGRAM
    from emotion_refinery.outputs import graphs
    from emotion_refinery.records.speaker_norm import EPSILON

    f = manifest.features
    kind = manifest.data["settings"].get("sequences")
    spec = manifest.sequence_spec
    notes: dict[str, Any] = {"decision": "ensemble"}
    if kind == "log-mel":
        waveform = keras.Input((None,), batch_size=1, name="waveform")
        inputs, frames = {"waveform": waveform}, graphs.log_mel_frames(waveform, f)
    elif kind == "spectrogram":
        waveform = keras.Input((None,), batch_size=1, name="waveform")
        inputs, frames = {"waveform": waveform}, graphs.spectrogram_frames(waveform, SPECTROGRAM)
    else:
        frames = keras.Input((None, spec.n_features), batch_size=1, name="frames")
        inputs = {"frames": frames}
        notes["front_end"] = (f"openSMILE ({kind}) computes the input frames outside the model: no graph holds it; "
                              "`emorefine predict` on this export folder runs it (needs the [baseline] extra)")
    outputs = {}
    if record["config"].get("speaker_norm"):
        n = spec.n_features
        inputs["speaker_shift"] = keras.Input((n,), batch_size=1, name="speaker_shift")
        inputs["speaker_scale"] = keras.Input((n,), batch_size=1, name="speaker_scale")
        outputs["speaker_sums"] = graphs.frame_sums(ops.reshape(frames, (-1, n)))
        shift, scale = graphs.speaker_statistics(outputs["speaker_sums"], inputs["speaker_shift"],
                                                 inputs["speaker_scale"], EPSILON)
        frames = (frames - ops.expand_dims(shift, 1)) / ops.expand_dims(scale, 1)
        if spec.dtype != "float32":
            frames = ops.cast(ops.cast(frames, spec.dtype), "float32")
    mask = ops.ones_like(frames[:, :, 0]) > 0.0
    import emotion_refinery.models.layers  # noqa: F401  (registers the layers saved models name)

    folds = []
    for k in range(manifest.n_folds):
        model = keras.models.load_model(run.model_path(0, k), compile=False)  # a custom loss need not load
        model.name = f"fold_{k:02d}"
        folds.append(portable_model(model))
    outputs["probabilities"] = _average([m({"frames": frames, "mask": mask}) for m in folds], "ensemble")
    return keras.Model(inputs, outputs, name="emorefine_round_00"), notes


def decision_model(run_dir, *, t: int | None = None):
    """The waveform-to-decision model of round ``t`` of a run (a path, or its
    :class:`~emotion_refinery.records.run_dir.OpenRun`; default round: the one ``predict`` uses), with
    ``(model, notes)``; see the module docstring for its inputs and outputs."""
    from emotion_refinery.records.run_dir import load_run

    opened = load_run(run_dir)
    run, record, manifest = opened
    method = opened.method
    if method == "refine":
        from emotion_refinery.outputs.inference import Predictor

        predictor = Predictor(opened, t=t)
        model, notes = _refine_graph(predictor)
        return model, {**notes, "method": method, "round": predictor.t, "folds": predictor.folds,
                       "speaker_norm": predictor.speaker_norm, "utterance_classifier": predictor.utterance_classifier,
                       "predictor": predictor}
    if t not in (None, 0):
        raise EmorefineError(f"Received: round={t}; a {method} run has one round, 0")
    missing = [k for k in range(manifest.n_folds) if not run.is_done(0, k)]
    if missing:
        raise EmorefineError(f"Received: run={str(run.root)!r}; its folds {missing} are not finished "
                             f"(run `emorefine {method}` again to finish them)")
    model, notes = _sequence_graph(run, record, manifest)
    return model, {**notes, "method": method, "round": 0, "folds": list(range(manifest.n_folds)),
                   "speaker_norm": bool(record["config"].get("speaker_norm")), "utterance_classifier": "ensemble"}


def decision_agreement(predictor) -> dict[str, int]:
    """How often the model's in-graph decision (EP statistics and forest, or mean profile) gives the label of
    ``predictor``'s NumPy / scikit-learn decision, on the stored profiles of the run's utterances."""
    import keras

    from emotion_refinery.outputs import graphs

    k = len(predictor.classes)

    profile = keras.Input((k,), name="profile")
    in_graph = utterance_rule(utterance_rule(predictor.utterance_classifier).in_graph)
    if in_graph.forest:
        decide = keras.Model(profile, graphs.forest(graphs.ep_statistics(profile, k), predictor.forest, k))
    else:
        decide = keras.Model(profile, graphs.mean_profile(profile))
    predictions = predictor.run.load_predictions(predictor.t, predictor.manifest)
    utt = predictor.manifest.segment_table()["utterance"]
    order = np.argsort(utt, kind="stable")
    bounds = np.searchsorted(utt[order], np.arange(len(predictor.manifest.utterances) + 1))
    same = total = 0
    for u in range(len(bounds) - 1):
        ep = predictions[order[bounds[u]:bounds[u + 1]]]
        if not len(ep):
            continue
        graph = np.asarray(decide(ep.astype(np.float32)))[0]
        ref = in_graph.decide_files([ep], n_classes=k, forest=predictor.forest)[0]
        same, total = same + int(graph.argmax() == ref.argmax()), total + 1
    return {"utterances": total, "same_label": same}


# ---------------------------------------------------------------------------------------------- writing


def _write_keras(model, path: Path) -> None:
    with atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp)


def _replace_folder(tmp: Path, path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def _write_savedmodel(model, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format="tf_saved_model", verbose=False)
    _replace_folder(tmp, path)


def _quietly():
    """Converters' own log lines (MLIR diagnostics, tf2onnx's warnings) kept off the console unless --verbose."""
    import contextlib
    import logging
    import warnings

    from emotion_refinery.util.quiet import silenced_stderr, verbose

    if verbose():
        return contextlib.nullcontext()
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    stack = contextlib.ExitStack()
    stack.enter_context(silenced_stderr())
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _write_tflite(model, path: Path, savedmodel: Path | None) -> None:
    import tensorflow as tf

    error = None
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch, _quietly():
        source = savedmodel
        if source is None:
            source = Path(scratch) / "savedmodel"
            model.export(str(source), format="tf_saved_model", verbose=False)
        try:
            data = tf.lite.TFLiteConverter.from_saved_model(str(source)).convert()
        except Exception as e:  # the converter raises its own ConverterError with the op it could not lower
            error = str(e)
    if error is not None:
        raise EmorefineError("TFLite cannot convert this model" + (
            ": its BLSTM runs over a time axis of any length, which the TFLite converter cannot lower without "
            "TensorFlow's own kernels (use savedmodel or onnx)" if "TensorList" in error else
            f": {error.splitlines()[0][:300]}"))
    with atomic_path(path, keep_suffix=True) as tmp:
        tmp.write_bytes(data)


def _write_onnx(model, path: Path, metadata: dict[str, Any]) -> None:
    """The ONNX file, with ``metadata`` (JSON values) in its ``metadata_props``."""
    try:
        import onnx
        import tf2onnx  # noqa: F401
    except ImportError:
        raise EmorefineError('--format onnx needs tf2onnx and onnx: pip install -e ".[export]"') from None
    if not getattr(model, "_called", False):  # Keras's ONNX export traces a model that has run once
        model({t.name: np.zeros([1 if i == 0 else (32000 if t.name == "waveform" else 50) if d is None else d
                                 for i, d in enumerate(t.shape)], t.dtype) for t in model.inputs})
    with atomic_path(path, keep_suffix=True) as tmp, _quietly():
        model.export(str(tmp), format="onnx", verbose=False)
        proto = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(proto, str(tmp))


def sidecar_of(model, notes: dict, manifest, record: dict, files: dict[str, str]) -> dict:
    """The sidecar of ``model`` (:func:`decision_model`'s, with its ``notes``): files, inputs, outputs, classes,
    decision, feature settings and the run's settings."""
    f = manifest.features
    inputs = {t.name: {"shape": list(t.shape), "dtype": str(t.dtype)} for t in model.inputs}
    if "waveform" in inputs:
        inputs["waveform"]["content"] = (f"mono float32 samples in [-1, 1] at {f.sr} Hz (resample first), one "
                                         f"utterance of at least {f.min_samples} samples")
    if "frames" in inputs:
        inputs["frames"]["content"] = notes.get("front_end", "")
    if "speaker_shift" in inputs:
        inputs["speaker_shift"]["content"] = ("a speaker's per-band mean; with speaker_scale, from the summed "
                                              "speaker_sums outputs of their files: mean = sum / count")
        inputs["speaker_scale"]["content"] = ("a speaker's sqrt(variance + 1e-3) per band (variance = sum_sq / count - "
                                              "mean²); all zeros: the model uses the utterance's own statistics "
                                              "(what `predict` does for one file of a speaker)")
    outputs = {
        "probabilities": {"shape": [1, len(manifest.classes)], "content": "the utterance's class probabilities; "
                          "the decision is the class of the largest"},
    }
    if "profile" in model.output:
        outputs["profile"] = {"shape": [None, len(manifest.classes)],
                              "content": "the emotion profile: each segment's class probabilities (fold ensemble)"}
        outputs["start_seconds"] = {"shape": [None], "content": f"segment j starts at "
                                    f"j * {f.segment_hop * f.hop_length} / {f.sr} s"}
    if "speaker_sums" in model.output:
        outputs["speaker_sums"] = {"shape": [3, None], "content": "rows: frame count, per-feature sum, sum of squares "
                                   "of the frames the speaker statistics use"}
    return {
        "kind": SIDECAR_KIND,
        "method": notes["method"],
        "round": notes["round"],
        "files": files,
        "classes": manifest.classes,
        "sample_rate": f.sr,
        "min_samples": f.min_samples,
        "inputs": inputs,
        "outputs": outputs,
        "decision": {"rule": notes["utterance_classifier"], "in_graph": notes["decision"],
                     **({"note": notes["decision_note"]} if "decision_note" in notes else {}),
                     **({"agreement": notes["agreement"]} if "agreement" in notes else {})},
        "speaker_norm": notes["speaker_norm"],
        "folds": notes["folds"],
        "front_end": notes.get("front_end", "in the model: " + (
            "log-Mel frames (a Conv1D DFT of the periodic window and the HTK Mel filterbank), rounded to "
            f"{f.dtype} as the records store them" if manifest.data["settings"].get("sequences") != "spectrogram"
            else "the log power spectrum of --sequences spectrogram")),
        "features": f.to_dict(),
        "sequences": manifest.data["settings"].get("sequences"),
        "run": {"config": record["config"], "records": record["records"]},
        "emorefine_version": __version__,
    }


def export_run(run_dir, *, t: int | None = None, formats: tuple[str, ...] = ("keras",),
               out_dir: str | os.PathLike | None = None, skip_failures: bool = False,
               log=None) -> tuple[dict[str, Path], Path]:
    """Write round ``t``'s waveform-to-decision model (:func:`decision_model`) in each of ``formats``
    (keys of :data:`EXPORT_FORMATS`) to ``out_dir`` (default: ``RUN_DIR/export``); ``run_dir``: a path, or the
    :class:`~emotion_refinery.records.run_dir.OpenRun` the command opened; return
    ``({format: path}, sidecar path)``. The folder is self-contained: ``predict`` and
    :func:`emotion_refinery.api.load` use it without the run or its records. A format that cannot hold the model
    (TFLite and the BLSTM of ``lcw`` / ``mlee``) is left out and named in the sidecar's ``not_exported``; the
    other formats and the sidecar are written, then the call raises unless ``skip_failures``."""
    from emotion_refinery.records.run_dir import load_run

    bad = [x for x in formats if x not in EXPORT_FORMATS]
    if bad or not formats:
        raise EmorefineError(f"Received: format={','.join(bad) or '(none)'}; expected one or more of "
                             f"{', '.join(EXPORT_FORMATS)}")
    opened = load_run(run_dir)
    run, record, manifest = opened
    model, notes = decision_model(opened, t=t)
    predictor = notes.pop("predictor", None)
    if predictor is not None:
        notes["agreement"] = decision_agreement(predictor)
    out = Path(out_dir) if out_dir else run.export
    out.mkdir(parents=True, exist_ok=True)
    stem = f"emorefine-round-{notes['round']:02d}"
    paths = {"keras": out / f"{stem}.keras", "savedmodel": out / stem, "tflite": out / f"{stem}.tflite",
             "onnx": out / f"{stem}.onnx"}
    written: dict[str, Path] = {}
    failed: dict[str, str] = {}
    # The keras file first: predict on an export folder reads it.
    for fmt in sorted(set(formats) | {"keras"}, key=list(EXPORT_FORMATS).index):
        if log:
            log(f"writing {paths[fmt].name}")
        try:
            if fmt == "keras":
                _write_keras(model, paths[fmt])
            elif fmt == "savedmodel":
                _write_savedmodel(model, paths[fmt])
            elif fmt == "tflite":
                _write_tflite(model, paths[fmt], written.get("savedmodel"))
            else:
                _write_onnx(model, paths[fmt], {"classes": manifest.classes, "sample_rate": manifest.features.sr,
                                                "method": notes["method"], "round": notes["round"],
                                                "decision": notes["decision"], "features": manifest.features.to_dict(),
                                                "emorefine_version": __version__})
        except EmorefineError as e:
            failed[fmt] = str(e)
            continue
        written[fmt] = paths[fmt]
    sidecar = out / f"{stem}.json"
    previous = json.loads(sidecar.read_text())["files"] if sidecar.is_file() else {}
    files = {**{k: v for k, v in previous.items() if (out / v).exists()}, **{k: p.name for k, p in written.items()}}
    meta = sidecar_of(model, notes, manifest, record, files)
    if failed:
        meta["not_exported"] = failed
    write_json(sidecar, meta)  # what was written is complete and usable, whatever failed
    if failed and not skip_failures:
        raise EmorefineError("; ".join(f"{fmt}: {why}" for fmt, why in failed.items())
                             + f" (written: {', '.join(p.name for p in written.values())} and {sidecar.name})")
    return written, sidecar


def export_round(run_dir: str | os.PathLike, *, t: int | None = None, fmt: str = "keras",
                 out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """:func:`export_run` of one format: ``(model path, sidecar path)``."""
    written, sidecar = export_run(run_dir, t=t, formats=(fmt,), out_dir=out_dir)
    return written[fmt], sidecar
