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

The other tests read README.md and docs/*.md whole: every ``emorefine COMMAND`` written in code names a command
that exists, and the options of every example command line are the command's own (with a choice it offers,
``--preset cpu``); every link to a file of the repository resolves, down to its #anchor (GitHub's heading
anchors); each "## Contents" list names the page's sections in order; README starts with install, the two main
commands and the walk-through; and nothing says ``pip install emorefine`` (there is no release on PyPI).
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


# --- The rest of the README and docs/: commands named, example command lines, links, tables of contents ---

REPO = README.parent
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]  # the Markdown pages these checks read
FENCE = re.compile(r"^\s*```")
COMMAND_USE = re.compile(r"\bemorefine((?:\s+--?[a-z][a-z-]*)*)\s+([a-z][a-z0-9-]*)\b")


def _split_code(text: str) -> tuple[list[str], str]:
    """(the lines of every fenced code block, the text outside them)."""
    code, prose, inside = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        (code if inside else prose).append(line)
    return code, "\n".join(prose)


def _code_commands(text: str) -> list[str]:
    """Every shell-like piece of code in a page: fenced lines (``\\`` continuations joined) and inline spans."""
    code, prose = _split_code(text)
    joined, pending = [], ""
    for line in code:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return joined + [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def command_uses(text: str) -> list[tuple[str, list[str]]]:
    """Each ``emorefine COMMAND …`` written in code: the command and the words after it, up to the next
    ``&&``, ``;``, ``|`` between commands, ``# comment`` or ``emorefine``."""
    uses = []
    for piece in _code_commands(text):
        piece = re.split(r"\s#\s", " " + piece + " ", maxsplit=1)[0]
        for match in COMMAND_USE.finditer(piece):
            rest = piece[match.end():]
            rest = re.split(r"\s(?:&&|;|\|\|)\s|\bemorefine\b", rest, maxsplit=1)[0]
            uses.append((match.group(2), _tokens(rest)))
    return uses


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before de-duplication)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every Markdown heading outside fenced code."""
    out, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        match = None if inside else re.match(r"^(#{1,6}) (.+?)\s*$", line)
        if match:
            out.append((len(match.group(1)), match.group(2)))
    return out


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, title in headings(text):
        base = slug(title)
        out.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return out


def test_docs_exist():
    assert {"METHOD.md", "USAGE.md", "LAYOUT.md", "DEVELOPMENT.md"} <= {p.name for p in DOCS}


def test_command_uses_parse():
    text = "\n".join(["Run `emorefine refine REC -o RUN --rounds 3` and `emorefine's own` words.", "```bash",
                      "docker run --gpus all -v x:/data emorefine build-records /data/c -o /data/r \\",
                      "    --preset emodb   # a comment --not-this",
                      "emorefine baseline REC && emorefine --verbose baseline REC --speaker-norm", "```"])
    assert command_uses(text) == [
        ("build-records", ["/data/c", "-o", "/data/r", "--preset", "emodb"]),
        ("baseline", ["REC"]), ("baseline", ["REC", "--speaker-norm"]),
        ("refine", ["REC", "-o", "RUN", "--rounds", "3"])]
    assert slug("Use a trained model elsewhere (export, Python API)") == \
        "use-a-trained-model-elsewhere-export-python-api"
    assert slug("The papers' protocol is optimistic (`--targets oof`)") == \
        "the-papers-protocol-is-optimistic---targets-oof"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_named_exists(page, ctx):
    commands = set(main.list_commands(ctx))
    unknown = sorted({name for name, _ in command_uses(page.read_text(encoding="utf-8"))} - commands)
    assert not unknown, f"{page.name} names emorefine {', '.join(unknown)}, which emorefine does not have"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_example_command_lines_take_their_options(page, ctx):
    """Every option an example ``emorefine COMMAND …`` line uses is one of the command's (or the group's), and a
    choice written after it (``--preset cpu``) is one the option offers."""
    problems = []
    group = {opt for p in main.params for opt in p.opts + p.secondary_opts}
    for name, words in command_uses(page.read_text(encoding="utf-8")):
        cmd = main.get_command(ctx, name)
        if cmd is None:
            continue  # test_every_command_named_exists names it
        spelling = {opt: p for p in _documented_params(cmd, ctx) for opt in p.opts + p.secondary_opts}
        for i, word in enumerate(words):
            option, _, value = word.partition("=")
            if not OPTION.match(option) or option in ctx.help_option_names:
                continue
            if option not in spelling:
                if option not in group:
                    problems.append(f"emorefine {name} … {option}: {name} has no such option")
                continue
            p = spelling[option]
            if not value and i + 1 < len(words):
                value = words[i + 1]
            if (isinstance(p.type, click.Choice) and value and not value.startswith("-") and "|" not in value
                    and not value.isupper() and value not in map(str, p.type.choices)
                    and not getattr(p, "_flag_needs_value", False)):
                problems.append(f"emorefine {name} … {option} {value}: not one of {'|'.join(p.type.choices)}")
    assert not problems, f"{page.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_local_links_resolve(page):
    """Every link to a file of the repository points at a file that exists, and its #anchor at a heading."""
    _, prose = _split_code(page.read_text(encoding="utf-8"))
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no file {path}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            problems.append(f"{target}: {file.name} has no heading with the anchor #{anchor}")
    assert not problems, f"{page.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", [p for p in PAGES if "\n## Contents\n" in p.read_text(encoding="utf-8")],
                         ids=lambda p: p.name)
def test_contents_list_every_section(page):
    """The list under "## Contents" names every ## and ### heading after it, in order, with its anchor."""
    text = page.read_text(encoding="utf-8")
    after = text.split("\n## Contents\n", 1)[1]
    listed = re.findall(r"^\s*[-*] \[(.+?)\]\(#([^)]+)\)", after.split("\n## ", 1)[0], flags=re.M)
    expected = [(title, slug(title)) for level, title in headings(after) if level in (2, 3)]
    assert listed == expected, f"{page.name}: the contents list differs from the headings"


def test_readme_first_screen():
    """What a newcomer needs comes first: install, the two main commands, the walk-through."""
    titles = [title for level, title in headings(README.read_text(encoding="utf-8")) if level == 2]
    assert titles[:4] == ["Contents", "Install", "The two main commands",
                          "Walk-through: Emo-DB, from the folder to a prediction"], titles[:4]
    for needed in ("Corpora", "GPU", "Command line", "Use a trained model elsewhere (export, Python API)"):
        assert titles.count(needed) == 1, needed


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_install_from_a_registry(page):
    """emorefine is installed from the clone (no release on PyPI): never ``pip install emorefine…``."""
    found = re.findall(r"pip install\s+(?:-U\s+)?['\"]?emorefine\b[^\s`]*", page.read_text(encoding="utf-8"))
    assert not found, f"{page.name} says {found}; install from the clone: pip install -e \".[baseline]\""
