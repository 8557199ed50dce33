"""The baseline command: eGeMAPSv02 functionals + SVM under a records folder's own folds."""

from __future__ import annotations

import json

import click

from cli import options
from emotion_refinery.records.audit import CONFOUND_WARNING, confound_text
from emotion_refinery.util.ranges import SEED, SHARE


@click.command()
@click.argument("records_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--speaker-norm/--no-speaker-norm", default=False, show_default=True,
              help="Z-normalise each speaker's features with that speaker's own mean and std (no labels).")
@click.option("--label-noise", type=options.bounded(SHARE), default=0.0, show_default=True,
              help="Fit on labels with this share flipped at random (seeded by --seed: the same flips as refine / "
                   "lcw --label-noise with that seed); the folds are scored on the true labels. 0: off.")
@click.option("--seed", type=options.bounded(SEED), default=0, show_default=True, help="Seed of --label-noise.")
@options.as_json
@options.quiet
def baseline(records_dir, speaker_norm, label_noise, seed, as_json, quiet):
    """The classical baseline of RECORDS_DIR: eGeMAPSv02 functionals + RBF SVM, the records' folds.

    \b
    Decodes each utterance's source audio at the records' sample rate, computes the 88
    eGeMAPSv02 functionals with openSMILE (cached in RECORDS_DIR/baseline-features.npz),
    classifies them with StandardScaler + SVC(rbf) fitted on the other folds and writes
    WA, UA, macro-F1, the confusion matrix and every prediction to RECORDS_DIR/baseline.json
    (one entry per variant: plain, speaker_norm, and each planted noise). Needs: pip install
    "emorefine[baseline]".
    """
    from emotion_refinery.decision.baseline import run_baseline

    with options.Progress(not quiet and not as_json) as progress:
        result = run_baseline(records_dir, speaker_norm=speaker_norm, label_noise=label_noise, seed=seed,
                              progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    norm = "speaker-normalised " if speaker_norm else ""
    noise = f", {100 * label_noise:g} % of the training labels flipped (seed {seed})" if label_noise else ""
    click.echo(f"Baseline ({norm}eGeMAPSv02 + SVM, {result['protocol']['protocol']}{noise}), "
               f"{result['n_utterances']} utterances: WA {100 * result['wa']:.2f} %, UA {100 * result['ua']:.2f} %, "
               f"macro-F1 {100 * result['macro_f1']:.2f} % ({result['seconds']:.1f} s"
               f"{', cached features' if result['cached'] else ''})")
    click.echo(f"Wrote {result['path']}")
    confound = result["confound"]
    if confound["single_class_share"] is None:
        return
    if speaker_norm and confound["single_class_share"] > CONFOUND_WARNING:
        click.echo(f"warning: {confound_text(confound)}; the speaker-normalised figure says little about emotion "
                   "here", err=True)
    else:
        click.echo(f"Speakers: {confound_text(confound)}")
