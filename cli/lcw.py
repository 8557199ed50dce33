"""The lcw command: LC+W (labels and contribution weights learned during training) on whole utterances."""

from __future__ import annotations

import click

from cli import options
from emotion_refinery.methods.lcw import CHOICES, HELP, RANGES, LCWConfig


@click.command()
@click.argument("records_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or resume).")
@options.settings_options(LCWConfig, HELP, CHOICES, RANGES)
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
