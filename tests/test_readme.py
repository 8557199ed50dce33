"""README.md's command synopsis (the code block under "## Command line") agrees with the click commands.

Fast: reads the click parameters from the command objects (importing ``cli.main`` imports no TensorFlow).

The synopsis is read as entries: a line starting with ``emorefine`` opens one, indented lines continue it,
``# …`` ends a line's synopsis (a comment). ``emorefine COMMAND …`` documents a command (a command may have
several lines, e.g. ``inspect`` on records and on a run: their options are pooled); ``emorefine [--option] …``
(no command name) documents the group's own options. An option is named by any of its spellings (``-o`` or
``--output``; ``--spec-augment`` or ``--no-spec-augment``); ``--help``/``-h`` is never required. The group's
``--verbose``, which every command also takes, is documented once on the group line and may, but need not, be
repeated on a command's line. Where the synopsis writes an option's values (``--targets self|cross-fit|oof``),
they must be the option's ``click.Choice`` choices, in any order.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from cli.main import main

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Command line"
OPTION = re.compile(r"^(--[A-Za-z0-9][A-Za-z0-9-]*|-[A-Za-z0-9])$")
GROUP = ""  # the key of the group's own entry


def synopsis_block(text: str) -> list[str]:
    """The lines of the first fenced code block after the "## Command line" heading (before the next heading)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == HEADING)
    except StopIteration:
        raise AssertionError(f"README.md has no {HEADING!r} heading") from None
    block: list[str] | None = None
    for line in lines[start + 1:]:
        if block is None:
            if line.startswith("## "):
                break
            if line.lstrip().startswith("```"):
                block = []
        elif line.lstrip().startswith("```"):
            return block
        else:
            block.append(line)
    raise AssertionError(f"no closed fenced code block under {HEADING!r} in README.md")


def _tokens(text: str) -> list[str]:
    """Whitespace-separated words stripped of the synopsis punctuation: brackets, braces, ``...``/``…``."""
    out = []
    for word in text.split():
        word = word.strip("[]{}(),").rstrip(".…").strip("[]{}(),")
        if word:
            out.append(word)
    return out


