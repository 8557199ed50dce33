"""The mlee command: multi-label emotion existence (MLEE) and the dominant-emotion classifiers on whole utterances."""

from __future__ import annotations

import click

from cli import options
from emotion_refinery.methods.mlee import RANGES, TRAIN_ON, MLEEConfig
from emotion_refinery.models.backbones import backbone_names
from emotion_refinery.models.existence import HEADS, LEARNING_RATES, VARIANTS

_DEFAULTS = MLEEConfig()


@click.command()
@click.argument("records_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or resume).")
@click.option("--variant", type=click.Choice(VARIANTS), default=_DEFAULTS.variant, show_default=True,
              help="hard / soft: the dominant-emotion classifier on one-hot labels / soft vote targets; mlee: "
                   "sigmoid existence outputs; pretrain: the MLEE model fine-tuned (its encoder frozen, its "
                   "Dense 64 and a new output layer trained); fusion: the MLEE and soft encoders side by side, "
                   "frozen but for their Dense 64, and a new output layer.")
@click.option("--backbone", type=click.Choice(tuple(backbone_names("utterances"))), default=_DEFAULTS.backbone,
              show_default=True)
@click.option("--epochs", type=options.bounded(RANGES["epochs"]), default=_DEFAULTS.epochs, show_default=True,
              help="Most epochs per model.")
@click.option("--patience", type=options.bounded(RANGES["patience"]), default=_DEFAULTS.patience, show_default=True,
              help="Epochs without a lower validation loss before a model stops.")
@click.option("--batch-size", type=options.bounded(RANGES["batch_size"]), default=_DEFAULTS.batch_size,
              show_default=True)
@click.option("--lr", type=options.bounded(RANGES["lr"]), default=None,
              help="Adam learning rate of the variant's last stage.  [default: as published: "
                   + ", ".join(f"{v} {r:g}" for v, r in LEARNING_RATES.items()) + "]")
@click.option("--head", type=click.Choice(HEADS), default=_DEFAULTS.head, show_default=True,
              help="How pretrain / fusion train their classifier part: adam, as published (--lr, --epochs; "
                   "Dense 64 and the new output layer); probe, the output layer alone fitted to convergence "
                   "(logistic regression on the frozen embeddings, its L2 strength chosen on the validation fold), "
                   "for corpora too small for the published rates.")
@click.option("--speed-perturb/--no-speed-perturb", default=_DEFAULTS.speed_perturb, show_default=True,
              help="Train on every utterance at speeds 0.9, 1.0 and 1.1 each epoch (tempo and pitch scaled in "
                   "the spectrogram; records built with --sequences spectrogram), as published.")
@click.option("--speaker-norm/--no-speaker-norm", default=_DEFAULTS.speaker_norm, show_default=True,
              help="Z-normalise each speaker's frames with that speaker's own mean and std over all their "
                   "utterances (no labels), as lcw --speaker-norm; not with --train-on all.")
@click.option("--train-on", type=click.Choice(TRAIN_ON), default=_DEFAULTS.train_on, show_default=True,
              help="dominant: every model learns from the utterances with a majority label; all: the MLEE model "
                   "(of mlee, pretrain, fusion) also from the records' utterances without one (build-records "
                   "--no-majority keep), positives of the classes any annotator chose and negatives of the "
                   "rest, as published. The test folds are scored on the labelled utterances.")
@click.option("--seed", type=options.bounded(RANGES["seed"]), default=_DEFAULTS.seed, show_default=True)
@options.overwrite("run")
@options.quiet
def mlee(records_dir, output, quiet, overwrite, **settings):
    """Train MLEE (or a dominant-emotion classifier) on RECORDS_DIR (built with --sequences) under its folds.

    Targets come from the utterances' votes (records of iemocap, cremad, emodb with its perception test, or
    a CSV votes column); report.md shows WA / UA and the per-class precision / recall / F1 of emotion
    existence. Running the same command again resumes an interrupted run; other
    settings on an existing run directory are refused (--overwrite starts it over).
    """
    from emotion_refinery.methods.mlee import run_mlee, summary

    options.check_output_folder(output)
    config = MLEEConfig(**settings)
    report = run_mlee(records_dir, output, config, log=(lambda s: None) if quiet else click.echo, overwrite=overwrite)
    if quiet:  # the summary line stays
        click.echo(summary(report, config))
    click.echo(f"Report: {output}/report.md")
