"""Commands that use a finished run: predict and export."""

from __future__ import annotations

import csv
import io
import json

import click

from cli import options
from emotion_refinery.outputs.export import EXPORT_FORMATS
from emotion_refinery.util.ranges import ROUND


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("audio", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the results here instead of to standard output.")
@click.option("--round", "round_", type=options.bounded(ROUND), default=None,
              help="Round whose models to use.  [default: the round with the best validation-fold UA, never "
                   "chosen on the test folds; the last round of runs without validation scores]")
@click.option("--format", "fmt", type=click.Choice(("json", "csv")), default="json", show_default=True,
              help="json: one object per file; csv: one row per segment plus one 'utterance' row per file.")
def predict(run_dir, audio, output, round_, fmt):
    """Emotion profile and utterance decision for each AUDIO file, with RUN_DIR's models.

    RUN_DIR is a run directory (refine, lcw or mlee) or a folder written by `emorefine export`,
    which needs neither the run nor its records.

    For a run whose models normalise speakers (--speaker-norm, or auto where most splits chose it) or
    whose decision rule is speaker-forest, the AUDIO files of one call are one speaker's audio: their
    log-Mel bands and their utterance statistics are normalised by those of all of them (give a
    speaker's files together; a speaker-forest run decides a single file by its mean profile).
    Files that cannot be used are reported with their reason; the others are still
    predicted. Exit status 1 only when no file could be predicted.
    """
    from emotion_refinery.api import load
    from emotion_refinery.data.audio import unreadable
    from emotion_refinery.decision.deciders import MIN_SPEAKER_FILES, normalises_per_speaker
    from emotion_refinery.errors import EmorefineError
    from emotion_refinery.outputs.inference import leaky_choice_note

    if output:
        options.check_output_file(output)
    missing = {path: why for path in audio if (why := unreadable(path))}
    if len(missing) == len(audio):  # nothing to predict: said before the run's models are loaded
        raise EmorefineError("Received: " + ", ".join(f"audio={path!r} ({why})" for path, why in missing.items())
                             + "; expected audio files to predict")
    predictor = load(run_dir, t=round_)
    opened = getattr(predictor, "opened", None)  # the run, opened once by load (None: an export folder)
    if round_ is None and opened is not None and (note := leaky_choice_note(opened, predictor.t)):
        click.echo(note, err=True)
    if predictor.speaker_norm:
        from emotion_refinery.errors import AudioError

        try:  # unreadable files are reported below, by predict
            predictor.set_speaker(audio)
        except AudioError as e:
            options.fail(f"no file could be predicted: {e}", 1)
    per_speaker_rule = normalises_per_speaker(predictor.utterance_classifier)
    if predictor.speaker_norm or per_speaker_rule:
        click.echo(f"this run normalises per speaker: the {len(audio)} file(s) given are taken as one speaker's "
                   "audio (run predict once per speaker)", err=True)
    results = predictor.predict_all(audio)
    if per_speaker_rule and any(r.decided_by != predictor.utterance_classifier for r in results if not r.error):
        click.echo(f"decided by the mean profile: this run's forest needs {MIN_SPEAKER_FILES}+ readable files of "
                   "the speaker to normalise their statistics", err=True)
    classes = predictor.classes
    if fmt == "json":
        text = json.dumps([_as_json(r, classes, predictor.t) for r in results], indent=1) + "\n"
    else:
        text = _as_csv(results, classes)
    if output:
        try:
            with open(output, "w") as f:
                f.write(text)
        except OSError as e:
            options.fail(f"cannot write {output}: {e.strerror or e}", 1)
    else:
        click.echo(text, nl=False)
    for r in results:
        if r.error:
            click.echo(f"skipped {r.path}: {r.error}", err=True)
        else:
            segments = "" if r.profile is None else f", {len(r.profile)} segments"
            click.echo(f"{r.path}: {r.label} ({100 * r.probabilities.max():.0f} %){segments}", err=True)
    if all(r.error for r in results):
        options.fail("no file could be predicted", 1)


def _as_json(r, classes, t) -> dict:
    if r.error:
        return {"path": r.path, "ok": False, "error": r.error}
    return {
        "path": r.path, "ok": True, "round": t, "label": r.label, "decided_by": r.decided_by,
        "probabilities": {c: round(float(p), 6) for c, p in zip(classes, r.probabilities)},
        "classes": classes,
        **({} if r.profile is None else {
            "segments": len(r.profile),
            "profile": {"start_seconds": [round(float(s), 4) for s in r.start_seconds],
                        "probabilities": [[round(float(p), 6) for p in row] for row in r.profile]}}),
    }


def _as_csv(results, classes) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "segment", "start_seconds", *classes, "label", "error"])
    for r in results:
        if r.error:
            w.writerow([r.path, "", "", *[""] * len(classes), "", r.error])
            continue
        for j, (start, row) in enumerate(zip(r.start_seconds, r.profile) if r.profile is not None else ()):
            w.writerow([r.path, j, f"{start:.3f}", *[f"{p:.6f}" for p in row], classes[int(row.argmax())], ""])
        w.writerow([r.path, "utterance", "", *[f"{p:.6f}" for p in r.probabilities], r.label, ""])
    return buf.getvalue()


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--round", "round_", type=options.bounded(ROUND), default=None,
              help="Round to export.  [default: the round with the best validation-fold UA, never chosen on "
                   "the test folds; the last round of runs without validation scores]")
@click.option("--format", "formats", type=click.Choice((*EXPORT_FORMATS, "all")), multiple=True,
              default=("keras",), show_default=True,
              help="keras, savedmodel, tflite or onnx; repeat the option for several, or 'all'. The .keras file "
                   "is always written (predict reads it).")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Folder to write into.  [default: RUN_DIR/export]")
def export(run_dir, round_, formats, output):
    """Export a run as one model from waveform to decision, plus a JSON sidecar.

    The model takes a mono float32 waveform at the records' sample rate and holds the log-Mel front
    end, the fold ensemble, the emotion profile and the utterance decision; it loads without
    emorefine (keras, TensorFlow, LiteRT or onnxruntime). Works for refine, lcw and mlee runs; the
    folder it writes is what `emorefine predict` and `emotion_refinery.load` need.
    """
    from emotion_refinery.outputs.export import export_run
    from emotion_refinery.outputs.inference import leaky_choice_note
    from emotion_refinery.records.run_dir import load_run

    if output:
        options.check_output_folder(output)
    chosen = tuple(EXPORT_FORMATS) if "all" in formats else tuple(dict.fromkeys(formats))
    opened = load_run(run_dir)
    written, sidecar = export_run(opened, t=round_, formats=chosen, out_dir=output, skip_failures="all" in formats,
                                  log=lambda line: click.echo(line, err=True))
    for path in written.values():
        click.echo(f"Wrote {path}")
    click.echo(f"Wrote {sidecar}")
    meta = json.loads(sidecar.read_text())
    for fmt, why in meta.get("not_exported", {}).items():
        click.echo(f"not written: {fmt}: {why}", err=True)
    t = meta["round"]
    if round_ is None and (note := leaky_choice_note(opened, t)):
        click.echo(note, err=True)
