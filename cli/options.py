"""Options defined once and shared by the commands."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence

import click

from emotion_refinery.data.corpora import CORPUS_NAMES
from emotion_refinery.data.feature_config import PRESETS
from emotion_refinery.data.folds import FOLD_METHODS
from emotion_refinery.errors import AudioError, EmorefineError, NothingUsableError, TrainingError
from emotion_refinery.util.ranges import FOLDS, SEED, SEGMENT_HOP, WORKERS, Range
from emotion_refinery.util.settings import is_switch
from tf_records.schema import DTYPES


class _Bounded:
    """A number option of a :class:`~emotion_refinery.util.ranges.Range`: click shows the range in ``--help``; a
    value outside it, or not a number (NaN, ``1e20`` for an integer), is refused before the command runs, in
    the house form ``Received: rounds=1000000000000; expected an integer in [1, 100]`` (exit status 2)."""

    range: Range

    def convert(self, value, param, ctx):
        try:
            number = self._number_class(value)
        except (TypeError, ValueError, OverflowError):
            number = None
        if number is None or number not in self.range:
            self.fail(f"Received: {_name(param)}={value}; expected {self.range}", param, ctx)
        return number


class BoundedInt(_Bounded, click.IntRange):
    def __init__(self, r: Range):
        super().__init__(min=int(r.low), max=int(r.high), min_open=r.low_open, max_open=r.high_open)
        self.range = r


class BoundedFloat(_Bounded, click.FloatRange):
    def __init__(self, r: Range):
        super().__init__(min=r.low, max=r.high, min_open=r.low_open, max_open=r.high_open)
        self.range = r


def bounded(r: Range) -> click.ParamType:
    """The click type of values in ``r``."""
    return BoundedInt(r) if r.integer else BoundedFloat(r)


def _name(param) -> str:
    """A parameter's name as the settings spell it: ``--per-class`` → ``per_class``."""
    if param is None:
        return "value"
    opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
    return max(opts, key=len)[2:].replace("-", "_") if opts else param.name


def _setting_type(name: str, annotation, choices: Mapping[str, Sequence[str]], ranges: Mapping[str, Range]
                  ) -> click.ParamType:
    if name in choices:
        return click.Choice(tuple(choices[name]))
    if name in ranges:
        return bounded(ranges[name])
    return {"int": click.INT, "float": click.FLOAT}.get(annotation, click.STRING)  # e.g. refine's alpha: 'a:b'


def settings_options(settings: type, help: Mapping[str, str], choices: Mapping[str, Sequence[str]],
                     ranges: Mapping[str, Range], *, default_text: Callable[[str], str] | None = None,
                     former_switches: Mapping[str, tuple[str, str]] | None = None):
    """A decorator that adds one option per setting of the dataclass ``settings`` named in ``help`` (the settings
    family of :mod:`emotion_refinery.util.settings`), in field order: ``--name-with-dashes`` (``--x/--no-x`` for
    switches), a choice of ``choices[name]`` or a number in ``ranges[name]``, the help ``help[name]``.

    Without ``default_text``, an option's default is the dataclass's (shown in ``--help``; a default of ``None``
    is left for the help text to say). With it, every option's default is None (an unset flag leaves a preset or
    config file in force) and ``default_text(name)`` ends its help. ``former_switches``: settings that were on/off
    switches before they had more values, ``name: (on, off)``: ``--name`` alone gives ``on``, ``--no-name`` sets
    ``no_name`` (the command folds it into ``name``)."""
    former_switches = former_switches or {}

    def decorate(command):
        for field in reversed(dataclasses.fields(settings)):
            if field.name not in help:
                continue
            flag = "--" + field.name.replace("_", "-")
            if default_text is None:
                defaults = {"default": field.default, "show_default": field.default is not None}
                text = help[field.name]
            else:
                defaults = {"default": None}
                text = f"{help[field.name]}  {default_text(field.name)}"
            if is_switch(field):
                command = click.option(f"{flag}/--no-{flag[2:]}", help=text, **defaults)(command)
                continue
            kind = _setting_type(field.name, field.type, choices, ranges)
            if field.name in former_switches:  # the flag alone still means on; --no-… means off
                on, off = former_switches[field.name]
                command = click.option(f"--no-{flag[2:]}", f"no_{field.name}", is_flag=True, default=False,
                                       help=f"Same as {flag} {off}.")(command)
                command = click.option(flag, type=kind, is_flag=False, flag_value=on, help=f"{text} {flag} alone: "
                                       f"{on}.", **defaults)(command)
            else:
                command = click.option(flag, type=kind, help=text, **defaults)(command)
        return command

    return decorate


quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bars; only the summary and errors.")
seed = click.option("--seed", type=bounded(SEED), default=0, show_default=True, help="Seed for folds (and training).")
workers = click.option("--workers", type=bounded(WORKERS), default=None,
                       help="Processes for decoding and features.  [default: all cores]")
corpus = click.option("--corpus", type=click.Choice(CORPUS_NAMES), default="auto", show_default=True,
                      help="Corpus layout; 'auto' detects it from file names.")
manifest = click.option("--manifest", type=click.Path(dir_okay=False, exists=True), default=None,
                        help="CSV with columns path,label[,speaker][,votes][,id][,text][,session] "
                             "(implies --corpus csv).")
preset = click.option("--preset", type=click.Choice(tuple(PRESETS)), default=None,
                      help="Named settings (see README).  [default: the corpus's own preset, else emodb]")
segment_hop = click.option("--segment-hop", type=bounded(SEGMENT_HOP), default=None,
                           help="Frames between segment starts (1 = 10 ms).  [default: from the preset]")
folds = click.option("--folds", type=bounded(FOLDS), default=None,
                     help="Number of cross-validation folds.  [default: from the preset]")
folds_by = click.option("--folds-by", type=click.Choice(FOLD_METHODS), default="label", show_default=True,
                        help="'label': stratified utterance folds; 'speaker': speaker-independent folds; 'session': "
                             "each recording session in one fold (IEMOCAP's leave-one-session-out with --folds 5).")
dtype = click.option("--dtype", type=click.Choice(tuple(DTYPES)), default="float16", show_default=True,
                     help="Storage type of the segments.")
strict = click.option("--strict", is_flag=True, help="Exit with status 1 if any input was skipped.")
as_json = click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")

#: What ``--overwrite`` deletes, per kind of output folder (:mod:`emotion_refinery.util.overwrite`).
_OVERWRITES = {
    "run": "the run directory -o, if emorefine made it (it holds config.json)",
    "records": "the records folder -o, if emorefine made it (it holds manifest.json, or an interrupted build)",
    "corpus": "OUT_DIR, if synth-corpus made it",
}


def overwrite(kind: str):
    """``--overwrite``: start over in an output folder of ``kind`` that emorefine made (anything else is refused)."""
    return click.option("--overwrite", is_flag=True, default=False,
                        help=f"Delete {_OVERWRITES[kind]} and start over, after every other check has passed; a "
                             "folder emorefine did not make is refused and left untouched.")


def exit_status(error: EmorefineError) -> int:
    """The exit status of a command that raised ``error``: 1 when the work failed on inputs it could read
    (nothing usable in a corpus, a fold's training, a records utterance's source audio), 2 for bad input
    or state (a corpus, records or run directory that cannot be used, a setting, a missing extra).

    The command group applies it to every command; commands do not catch emorefine's errors.
    """
    return 1 if isinstance(error, (NothingUsableError, TrainingError, AudioError)) else 2


def _write_probe(folder: str) -> str | None:
    """Why nothing can be written in ``folder`` (a temporary file is made there and removed at once), or None."""
    import os
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".emorefine-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"cannot write in {folder}: {e.strerror or e}"
    return None


def check_output_file(path: str, name: str = "output") -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, in a missing folder, or
    where this user may not write (probed with a temporary file, removed at once)."""
    import os

    from emotion_refinery.errors import EmorefineError

    folder = os.path.dirname(os.path.abspath(path))
    why = None
    if os.path.isdir(path):
        why = "a folder"
    elif not os.path.isdir(folder):
        why = f"no folder {folder}"
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        why = "not writable"
    else:
        why = _write_probe(folder)
    if why:
        raise EmorefineError(f"Received: {name}={path!r} ({why}); expected a file that can be written")


def check_output_folder(path: str, name: str = "output") -> None:
    """Refuse, before any work, an output folder that cannot be made or written into (its nearest existing
    folder is probed with a temporary file, removed at once)."""
    import os

    from emotion_refinery.errors import EmorefineError

    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    why = None
    if not os.path.isdir(existing):
        why = "a file" if existing == os.path.abspath(path) else f"{existing} is a file"
    else:
        why = _write_probe(existing)
    if why:
        raise EmorefineError(f"Received: {name}={path!r} ({why}); expected a folder that can be written")


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

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
