"""URDU (Latif et al., 2018): ``Angry/SM1_F10_A010.wav`` — speaker, the speaker's file number, emotion letter and
the file's number within that emotion; one folder per emotion (optional: the letter decides)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emotion_refinery.data.corpora.base import Corpus

__all__ = ["Urdu"]

# Emotion letter of the name → class name, in class index order; the release's folders are these, capitalised.
LETTERS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}

NAME = re.compile(
    r"""
    (?P<speaker>S[MF]\d+)   # speaker: S, sex (M / F), number, e.g. SM1
    _F(?P<file>\d+)         # the speaker's file number, e.g. F10
    _(?P<emotion>[A-Z])     # emotion letter (see LETTERS)
    (?P<number>\d+)         # the file's number within its emotion, e.g. 010
    """,
    re.VERBOSE,
)


class Urdu(Corpus):
    """URDU natural emotional speech from Urdu talk shows (4 emotions). The label comes from the name's emotion
    letter; a file inside a folder named after another emotion is skipped (the two disagree). No text ids."""

    name = "urdu"
    description = "URDU: Angry/SM1_F10_A010.wav names (speaker, file, emotion letter A H N S; 4 emotions)"
    classes = tuple(LETTERS.values())

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        path = PurePosixPath(relpath)
        m = NAME.fullmatch(path.stem)
        if m is None:
            return f"file name {path.name!r} does not match the urdu pattern SGX_FYY_EZZ (e.g. SM1_F10_A010.wav)"
        letter = m["emotion"]
        if letter not in LETTERS:
            return f"unknown urdu emotion letter {letter!r} in {path.name!r}; expected one of {', '.join(LETTERS)}"
        label = LETTERS[letter]
        folder = path.parts[-2].lower() if len(path.parts) > 1 else None
        if folder in LETTERS.values() and folder != label:
            return f"urdu file {path.name!r} names emotion {label!r} but lies in folder {path.parts[-2]!r}"
        return path.stem, label, m["speaker"], None
