"""The settings family: what every command's settings share, written once.

A command's settings are a frozen dataclass (:class:`~emotion_refinery.refine.settings.RefineConfig`,
:class:`~emotion_refinery.methods.lcw.LCWConfig`, :class:`~emotion_refinery.methods.mlee.MLEEConfig`) with three
tables beside it, one entry per setting:

* ``HELP``: what the setting does, as ``--help`` shows it (every setting in it is a command-line option);
* ``CHOICES``: the names a setting whose value is one name of a fixed list may take;
* ``RANGES``: the :class:`~emotion_refinery.util.ranges.Range` of a numeric setting.

The dataclass checks its values with :func:`check_settings` (switches, choices, ranges; then its own checks
across settings), and the command line makes its options from the same tables
(:func:`cli.options.settings_options`), so a value the command line accepts is one the dataclass accepts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from emotion_refinery.errors import EmorefineError
from emotion_refinery.util.ranges import Range, check_ranges

__all__ = ["check_choice", "check_switch", "check_settings", "is_switch"]


def is_switch(field: dataclasses.Field) -> bool:
    """Whether a settings field is an on/off switch (annotated ``bool``; a string under postponed annotations)."""
    return field.type in ("bool", bool)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Refuse a value not in ``choices``: ``Received: name='x'; expected one of a, b``."""
    if not isinstance(value, str) or value not in choices:
        raise EmorefineError(f"Received: {name}={value!r}; expected one of {', '.join(choices)}")


def check_switch(name: str, value: Any) -> None:
    """Refuse a switch that is not ``True`` or ``False``: ``Received: name='yes'; expected true or false``."""
    if not isinstance(value, bool):
        raise EmorefineError(f"Received: {name}={value!r}; expected true or false")


def check_settings(settings: Any, *, choices: Mapping[str, Sequence[str]], ranges: Mapping[str, Range]) -> None:
    """The checks every settings dataclass shares, in field order: each switch is a bool, each setting of
    ``choices`` one of its names, each of ``ranges`` in its range (``None``: an unset optional setting)."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if is_switch(field):
            check_switch(field.name, value)
        elif field.name in choices:
            check_choice(field.name, value, choices[field.name])
    check_ranges(settings, ranges)
