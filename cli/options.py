"""Options defined once and shared by the commands."""

from __future__ import annotations

import sys

import click

from emotion_refinery.config import PRESETS
from emotion_refinery.corpora import CORPUS_NAMES
from emotion_refinery.errors import AudioError, EmorefineError, NothingUsableError, TrainingError
from emotion_refinery.folds import FOLD_METHODS

quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bars; only the summary and errors.")
seed = click.option("--seed", type=int, default=0, show_default=True, help="Seed for folds (and training).")
workers = click.option("--workers", type=click.IntRange(min=1), default=None,
                       help="Processes for decoding and features.  [default: all cores]")
corpus = click.option("--corpus", type=click.Choice(CORPUS_NAMES), default="auto", show_default=True,
                      help="Corpus layout; 'auto' detects it from file names.")
manifest = click.option("--manifest", type=click.Path(dir_okay=False, exists=True), default=None,
                        help="CSV with columns path,label[,speaker][,votes][,id][,text][,session] (implies --corpus csv).")
preset = click.option("--preset", type=click.Choice(tuple(PRESETS)), default=None,
                      help="Named settings (see README).  [default: the corpus's own preset, else emodb]")
segment_hop = click.option("--segment-hop", type=click.IntRange(min=1), default=None,
                           help="Frames between segment starts (1 = 10 ms).  [default: from the preset]")
folds = click.option("--folds", type=click.IntRange(min=2), default=None,
                     help="Number of cross-validation folds.  [default: from the preset]")
folds_by = click.option("--folds-by", type=click.Choice(FOLD_METHODS), default="label", show_default=True,
                        help="'label': stratified utterance folds; 'speaker': speaker-independent folds; 'session': "
                             "each recording session in one fold (IEMOCAP's leave-one-session-out with --folds 5).")
dtype = click.option("--dtype", type=click.Choice(("float16", "float32")), default="float16", show_default=True,
                     help="Storage type of the segments.")
strict = click.option("--strict", is_flag=True, help="Exit with status 1 if any input was skipped.")
as_json = click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")


def exit_status(error: EmorefineError) -> int:
    """The exit status of a command that raised ``error``: 1 when the work failed on inputs it could read
    (nothing usable in a corpus, a fold's training, a records utterance's source audio), 2 for bad input
    or state (a corpus, records or run directory that cannot be used, a setting, a missing extra).

    The command group applies it to every command; commands do not catch emorefine's errors.
    """
    return 1 if isinstance(error, (NothingUsableError, TrainingError, AudioError)) else 2


def fail(message: str, code: int = 1) -> None:
    """Print ``Error: message`` on stderr and exit with ``code`` (1: the work failed; 2: bad input)."""
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(code)


class Progress:
    """Renders ``progress(stage, done, total)`` callbacks as one click progress bar per stage, on stderr."""

    LABELS = {"extract": "decode + log-Mel", "descriptors": "low-level descriptors", "write": "write shards",
              "verify": "verify shards"}

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr is not None
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = click.progressbar(length=total, label=self.LABELS.get(stage, stage), file=sys.stderr,
                                         show_pos=True)
            self.bar.__enter__()
            self.done = 0
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
