"""SAVEE: ``DC_a01.wav`` (flat) or ``DC/a01.wav`` (one folder per speaker)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emotion_refinery.data.corpora.base import Corpus

__all__ = ["Savee"]

SPEAKERS = ("DC", "JE", "JK", "KL")

# Emotion prefix → class name; "sa"/"su" come before "a" in the pattern below.
PREFIXES = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness",
            "n": "neutral", "sa": "sadness", "su": "surprise"}

NAME = re.compile(
    r"""
    (?:(?P<speaker>[A-Za-z]{2})_)?   # speaker in flat layout, e.g. DC_
    (?P<prefix>sa|su|[a-z])          # emotion prefix
    (?P<number>\d{2})                # sentence number, e.g. 01
    """,
    re.VERBOSE | re.IGNORECASE,
)


class Savee(Corpus):
    """Surrey Audio-Visual Expressed Emotion (4 male speakers, 7 emotions). The speaker comes from
    the ``DC_`` name prefix, else from the parent folder. The text is the sentence code without the
    speaker (``a01``): every speaker reads the same sentences under the same codes."""

    name = "savee"
    description = "SAVEE: DC_a01.wav or DC/a01.wav (speakers DC JE JK KL, 7 emotions)"
    classes = tuple(PREFIXES.values())

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        path = PurePosixPath(relpath)
        m = NAME.fullmatch(path.stem)
        if m is None:
            return f"file name {path.name!r} does not match the savee pattern DC_a01.wav or DC/a01.wav"
        speaker = (m["speaker"] or (path.parts[-2] if len(path.parts) > 1 else "")).upper()
        if speaker not in SPEAKERS:
            return f"unknown savee speaker {speaker!r} for {relpath!r}; expected one of {', '.join(SPEAKERS)}"
        prefix = m["prefix"].lower()
        if prefix not in PREFIXES:
            return f"unknown savee emotion prefix {prefix!r} in {path.name!r}; expected one of {', '.join(PREFIXES)}"
        return f"{speaker}_{prefix}{m['number']}", PREFIXES[prefix], speaker, f"{prefix}{m['number']}"
