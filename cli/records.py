"""Commands over corpora and records: build-records, inspect, verify, synth-corpus."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli import options
from emotion_refinery.data.feature_config import SEQUENCE_FEATURES
from emotion_refinery.data.synthetic import RANGES as SYNTH
from emotion_refinery.util.ranges import ROUND


@click.command("build-records")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="Records folder to create (or finish).")
@options.corpus
@options.manifest
@options.preset
@options.segment_hop
@options.folds
@options.folds_by
@options.dtype
@click.option("--sequences", type=click.Choice(tuple(SEQUENCE_FEATURES)), default=None,
              help="Also store every utterance's whole frame sequence (one example per utterance, for utterance-"
                   "level models such as lcw): " + "; ".join(f"{k}: {v}" for k, v in SEQUENCE_FEATURES.items())
                   + ".  [default: none]")
@click.option("--no-majority", type=click.Choice(("skip", "keep")), default="skip", show_default=True,
              help="Utterances that annotators voted on without a majority among the classes (IEMOCAP's xxx, "
                   "frustration, …; CSV rows with votes and no label): skip them, or keep them (with "
                   "--sequences) as unlabelled sequences for `mlee --train-on all`; nothing else reads them.")
@options.workers
@options.seed
@options.strict
@options.overwrite("records")
@options.quiet
def build_records(corpus_dir, output, corpus, manifest, preset, segment_hop, folds, folds_by, dtype, sequences,
                  no_majority, workers, seed, strict, overwrite, quiet):
    """Cut a corpus into log-Mel segments and store them as sharded TFRecords.

    Re-running the same command finishes an interrupted build, and does nothing on
    a finished one. Other settings on an existing records folder are refused;
    --overwrite builds it afresh.
    """
    from emotion_refinery.data.corpora import detect, get_corpus
    from emotion_refinery.data.feature_config import PRESETS, get_preset
    from emotion_refinery.records.build import build_records as build

    if manifest and corpus not in ("auto", "csv"):
        raise click.BadParameter(f"--manifest is for CSV corpora. Received: corpus={corpus!r} with a manifest",
                                 param_hint="'--corpus'")
    if corpus == "csv" and not manifest:
        raise click.BadParameter("--corpus csv needs --manifest FILE", param_hint="'--manifest'")
    options.check_output_folder(output)
    adapter = detect(corpus_dir, manifest=manifest) if corpus == "auto" else get_corpus(corpus)
    chosen = get_preset(preset or (adapter.name if adapter.name in PRESETS else "emodb"))
    features = chosen.features.replace(segment_hop=segment_hop, dtype=dtype)
    n_folds = folds or chosen.n_folds
    with options.Progress(not quiet) as progress:  # errors: exit status 1 or 2 (cli.options.exit_status)
        result = build(corpus_dir, output, corpus=adapter.name, manifest=manifest, features=features,
                       n_folds=n_folds, folds_by=folds_by, seed=seed, workers=workers, progress=progress,
                       preset=chosen.name, sequences=sequences, no_majority=no_majority, overwrite=overwrite)
    from emotion_refinery.records.manifest import RecordsManifest

    summary = RecordsManifest(output, result.manifest).summary()
    verb = {"built": "Built", "resumed": "Finished", "up-to-date": "Already complete:"}[result.status]
    click.echo(f"{verb} {output} (preset {chosen.name}) in {result.seconds:.1f} s")
    _print_summary(summary)
    if strict and result.skipped:
        options.fail(f"{len(result.skipped)} input(s) skipped and --strict is set", 1)


def _print_summary(s: dict) -> None:
    f = s["features"]
    click.echo(f"  corpus      {s['corpus']['name']}: {s['corpus']['root']}")
    click.echo(f"  utterances  {s['utterances']} ({s['hours'] * 60:.1f} min), speakers {s['speakers']}")
    click.echo(f"  segments    {s['segments']:,} of {f['segment_frames']} frames x {f['n_mels']} Mel bands, "
               f"hop {f['segment_hop']} frame(s), {f['dtype']}")
    click.echo(f"  shards      {s['shards']} ({s['bytes'] / 1e6:.1f} MB, "
               f"{s['bytes'] / max(s['segments'], 1):.0f} B/segment)")
    if s.get("sequences"):
        click.echo(f"  sequences   {s['sequences']} frames, one example per utterance "
                   f"({s['sequence_bytes'] / 1e6:.1f} MB)")
    click.echo(f"  folds       {s['protocol']['protocol']}; speakers in more than one fold: "
               f"{s['protocol']['speakers_in_several_folds']}")
    click.echo("  classes     " + ", ".join(f"{c} {s['class_counts'][c]}" for c in s["classes"]))
    if s.get("audit"):
        click.echo(f"  leakage     {s['audit']['warning']}")
    if s.get("votes"):
        v = s["votes"]
        click.echo(f"  votes       {v['utterances']} utterances, {v['votes_per_utterance']['mean']:.1f} votes each "
                   f"(min {v['votes_per_utterance']['min']:g}, max {v['votes_per_utterance']['max']:g}); clear "
                   f"majority {100 * v['clear_majority']:.0f} %; label among the most voted "
                   f"{100 * v['label_is_plurality']:.0f} %")
    if s.get("vote_only"):
        click.echo(f"  no majority {s['vote_only']} unlabelled utterances (sequences only, for mlee --train-on all)")
    for w in s["warnings"]:
        click.echo(f"  warning     {w}")
    if s["skipped"]:
        click.echo(f"  skipped     {len(s['skipped'])} input(s):")
        for item in s["skipped"]:
            click.echo(f"    {item['path']}: {item['reason']}")
    else:
        click.echo("  skipped     none")


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@options.as_json
@click.option("--utterance", "utterance_id", default=None, help="An utterance id (with --dump).")
@click.option("--round", "round_", type=options.bounded(ROUND), default=None,
              help="A round of a run directory (with --utterance and --dump).")
@click.option("--dump", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Records: the utterance's stored segments to FILE.npy (float32, n_segments x 32 x n_mels). "
                   "Run: its targets, predictions and label in round --round to FILE.npz.")
@click.option("--truth", type=click.Path(dir_okay=False), default=None,
              help="Run on a synthetic corpus: the share of segments whose training label and whose "
                   "out-of-fold prediction agree with the segment truth in FILE (synth-corpus's truth.json), "
                   "per round.")
def inspect(path, as_json, utterance_id, round_, dump, truth):
    """Summarise a records folder or a run directory, or dump one utterance."""
    import numpy as np

    from emotion_refinery.records.manifest import RecordsManifest
    from emotion_refinery.records.run_dir import RunDir

    if bool(utterance_id) != bool(dump):
        raise click.BadParameter("--utterance and --dump go together", param_hint="'--dump'")
    is_run = RunDir(path).is_run
    if round_ is not None and not is_run:
        raise click.BadParameter(f"--round is for run directories; {path!r} holds records", param_hint="'--round'")
    if round_ is not None and not dump:
        raise click.BadParameter("--round goes with --utterance and --dump", param_hint="'--round'")
    if truth and not is_run:
        raise click.BadParameter(f"Received: truth with {path!r}, a records folder; expected a run directory",
                                 param_hint="'--truth'")
    if truth and dump:
        raise click.BadParameter("Received: truth with --dump; expected one of them", param_hint="'--truth'")
    if dump:
        options.check_output_file(dump, "dump")
    if truth:
        return _inspect_truth(path, truth, as_json)
    if is_run:
        return _inspect_run(path, as_json, utterance_id, round_, dump)
    m = RecordsManifest.load(path)  # emorefine errors: the command group prints them, status 2
    if dump:
        segments = m.read_utterance(utterance_id)
        np.save(dump, segments)
        click.echo(f"Wrote {dump}: {segments.shape[0]} segments x {segments.shape[1]} x {segments.shape[2]} "
                   f"(float32) of {utterance_id}")
        return
    s = m.summary()
    if as_json:
        click.echo(json.dumps(s, indent=1))
    else:
        from emotion_refinery.records.audit import audit_text

        click.echo(f"Records {path}")
        _print_summary(s)
        click.echo("  leakage audit, per held-out fold k against its training folds (all but k and (k + 1) mod K):")
        for line in audit_text(s["audit"]):
            click.echo(f"    {line}")


def _inspect_truth(path, truth, as_json):
    from emotion_refinery.outputs.truth import truth_agreement

    rounds = truth_agreement(path, truth)
    if as_json:
        click.echo(json.dumps(rounds, indent=1))
        return
    click.echo(f"Agreement with the segment truth of {truth} (share of segments whose top class is the true one)")
    click.echo("  round  training labels  out-of-fold predictions")
    for r in rounds:
        click.echo(f"  {r['round']:>5}  {100 * r['label_agreement']:>13.2f} %  "
                   f"{100 * r['prediction_agreement']:>21.2f} %")


def _inspect_run(path, as_json, utterance_id, round_, dump):
    import numpy as np

    from emotion_refinery.records.run_dir import RunDir
    from emotion_refinery.refine.rounds import utterance_arrays

    if dump:
        if round_ is None:
            raise click.BadParameter("a run directory needs --round R with --dump", param_hint="'--round'")
        arrays = utterance_arrays(path, t=round_, uid=utterance_id)
        with open(dump, "wb") as f:
            np.savez(f, **arrays)
        click.echo(f"Wrote {dump}: targets and predictions {arrays['predictions'].shape} of {utterance_id}, "
                   f"round {round_}, label {int(arrays['label'])}")
        return
    report = RunDir(path).report()  # emorefine errors: the command group prints them, status 2
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    from emotion_refinery.outputs.report import report_markdown

    click.echo(report_markdown(report))  # lcw: scores, label changes, weights; mlee: scores and emotion existence


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@options.quiet
def verify(path, quiet):
    """Re-read every shard (record checksums, counts, sha256); exit 1 naming each bad shard."""
    from emotion_refinery.records.manifest import RecordsManifest

    m = RecordsManifest.load(path)
    with options.Progress(not quiet) as progress:
        bad = m.verify(progress=progress)
    if bad:
        for shard, problems in bad.items():
            click.echo(f"BAD {shard}: {'; '.join(problems)}")
        options.fail(f"{len(bad)} of {len(m.shards)} shards are bad", 1)
    click.echo(f"OK: {len(m.shards)} shards, {m.n_segments:,} segments")


@click.command("synth-corpus")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--per-class", type=options.bounded(SYNTH["per_class"]), default=12, show_default=True,
              help="Utterances per class.")
@click.option("--annotators", type=options.bounded(SYNTH["annotators"]), default=0, show_default=True,
              help="Simulated annotators per utterance: each votes for one of the emotions present (by the share "
                   "of the utterance it covers) into the manifest's votes column; 0: no votes.")
@click.option("--annotator-noise", type=options.bounded(SYNTH["annotator_noise"]), default=0.1, show_default=True,
              help="Share of votes given to a class drawn at random instead.")
@click.option("--pattern-level", type=options.bounded(SYNTH["pattern_level"]), default=1.0, show_default=True,
              help="Scale of every emotion pattern; below 1 the cues are fainter (harder).")
@click.option("--speaker-habit", type=options.bounded(SYNTH["speaker_habit"]), default=0.0, show_default=True,
              help="Speakers s2, s3, s4 carry anger's, happiness' and sadness' pattern through every utterance at "
                   "this share of its level (a speaker effect that mimics an emotion); 0: none.")
@click.option("--majority-labels", is_flag=True, default=False,
              help="Label each utterance as a voted corpus would: the class with more than half of the annotators' "
                   "votes, or none (empty: an unlabelled utterance); truth.json keeps the generated label.")
@options.seed
@options.overwrite("corpus")
def synth_corpus(out_dir, per_class, seed, annotators, annotator_noise, pattern_level, speaker_habit,
                 majority_labels, overwrite):
    """Write a small synthetic corpus (4 classes, 4 speakers) with manifest.csv and truth.json."""
    from emotion_refinery.data.synthetic import CLASSES, make_corpus
    from emotion_refinery.errors import EmorefineError
    from emotion_refinery.util.overwrite import check_overwrite, foreign_reason

    options.check_output_folder(out_dir, "out_dir")
    if overwrite:
        check_overwrite(out_dir, "corpus", "out_dir")
    elif Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        hint = " (it holds a synthetic corpus: add --overwrite to replace it)" if foreign_reason(out_dir, "corpus") \
            is None else ""
        raise EmorefineError(f"Received: out_dir={out_dir!r}; expected a new or empty folder{hint}")
    manifest = make_corpus(out_dir, per_class=per_class, seed=seed, annotators=annotators,
                           annotator_noise=annotator_noise, pattern_level=pattern_level, speaker_habit=speaker_habit,
                           majority_labels=majority_labels, overwrite=overwrite)
    click.echo(f"Wrote {per_class * len(CLASSES)} utterances and {manifest}")
