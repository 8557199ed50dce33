"""``emorefine``: the command group."""

from __future__ import annotations

import os

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off the terminal
# TensorFlow turns its oneDNN CPU kernels on by default only on some Intel CPUs; on others (AMD EPYC
# measured) they train the small CNN about 3x faster. Set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from cli import options, predict, records, refine
from cli import report
from cli import baseline
from cli import lcw, mlee
from emotion_refinery import __version__
from emotion_refinery.errors import EmorefineError


class Group(click.Group):
    """The command group: turns an emorefine error of any command into ``Error: …`` on stderr and the
    exit status of :func:`cli.options.exit_status`."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EmorefineError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(options.exit_status(e))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="emorefine")
def main() -> None:
    """Segment-based speech emotion recognition with emotion profile refinery.

    \b
    Typical use:
      emorefine build-records CORPUS_DIR -o records/
      emorefine inspect records/
      emorefine verify records/
      emorefine refine records/ -o runs/first --rounds 5
    """


main.add_command(records.build_records)
main.add_command(records.inspect)
main.add_command(records.verify)
main.add_command(records.synth_corpus)
main.add_command(refine.refine)
main.add_command(report.report)
main.add_command(baseline.baseline)
main.add_command(lcw.lcw)
main.add_command(mlee.mlee)
main.add_command(predict.predict)
main.add_command(predict.export)
