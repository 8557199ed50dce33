"""Berlin Emo-DB: ``SSTTTEV.wav`` (speaker, text code, emotion letter, version), e.g. ``03a01Fa.wav``."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emotion_refinery.corpora.base import Corpus

__all__ = ["EmoDB"]

# German initial of the emotion → class name, in class index order.
LETTERS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}

NAME = re.compile(
    r"""
    (?P<speaker>\d{2})      # speaker, e.g. 03
    (?P<text>[ab]\d{2})     # text code, a01 .. b10
    (?P<emotion>[A-Z])      # emotion letter (see LETTERS)
    (?P<version>[a-z])      # version, a .. z
    """,
    re.VERBOSE,
)


class EmoDB(Corpus):
    """Berlin Database of Emotional Speech (10 speakers, 7 emotions, 10 texts). Only the file name is
    read; the extension is not checked (the scan visits audio files only). The text is the text code
    (``a01`` .. ``b10``)."""

    name = "emodb"
    description = "Berlin Emo-DB: SSTTTEV.wav names, e.g. 03a01Fa.wav (7 emotions)"
    classes = tuple(LETTERS.values())

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        path = PurePosixPath(relpath)
        m = NAME.fullmatch(path.stem)
        if m is None:
            return f"file name {path.name!r} does not match the emodb pattern SSTTTEV (e.g. 03a01Fa.wav)"
        letter = m["emotion"]
        if letter not in LETTERS:
            return (f"unknown emodb emotion letter {letter!r} in {path.name!r}; "
                    f"expected one of {', '.join(LETTERS)}")
        return path.stem, LETTERS[letter], m["speaker"], m["text"]