def parse_synopsis(lines: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    """Entry name (a command, or ``GROUP``) -> the options it names, each with the values written after it
    (``"a|b|c"``) or None."""
    entries: dict[str, list[tuple[str, str | None]]] = {}
    current: str | None = None
    for number, line in enumerate(lines, 1):
        code = re.split(r"\s#", " " + line, maxsplit=1)[0]  # "  # a comment" ends the synopsis of a line
        if not code.strip() or code.strip().startswith("#"):
            continue
        words = _tokens(code)
        if not line[:1].isspace():
            assert words[0] == "emorefine", f"synopsis line {number} starts with neither 'emorefine' nor a " \
                                            f"space: {line!r}"
            words = words[1:]
            first = line.split()[1] if len(line.split()) > 1 else ""
            current = GROUP if (not words or first.startswith(("[", "-"))) else words[0]
            if current != GROUP:
                words = words[1:]
            entries.setdefault(current, [])
        assert current is not None, f"synopsis line {number} continues no entry: {line!r}"
        for i, word in enumerate(words):
            name, _, value = word.partition("=")
            if not OPTION.match(name):
                continue
            if not value and i + 1 < len(words):
                value = words[i + 1]  # a metavar (N, FILE) or values (a|b|c); a following option or a lone "|": none
            parts = value.split("|")
            choices = len(parts) > 1 and all(part and not part.startswith("-") for part in parts)
            entries[current].append((name, value if choices else None))
    return entries


def _documented_params(cmd: click.Command, ctx: click.Context) -> list[click.Option]:
    help_names = set(ctx.help_option_names)
    return [p for p in cmd.params
            if isinstance(p, click.Option) and not p.hidden and not help_names & set(p.opts + p.secondary_opts)]


def compare(name: str, cmd: click.Command, written: list[tuple[str, str | None]], *, ctx: click.Context,
            optional: set[str] = frozenset()) -> list[str]:
    """What disagrees between one synopsis entry and its command: a list of sentences naming the options."""
    params = _documented_params(cmd, ctx)
    spelling = {opt: p for p in params for opt in p.opts + p.secondary_opts}
    help_names = set(ctx.help_option_names)
    named = {opt for opt, _ in written} - help_names
    extra = sorted(named - set(spelling))
    missing = sorted("/".join(p.opts) for p in params
                     if p.name not in optional and not named & set(p.opts + p.secondary_opts))
    problems = []
    if missing:
        problems.append(f"{name}: the synopsis lacks {', '.join(missing)}")
    if extra:
        problems.append(f"{name}: the synopsis names {', '.join(extra)}, which the command does not take")
    for opt, values in written:
        if values is None or opt not in spelling:
            continue
        p = spelling[opt]
        if not isinstance(p.type, click.Choice):
            problems.append(f"{name}: the synopsis writes values {values} for {opt}, which takes no fixed choices")
            continue
        said, choices = set(values.split("|")), set(map(str, p.type.choices))
        if said != choices:
            parts = []
            if choices - said:
                parts.append(f"lacks {'|'.join(sorted(choices - said))}")
            if said - choices:
                parts.append(f"names {'|'.join(sorted(said - choices))}, which --help does not offer")
            problems.append(f"{name}: {opt} {values} {' and '.join(parts)} (choices: {'|'.join(p.type.choices)})")
    return problems


@pytest.fixture(scope="module")
def synopsis():
    return parse_synopsis(synopsis_block(README.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def ctx():
    return click.Context(main, info_name="emorefine")


def test_parser_reads_options_values_and_continuations():
    lines = ["emorefine [--verbose] COMMAND ...",
             "emorefine refine RECORDS_DIR -o RUN_DIR [--rounds N] [--targets self|cross-fit|oof]",
             "                 [--speaker-norm [auto|on|off] | --no-speaker-norm] [--format=json|csv] [--a | --b]",
             "emorefine report RUN_DIR [--utterance ID]...   # a comment with [--not-an-option]",
             "emorefine report RUN_DIR --json"]
    assert parse_synopsis(lines) == {
        GROUP: [("--verbose", None)],
        "refine": [("-o", None), ("--rounds", None), ("--targets", "self|cross-fit|oof"),
                   ("--speaker-norm", "auto|on|off"), ("--no-speaker-norm", None), ("--format", "json|csv"),
                   ("--a", None), ("--b", None)],
        "report": [("--utterance", None), ("--json", None)]}


def test_compare_names_command_and_options(ctx):
    cmd = click.Command("demo", params=[click.Option(["-o", "--output"]), click.Option(["--rounds"]),
                                        click.Option(["--targets"], type=click.Choice(["self", "oof"])),
                                        click.Option(["--spec-augment/--no-spec-augment"])])
    assert compare("demo", cmd, [("-o", None), ("--no-spec-augment", None), ("--targets", "oof|self")],
                   ctx=ctx) == ["demo: the synopsis lacks --rounds"]
    problems = compare("demo", cmd, [("--output", None), ("--rounds", None), ("--spec-augment", None),
                                     ("--seed", None), ("--targets", "self|cross-fit")], ctx=ctx)
    assert problems == ["demo: the synopsis names --seed, which the command does not take",
                        "demo: --targets self|cross-fit lacks oof and names cross-fit, which --help does not "
                        "offer (choices: self|oof)"]


def test_every_command_has_a_synopsis(synopsis, ctx):
    listed = [name for name in main.list_commands(ctx) if not main.get_command(ctx, name).hidden]  # as --help
    missing = sorted(set(listed) - set(synopsis))
    unknown = sorted(set(synopsis) - set(main.list_commands(ctx)) - {GROUP})
    assert not missing, f"README.md's synopsis has no line for {', '.join(missing)}"
    assert not unknown, f"README.md's synopsis documents {', '.join(unknown)}, which emorefine does not have"


def test_group_options_match(synopsis, ctx):
    assert GROUP in synopsis, "README.md's synopsis lacks the group's line (emorefine [--version] [--verbose] …)"
    problems = compare("emorefine (the group)", main, synopsis[GROUP], ctx=ctx)
    assert not problems, "\n".join(problems)


def test_command_options_match(synopsis, ctx):
    group_wide = {p.name for p in main.params if p.name == "verbose"} \
        if any(opt == "--verbose" for opt, _ in synopsis.get(GROUP, [])) else set()
    problems = []
    for name in main.list_commands(ctx):
        if name in synopsis:
            problems += compare(name, main.get_command(ctx, name), synopsis[name], ctx=ctx, optional=group_wide)
    assert not problems, "README.md's synopsis disagrees with the commands:\n" + "\n".join(problems)
