"""The report command: plots and report.md of a run directory."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--utterance", "utterances", multiple=True, metavar="ID",
              help="Draw this utterance's emotion profile in every round (repeatable).  "
                   "[default: one per class, of median length]")
def report(run_dir, utterances):
    """Draw the plots of RUN_DIR into RUN_DIR/plots/ and rewrite RUN_DIR/report.md with them.

    \b
    Plots: WA/UA per round; confusion matrix of the last round, counts and
    row-normalised; label drift between consecutive rounds by class; mean emotion-profile
    entropy per round; the emotion profile of each chosen utterance in every round.
    """
    from emotion_refinery.outputs.report import write_full_report

    paths = write_full_report(run_dir, utterances=list(utterances) or None)
    for path in paths[:-1]:
        click.echo(f"Wrote {path}")
    click.echo(f"Report: {paths[-1]}")
