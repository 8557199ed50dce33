"""Any corpus described by a CSV manifest (``--corpus csv --manifest FILE``).

Columns: ``path`` and ``label`` (required), ``speaker``, ``votes``, ``id``, ``text`` and ``session``
(optional)::

    path,label,speaker,votes
    s01/happy_001.wav,happiness,s01,happiness:3;neutral:1

``path`` is relative to the corpus root, or absolute. Without an ``id`` column the id is the
path relative to the root, without extension (POSIX). ``votes`` holds annotator votes:
``class:count`` pairs separated by ``;``, or one label per annotator separated by ``;``. ``text`` names
the sentence spoken (any string; equal for utterances of the same text); ``session`` the recording
session (for ``--folds-by session``). The classes are the sorted labels of the usable rows.
A row with votes and an empty label (the annotators gave no class a majority) is an unlabelled
utterance (:attr:`~emotion_refinery.data.corpora.base.Scan.unlabelled`).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from emotion_refinery.data.corpora.base import Corpus, Scan, Skipped, Utterance
from emotion_refinery.errors import CorpusError

__all__ = ["CsvManifest", "parse_votes"]

EXPECTED = "a CSV file with columns path,label[,speaker][,votes][,id][,text][,session]"
REQUIRED = ("path", "label")


def parse_votes(cell: str) -> dict[str, float]:
    """Annotator votes of one utterance, as counts per class name.

    Two forms: counts per class, ``"anger:3;neutral:1"`` → ``{"anger": 3.0, "neutral": 1.0}``; or one
    label per annotator, ``"anger;anger;neutral"`` → ``{"anger": 2.0, "neutral": 1.0}``.

    Raises:
        ValueError: the forms are mixed, a pair is not ``class:count``, a count is negative or not
            finite, a class repeats in the counts form, or the counts sum to zero.
    """
    parts = [p.strip() for p in cell.split(";") if p.strip()]
    votes: dict[str, float] = {}
    if parts and not any(":" in p for p in parts):  # one label per annotator
        for name in parts:
            votes[name] = votes.get(name, 0.0) + 1.0
        return votes
    for pair in parts:
        name, sep, count = (s.strip() for s in pair.partition(":"))
        value = float(count) if sep and name else math.nan  # float() raises on a non-number
        if not math.isfinite(value) or value < 0 or name in votes:
            raise ValueError(pair)
        votes[name] = value
    if not votes or sum(votes.values()) <= 0:
        raise ValueError(cell)
    return votes


class CsvManifest(Corpus):
    """Utterances listed in a CSV manifest; file names carry no meaning."""

    name = "csv"
    name_based = False
    description = ("any corpus listed in a CSV manifest (--manifest FILE) with columns "
                   "path,label[,speaker][,votes][,id][,text][,session]")

    def parse(self, relpath: str) -> str:
        return "the csv corpus reads labels from --manifest, not from file names"

    def scan(self, root: str | os.PathLike, *, manifest: str | os.PathLike | None = None) -> Scan:
        if manifest is None:
            raise CorpusError(f"Received: manifest=None; expected --manifest FILE: the csv corpus needs {EXPECTED}")
        root = Path(root).resolve()
        rows = _read(Path(manifest))
        utterances: list[Utterance] = []
        skipped: list[Skipped] = []
        unlabelled: list[tuple[Utterance, str]] = []
        seen: dict[str, str] = {}
        for line, row in rows:
            cell = {k: (row.get(k) or "").strip() for k in ("path", "label", "speaker", "votes", "id", "text",
                                                                "session")}
            if not cell["path"]:
                skipped.append(Skipped(f"{manifest}:{line}", "empty path"))
                continue
            path = Path(os.path.abspath(root / cell["path"]))  # an absolute cell replaces root
            if not path.is_file():
                skipped.append(Skipped(str(path), "file not found"))
                continue
            if not cell["label"] and not cell["votes"]:
                skipped.append(Skipped(str(path), "empty label"))
                continue
            votes = None
            if cell["votes"]:
                try:
                    votes = parse_votes(cell["votes"])
                except ValueError:
                    skipped.append(Skipped(str(path), f"malformed votes {cell['votes']!r}; expected class:count "
                                                      "pairs separated by ';' (e.g. anger:3;neutral:1) or one "
                                                      "label per annotator (e.g. anger;anger;neutral)"))
                    continue
            uid = cell["id"] or _default_id(path, root)
            if uid in seen:
                skipped.append(Skipped(str(path), f"duplicate utterance id {uid!r} (also {seen[uid]})"))
                continue
            seen[uid] = str(path)
            utt = Utterance(uid, str(path), cell["label"] or None, cell["speaker"] or None, votes,
                            text=cell["text"] or None, session=cell["session"] or None)
            if utt.label is None:  # votes without a label: no majority
                unlabelled.append((utt, "empty label (votes without a majority)"))
            else:
                utterances.append(utt)
        utterances = _drop_unknown_votes(utterances, skipped)
        classes = {u.label for u in utterances}
        for utt, reason in list(unlabelled):
            if not set(utt.votes) <= classes:
                unlabelled.remove((utt, reason))
                skipped.append(Skipped(utt.path, f"votes name {', '.join(sorted(set(utt.votes) - classes))}, which "
                                                 f"no usable row has as label; expected votes over "
                                                 f"{', '.join(sorted(classes))}"))
        return Scan(sorted(classes), utterances, skipped, unlabelled)


def _read(manifest: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of ``manifest`` with their line numbers; header names are stripped and lower-cased."""
    if not manifest.is_file():
        raise CorpusError(f"Received: manifest={str(manifest)!r}; expected {EXPECTED} (file not found)")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [(reader.line_num, dict(zip(header, values))) for values in reader if any(v.strip() for v in values)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise CorpusError(f"Received: manifest={str(manifest)!r}; expected {EXPECTED} in UTF-8 ({e})") from e
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CorpusError(f"Received: manifest={str(manifest)!r} with columns {','.join(header) or '(none)'}; "
                          f"expected {EXPECTED} (missing: {','.join(missing)})")
    return rows


def _default_id(path: Path, root: Path) -> str:
    """The path relative to ``root`` (absolute when outside it), without extension, POSIX."""
    try:
        path = path.relative_to(root)
    except ValueError:
        pass
    return path.with_suffix("").as_posix()


def _drop_unknown_votes(utterances: list[Utterance], skipped: list[Skipped]) -> list[Utterance]:
    """Move to ``skipped`` the rows whose votes name a class that no usable row has as label
    (repeated, since dropping a row can drop a label)."""
    while True:
        classes = {u.label for u in utterances}
        bad = [u for u in utterances if u.votes and not set(u.votes) <= classes]
        if not bad:
            return utterances
        for u in bad:
            unknown = ", ".join(sorted(set(u.votes) - classes))
            skipped.append(Skipped(u.path, f"votes name {unknown}, which no usable row has as label; "
                                           f"expected votes over {', '.join(sorted(classes))}"))
        bad_ids = {u.id for u in bad}
        utterances = [u for u in utterances if u.id not in bad_ids]
