"""Berlin Emo-DB: ``SSTTTEV.wav`` (speaker, text code, emotion letter, version), e.g. ``03a01Fa.wav``.

When the release's perception test ``erkennung.txt`` lies in the corpus folder or the one above it,
each utterance also gets votes derived from it: the test's 20 listeners, of whom the recognition
rate ``r`` chose the intended emotion (``20 r`` votes for the label). Which other emotions the rest
chose is not published, so their ``20 (1 − r)`` votes are spread evenly over the other classes: the
derived votes carry the agreement with the label, not the confusions (their co-occurrence figures say
nothing).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from emotion_refinery.data.corpora.base import Corpus, Scan, Utterance

__all__ = ["EmoDB", "read_recognition_rates"]

#: Listeners of the perception test (Burkhardt et al., 2005).
LISTENERS = 20

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

    def scan(self, root: str | os.PathLike, *, manifest: str | os.PathLike | None = None) -> Scan:
        scan = super().scan(root)
        rates = next((read_recognition_rates(f / "erkennung.txt") for f in (Path(root), Path(root).parent)
                      if (f / "erkennung.txt").is_file()), {})
        if rates:
            scan.utterances = [Utterance(u.id, u.path, u.label, u.speaker, text=u.text,
                                         votes=_votes(u.label, rates[u.id]) if u.id in rates else None)
                               for u in scan.utterances]
        return scan


def _votes(label: str, rate: float) -> dict[str, float]:
    others = [c for c in EmoDB.classes if c != label]
    rest = LISTENERS * (1.0 - rate) / len(others)
    return {label: LISTENERS * rate, **({c: rest for c in others} if rest > 0 else {})}


def read_recognition_rates(path: str | os.PathLike) -> dict[str, float]:
    """``{utterance id: recognition rate in [0, 1]}`` from ``erkennung.txt`` (latin-1, tab-separated
    ``Nr. Satz erkannt natuerlich``, decimal commas); rows that do not parse are left out."""
    rates = {}
    for line in Path(path).read_bytes().decode("latin-1").splitlines()[1:]:
        cells = [c.strip("\xa0 ") for c in line.split("\t")]
        if len(cells) < 3:
            continue
        try:
            rate = float(cells[2].replace(",", ".")) / 100
        except ValueError:
            continue
        if 0 <= rate <= 1:
            rates[PurePosixPath(cells[1]).stem] = rate
    return rates
