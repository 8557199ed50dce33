"""CASIA Chinese emotional speech: ``speaker/emotion/ID.wav``, e.g. ``liuchang/angry/201.wav``."""

from __future__ import annotations

from pathlib import PurePosixPath

from emotion_refinery.data.corpora.base import Corpus

__all__ = ["Casia"]


class Casia(Corpus):
    """CASIA corpus (4 speakers, 6 emotions). The last three path parts are read, so extra
    leading folders are tolerated; the emotion folder is matched case-insensitively and
    the file stem must be a number (the sentence id, which is also the text)."""

    name = "casia"
    description = "CASIA Chinese emotion corpus: speaker/emotion/ID.wav, e.g. liuchang/angry/201.wav"
    classes = ("angry", "fear", "happy", "neutral", "sad", "surprise")

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        path = PurePosixPath(relpath)
        if len(path.parts) < 3:
            return (f"path {relpath!r} does not match the casia layout speaker/emotion/ID.wav "
                    "(e.g. liuchang/angry/201.wav)")
        speaker, emotion = path.parts[-3], path.parts[-2].lower()
        if emotion not in self.classes:
            return f"unknown casia emotion folder {path.parts[-2]!r}; expected one of {', '.join(self.classes)}"
        if not path.stem.isdigit():
            return f"file name {path.name!r} is not a numeric casia sentence id (e.g. 201.wav)"
        return f"{speaker}_{emotion}_{path.stem}", emotion, speaker, path.stem
