"""What every corpus adapter yields: utterances with a stable id, a path, a label, a speaker and a text."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

from emotion_refinery.data.audio import AUDIO_EXTENSIONS

__all__ = ["Utterance", "Skipped", "Scan", "Corpus", "audio_files"]


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One recording: labelled, or (``label`` None) with annotator votes but no majority among the classes.

    Attributes:
        id: stable, unique within the corpus (e.g. ``03a01Fa`` for Emo-DB).
        path: absolute path of the audio file.
        label: class name, one of the corpus's ``classes``; ``None`` for an utterance of
            :attr:`Scan.unlabelled` (its votes give no class a majority).
        speaker: speaker id, or ``None`` when the corpus does not say.
        votes: annotator votes per class name (CSV manifests only), or ``None``.
        text: id of the sentence (word, statement) spoken, equal for every utterance of the same
            text, or ``None`` when the corpus does not say; the leakage audit compares it across folds.
        session: recording session (e.g. IEMOCAP's ``Ses01``, two speakers in dialogue), or ``None``;
            ``--folds-by session`` keeps each session in one fold.
    """

    id: str
    path: str
    label: str | None
    speaker: str | None = None
    votes: dict[str, float] | None = None
    text: str | None = None
    session: str | None = None


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An input left out, and why (kept in the records manifest)."""

    path: str
    reason: str


@dataclasses.dataclass
class Scan:
    """Result of scanning a corpus: class names in index order, usable utterances, skipped inputs.

    ``unlabelled``: utterances without a label (``label`` None) that annotators voted on without a
    majority among the classes, each with the reason it has no label. ``build-records`` skips them with
    that reason, or with ``--no-majority keep`` stores them for ``mlee --train-on all`` (negatives of
    the classes nobody chose).
    """

    classes: list[str]
    utterances: list[Utterance]
    skipped: list[Skipped]
    unlabelled: list[tuple[Utterance, str]] = dataclasses.field(default_factory=list)


class Corpus:
    """Base class of corpus adapters. Subclasses set ``name``, ``classes`` and implement ``parse``.

    Most adapters only map a file's path (relative to the corpus root) to
    ``(id, label, speaker, text)``; CSV-driven corpora override :meth:`scan`.
    """

    name: str = ""
    description: str = ""
    classes: tuple[str, ...] = ()
    #: labels come from file names (so ``--corpus auto`` can recognise the layout)
    name_based: bool = True

    def parse(self, relpath: str) -> tuple[str, str, str | None, str | None] | str:
        """Map a POSIX relative path to ``(id, label, speaker, text)``, or return the reason it is not usable."""
        raise NotImplementedError

    def scan(self, root: str | os.PathLike, *, manifest: str | os.PathLike | None = None) -> Scan:
        """Walk ``root`` for audio files and parse each; duplicates and unknown names are skipped."""
        root = Path(root).resolve()
        utterances: list[Utterance] = []
        skipped: list[Skipped] = []
        seen: dict[str, str] = {}
        for path in audio_files(root):
            rel = path.relative_to(root).as_posix()
            parsed = self.parse(rel)
            if isinstance(parsed, str):
                skipped.append(Skipped(str(path), parsed))
                continue
            uid, label, speaker, text = parsed
            if uid in seen:
                skipped.append(Skipped(str(path), f"duplicate utterance id {uid!r} (also {seen[uid]})"))
                continue
            seen[uid] = str(path)
            utterances.append(Utterance(uid, str(path), label, speaker, text=text))
        return Scan(list(self.classes), utterances, skipped)

    def match_fraction(self, relpaths: Iterable[str]) -> float:
        """Share of ``relpaths`` whose names this adapter parses (used by ``--corpus auto``)."""
        relpaths = list(relpaths)
        if not relpaths:
            return 0.0
        return sum(not isinstance(self.parse(p), str) for p in relpaths) / len(relpaths)


def audio_files(root: str | os.PathLike) -> list[Path]:
    """Every audio file below ``root`` (by extension, case-insensitive), sorted by path."""
    return sorted(
        p for p in Path(root).rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
