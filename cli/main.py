"""``emorefine``: the command group."""

from __future__ import annotations

import os

import click

# TensorFlow's C++ log lines and Python warnings stay off the terminal unless --verbose: see main() and
# emotion_refinery.util.quiet (nothing here imports TensorFlow; the commands do, after their options are checked).
# TensorFlow turns its oneDNN CPU kernels on by default only on some Intel CPUs; on others (AMD EPYC
# measured) they train the small CNN about 3x faster. Set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from cli import baseline, lcw, mlee, options, predict, records, refine, report
from emotion_refinery import __version__
from emotion_refinery.errors import EmorefineError
from emotion_refinery.util import quiet

VERBOSE_HELP = ("Let TensorFlow log as it likes (its C++ start-up lines, retracing warnings); by default they are "
                "silenced. Also: EMOREFINE_VERBOSE=1.")


class Group(click.Group):
    """The command group: turns an emorefine error of any command into ``Error: …`` on stderr and the
    exit status of :func:`cli.options.exit_status`."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Every command also takes the group's ``--verbose`` (``emorefine COMMAND … --verbose``)."""
        if not any(p.name == "verbose" for p in cmd.params):
            cmd.params.append(click.Option(["--verbose"], is_flag=True, expose_value=False, help=VERBOSE_HELP,
                                           callback=lambda ctx, param, value: value and quiet.configure(True)))
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EmorefineError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(options.exit_status(e))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="emorefine")
@click.option("--verbose", is_flag=True, envvar=quiet.VERBOSE_ENV, help=VERBOSE_HELP)
def main(verbose: bool) -> None:
    """Segment-based speech emotion recognition with emotion profile refinery.

    \b
    Typical use:
      emorefine build-records CORPUS_DIR -o records/
      emorefine inspect records/
      emorefine verify records/
      emorefine refine records/ -o runs/first --rounds 5
    """
    quiet.configure(verbose)


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
