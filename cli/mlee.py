"""The mlee command: multi-label emotion existence (MLEE) and the dominant-emotion classifiers on whole utterances."""

from __future__ import annotations

import click

from cli import options
from emotion_refinery.methods.mlee import CHOICES, HELP, RANGES, MLEEConfig


@click.command()
@click.argument("records_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or resume).")
@options.settings_options(MLEEConfig, HELP, CHOICES, RANGES)
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
