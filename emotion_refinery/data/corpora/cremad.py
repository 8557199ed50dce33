"""CREMA-D: ``AudioWAV/1001_DFA_ANG_XX.wav`` (actor, sentence, emotion, level), with the raters' votes.

Votes come from the release's own tables when they are found in the corpus folder or the folder
above it: ``finishedResponses.csv`` (one row per rating; only the voice-only ratings, ``queryType``
1, are counted, since emorefine hears the audio alone), else ``processedResults/tabulatedVotes.csv``
(the counts ``A D F H N S`` per clip, which pool the voice-only, face-only and audio-visual ratings).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path, PurePosixPath

from emotion_refinery.data.corpora.base import Corpus, Scan, Utterance

__all__ = ["CremaD"]

# Emotion code of the file name → class name, in class index order; the raters' letters.
EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LETTERS = {"A": "anger", "D": "disgust", "F": "fear", "H": "happy", "N": "neutral", "S": "sad"}
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")

NAME = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>LO|MD|HI|XX|X)")
VOICE_ONLY = "1"


class CremaD(Corpus):
    """Crowd-sourced Emotional Multimodal Actors Dataset (91 actors, 12 sentences, 6 emotions). The
    text is the sentence code (``DFA``, ``IEO``, …); the speaker the 4-digit actor id."""

    name = "cremad"
    description = "CREMA-D: AAAA_SSS_EEE_LL.wav names, e.g. 1001_DFA_ANG_XX.wav (6 emotions; votes when found)"
    classes = tuple(EMOTIONS.values())

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        path = PurePosixPath(relpath)
        m = NAME.fullmatch(path.stem)
        if m is None:
            return f"file name {path.name!r} does not match the cremad pattern AAAA_SSS_EEE_LL (e.g. 1001_DFA_ANG_XX)"
        if m["emotion"] not in EMOTIONS:
            return (f"unknown cremad emotion code {m['emotion']!r} in {path.name!r}; "
                    f"expected one of {', '.join(EMOTIONS)}")
        if m["sentence"] not in SENTENCES:
            return (f"unknown cremad sentence code {m['sentence']!r} in {path.name!r}; "
                    f"expected one of {', '.join(SENTENCES)}")
        return path.stem, EMOTIONS[m["emotion"]], m["actor"], m["sentence"]

    def scan(self, root: str | os.PathLike, *, manifest: str | os.PathLike | None = None) -> Scan:
        scan = super().scan(root)
        votes = read_votes(Path(root).resolve())
        if votes:
            scan.utterances = [Utterance(u.id, u.path, u.label, u.speaker, votes=votes.get(u.id), text=u.text)
                               for u in scan.utterances]
        return scan


def read_votes(root: Path) -> dict[str, dict[str, float]]:
    """Votes per clip name from the first table found in ``root`` or its parent (see the module docstring)."""
    for folder in (root, root.parent):
        responses = folder / "finishedResponses.csv"
        if responses.is_file():
            votes: dict[str, dict[str, float]] = {}
            with open(responses, newline="", encoding="utf-8-sig") as f:
                for row in csv.DictReader(f):
                    label = LETTERS.get((row.get("respEmo") or "").strip())
                    if (row.get("queryType") or "").strip() == VOICE_ONLY and label:
                        clip = votes.setdefault((row.get("clipName") or "").strip(), {})
                        clip[label] = clip.get(label, 0.0) + 1.0
            return votes
        tabulated = folder / "processedResults" / "tabulatedVotes.csv"
        if tabulated.is_file():
            votes = {}
            with open(tabulated, newline="", encoding="utf-8-sig") as f:
                for row in csv.DictReader(f):
                    counts = {}
                    for letter, label in LETTERS.items():
                        try:
                            n = float(row.get(letter) or 0)
                        except ValueError:
                            continue
                        if n > 0:
                            counts[label] = n
                    if counts:
                        votes[(row.get("fileName") or "").strip()] = counts
            return votes
    return {}
