"""IEMOCAP: labels and per-annotator votes from ``SessionN/dialog/EmoEvaluation/<dialog>.txt``.

The release's layout (``IEMOCAP_full_release/``)::

    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav

An evaluation file holds, per turn, a summary line and one line per annotator::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]
    C-E2:	Neutral;	()
    C-E4:	Neutral;	()
    C-F1:	Neutral;	()
    A-E3:	val 3; act 2; dom  2;	()

The summary label (``neu``, ``hap``, ``exc``, ``sad``, ``ang``, ``fru``, ``fea``, ``sur``, ``dis``,
``oth``, or ``xxx`` where the annotators did not agree) is the utterance's label; the ``C-`` lines are
the categorical votes (an annotator may choose several categories; each counts one vote). Votes for
categories outside the classes are dropped. A turn whose summary label is not one of the classes
(``xxx``, ``fru``, …) has no label: it is skipped, or kept as an unlabelled utterance with its votes
over the classes (``build-records --no-majority keep``, for ``mlee --train-on all``). The speaker is
the session plus the letter of the last part of the turn name (``Ses01F_impro01_M003`` is spoken by
``Ses01M``, whoever wore the markers); the session (``Ses01``) groups the two speakers of a session for
leave-one-session-out (``--folds-by session``). The text of a scripted turn is its script
(``script01_1``), performed in every session; improvised turns have none.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emotion_refinery.data.corpora.base import Corpus, Scan, Skipped, Utterance

__all__ = ["Iemocap", "SUMMARY_CODES", "CATEGORIES"]

#: Summary codes of the evaluation files → the category names the annotators' lines use.
SUMMARY_CODES = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "sad": "Sadness", "ang": "Anger",
                 "fru": "Frustration", "fea": "Fear", "sur": "Surprise", "dis": "Disgust", "oth": "Other"}
#: The usual 4 classes, in class index order, and the categories each takes.
CATEGORIES = {"neutral": ("Neutral",), "happy": ("Happiness",), "sad": ("Sadness",), "angry": ("Anger",)}

SUMMARY = re.compile(r"^\[(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\]\s+(?P<turn>Ses\d{2}[FM]_\S+)\s+"
                     r"(?P<code>[a-z]{3})\s+\[")
VOTE = re.compile(r"^C-[A-Z]+\d*:\s*(?P<categories>[^\t(]*)")
TURN = re.compile(r"^(?P<session>Ses\d{2})[FM]_(?P<dialog>(?:impro|script)\w*?)_(?P<speaker>[FM])\d+$")


class Iemocap(Corpus):
    """The Interactive Emotional Dyadic Motion Capture database (5 sessions of two actors each).

    Args:
        name: registry name.
        merge_excited: count ``exc`` (excited) as ``happy``, as most 4-class IEMOCAP work does.
        improvised_only: keep the improvised dialogs only (the MLEE protocol), skipping scripted turns.
    """

    classes = tuple(CATEGORIES)
    name_based = False

    def __init__(self, name: str = "iemocap", *, merge_excited: bool = True, improvised_only: bool = False):
        self.name = name
        self.merge_excited = merge_excited
        self.improvised_only = improvised_only
        self.categories = {c: cats + (("Excited",) if merge_excited and c == "happy" else ()) for c, cats in
                           CATEGORIES.items()}
        self.class_of = {cat: c for c, cats in self.categories.items() for cat in cats}
        which = "improvised dialogs" if improvised_only else "improvised and scripted dialogs"
        self.description = (f"IEMOCAP ({which}; neutral, happy{' + excited' if merge_excited else ''}, sad, "
                            "angry; votes from the evaluators' categorical lines): the release folder with "
                            "Session1 … Session5")

    def scan(self, root: str | os.PathLike, *, manifest: str | os.PathLike | None = None) -> Scan:
        root = Path(root).resolve()
        evaluations = sorted(p for p in root.glob("Session*/dialog/EmoEvaluation/*.txt")
                             if not p.name.startswith("."))
        utterances: list[Utterance] = []
        skipped: list[Skipped] = []
        unlabelled: list[tuple[Utterance, str]] = []
        for path in evaluations:
            for turn, code, votes in _turns(path):
                m = TURN.match(turn)
                session_dir = path.parents[2]
                wav = session_dir / "sentences" / "wav" / turn.rsplit("_", 1)[0] / f"{turn}.wav"
                if m is None:
                    skipped.append(Skipped(str(wav), f"turn name {turn!r} in {path.name} does not match "
                                                     "SesNN[FM]_<dialog>_[FM]NNN"))
                    continue
                if self.improvised_only and m["dialog"].startswith("script"):
                    skipped.append(Skipped(str(wav), f"scripted turn; {self.name} uses the improvised dialogs only"))
                    continue
                label = self.class_of.get(SUMMARY_CODES.get(code, ""))
                if not wav.is_file():
                    skipped.append(Skipped(str(wav), f"no audio file for turn {turn!r} of {path.name}"))
                    continue
                counts: dict[str, float] = {}
                for category in votes:
                    c = self.class_of.get(category)
                    if c is not None:
                        counts[c] = counts.get(c, 0.0) + 1.0
                script = m["dialog"] if m["dialog"].startswith("script") else None
                utt = Utterance(turn, str(wav), label, f"{m['session']}{m['speaker']}", votes=counts or None,
                                text=script, session=m["session"])
                if label is None:  # xxx (no agreement), frustration, …: no label among the classes
                    unlabelled.append((utt, f"IEMOCAP label {code!r} is not one of the classes "
                                            f"({self._class_codes()})"))
                    continue
                utterances.append(utt)
        if not evaluations:
            skipped.append(Skipped(str(root), "no Session*/dialog/EmoEvaluation/*.txt below this folder; "
                                              "expected the IEMOCAP release folder (IEMOCAP_full_release)"))
        return Scan(list(self.classes), utterances, skipped, unlabelled)

    def _class_codes(self) -> str:
        codes = {v: k for k, v in SUMMARY_CODES.items()}
        return ", ".join(f"{c}: {'+'.join(codes[cat] for cat in cats)}" for c, cats in self.categories.items())


def _turns(path: Path):
    """``(turn, summary code, [category of every categorical vote])`` for every turn of one evaluation file."""
    turn = None
    for line in path.read_text(errors="replace").splitlines():
        m = SUMMARY.match(line)
        if m is not None:
            if turn is not None:
                yield turn
            turn = (m["turn"], m["code"], [])
            continue
        v = VOTE.match(line)
        if v is not None and turn is not None:
            turn[2].extend(c.strip() for c in v["categories"].split(";") if c.strip())
    if turn is not None:
        yield turn
