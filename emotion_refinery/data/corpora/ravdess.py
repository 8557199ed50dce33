"""RAVDESS: ``03-01-EE-II-SS-RR-AA.wav`` (modality-channel-emotion-intensity-statement-repetition-actor)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emotion_refinery.data.corpora.base import Corpus

__all__ = ["Ravdess"]

# Emotion code → class name, in class index order.
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad",
            "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}

NAME = re.compile(
    r"""
    (?P<modality>\d{2})-     # 01 audio-video, 02 video-only, 03 audio-only
    (?P<channel>\d{2})-      # vocal channel: 01 speech, 02 song
    (?P<emotion>\d{2})-      # see EMOTIONS
    (?P<intensity>\d{2})-    # 01 normal, 02 strong
    (?P<statement>\d{2})-    # 01 or 02
    (?P<repetition>\d{2})-   # 01 or 02
    (?P<actor>\d{2})         # 01 .. 24
    """,
    re.VERBOSE,
)


class Ravdess(Corpus):
    """Ryerson Audio-Visual Database of Emotional Speech and Song; only audio-only (03) speech (01)
    files are used. Files usually live in ``Actor_01/`` .. ``Actor_24/`` folders. The text is the
    statement code (``01`` "Kids are talking by the door", ``02`` "Dogs are sitting by the door")."""

    name = "ravdess"
    description = "RAVDESS: 03-01-EE-II-SS-RR-AA.wav, audio-only speech (24 actors, 8 emotions)"
    classes = tuple(EMOTIONS.values())

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        path = PurePosixPath(relpath)
        m = NAME.fullmatch(path.stem)
        if m is None:
            return f"file name {path.name!r} does not match the ravdess pattern 03-01-EE-II-SS-RR-AA.wav"
        if (m["modality"], m["channel"]) != ("03", "01"):
            return (f"ravdess file {path.name!r} is modality {m['modality']}, vocal channel {m['channel']}; "
                    "only audio-only (03) speech (01) files are used")
        if m["emotion"] not in EMOTIONS:
            return f"unknown ravdess emotion code {m['emotion']!r} in {path.name!r}; expected 01 .. 08"
        return path.stem, EMOTIONS[m["emotion"]], f"Actor_{m['actor']}", m["statement"]
