"""The lcw command: LC+W (labels and contribution weights learned during training) on whole utterances."""

from __future__ import annotations

import click

from cli import options
from emotion_refinery.data.feature_config import LCW_UPDATES
from emotion_refinery.methods.lcw import RANGES, LCWConfig
from emotion_refinery.models.backbones import backbone_names

_DEFAULTS = LCWConfig()


@click.command()
@click.argument("records_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or resume).")
@click.option("--update", type=click.Choice(LCW_UPDATES), default=_DEFAULTS.update, show_default=True,
              help="both: LC+W (learned labels and weights); labels: learned labels only; weights: learned "
                   "weights only; class-weights: fixed inverse-class-frequency weights; none: the publication's "
                   "baseline, the utterance model with class-proportion weights (each training utterance weighted "
                   "by the inverse frequency of its class in the training folds, mean 1; the same loss as "
                   "class-weights); oversample: the unweighted model, every class drawn as often as the largest.")
@click.option("--backbone", type=click.Choice(tuple(backbone_names("utterances"))), default=_DEFAULTS.backbone,
              show_default=True)
@click.option("--epochs", type=options.bounded(RANGES["epochs"]), default=_DEFAULTS.epochs, show_default=True,
              help="Most network epochs per fold; a label/weight epoch follows each from --warmup on.")
@click.option("--warmup", type=options.bounded(RANGES["warmup"]), default=_DEFAULTS.warmup, show_default=True,
              help="Network epochs before the first label/weight epoch (1: strict alternation, as published).")
@click.option("--label-confidence", type=options.bounded(RANGES["label_confidence"]),
              default=_DEFAULTS.label_confidence, show_default=True,
              help="Initial learned probability of each utterance's given class (the rest shared equally).")
@click.option("--speaker-norm/--no-speaker-norm", default=_DEFAULTS.speaker_norm, show_default=True,
              help="Z-normalise every frame feature of each speaker's utterances by that speaker's own "
                   "statistics (no labels; utterances without a speaker id by their own).")
@click.option("--label-noise", type=options.bounded(RANGES["label_noise"]), default=_DEFAULTS.label_noise,
              show_default=True,
              help="Share of utterances given another label at random (seeded by --seed) for training and early "
                   "stopping; the held-out folds are scored on their true labels. report.md then says how many "
                   "flipped labels the learned labels recovered.")
@click.option("--patience", type=options.bounded(RANGES["patience"]), default=_DEFAULTS.patience, show_default=True,
              help="Network epochs without a lower validation loss before a fold stops.")
@click.option("--batch-size", type=options.bounded(RANGES["batch_size"]), default=_DEFAULTS.batch_size,
              show_default=True)
@click.option("--lr", type=options.bounded(RANGES["lr"]), default=_DEFAULTS.lr, show_default=True,
              help="Adam learning rate of the network.")
@click.option("--label-lr", type=options.bounded(RANGES["label_lr"]), default=_DEFAULTS.label_lr,
              show_default=True, help="Adam learning rate of the learned labels and weights.")
@click.option("--seed", type=options.bounded(RANGES["seed"]), default=_DEFAULTS.seed, show_default=True)
@options.overwrite("run")
@options.quiet
def lcw(records_dir, output, quiet, overwrite, **settings):
    """Train LC+W on RECORDS_DIR (built with --sequences) under its folds; write RUN_DIR's report.

    Every fold's model learns a label and a contribution weight per training utterance; report.md shows
    the share of labels moved between classes, the mean weight per class and the utterances whose learned
    label left the given one. Running the same command again resumes an interrupted run; other
    settings on an existing run directory are refused (--overwrite starts it over).
    """
    from emotion_refinery.methods.lcw import run_lcw, summary

    options.check_output_folder(output)
    config = LCWConfig(**settings)
    report = run_lcw(records_dir, output, config, log=(lambda s: None) if quiet else click.echo, overwrite=overwrite)
    if quiet:  # the summary line stays
        click.echo(summary(report, config))
    click.echo(f"Report: {output}/report.md")
