"""Toronto emotional speech set: ``OAF_word_emotion.wav`` / ``YAF_word_emotion.wav``, e.g. ``OAF_back_angry.wav``."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emotion_refinery.data.corpora.base import Corpus

__all__ = ["Tess"]

# Emotion as written in file names (lower case) → class name.
EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "neutral": "neutral",
    "ps": "pleasant_surprise", "pleasant_surprise": "pleasant_surprise", "pleasant_surprised": "pleasant_surprise",
    "sad": "sad",
}

NAME = re.compile(
    r"""
    (?P<speaker>OAF|YAF)_    # older / younger adult female
    (?P<word>[^_]+)_         # the target word, e.g. back
    (?P<emotion>.+)          # see EMOTIONS
    """,
    re.VERBOSE | re.IGNORECASE,
)


class Tess(Corpus):
    """Toronto emotional speech set (2 speakers, 7 emotions); names are matched case-insensitively
    and ids normalised to ``SPEAKER_word_class``. The text is the target word (lower case)."""

    name = "tess"
    description = "TESS: OAF_word_emotion.wav / YAF_word_emotion.wav, e.g. OAF_angry/OAF_back_angry.wav"
    classes = ("angry", "disgust", "fear", "happy", "neutral", "pleasant_surprise", "sad")

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        path = PurePosixPath(relpath)
        m = NAME.fullmatch(path.stem)
        if m is None:
            return (f"file name {path.name!r} does not match the tess pattern OAF_word_emotion.wav "
                    "(e.g. OAF_back_angry.wav)")
        label = EMOTIONS.get(m["emotion"].lower())
        if label is None:
            return f"unknown tess emotion {m['emotion']!r} in {path.name!r}; expected one of {', '.join(EMOTIONS)}"
        speaker = m["speaker"].upper()
        return f"{speaker}_{m['word'].lower()}_{label}", label, speaker, m["word"].lower()
