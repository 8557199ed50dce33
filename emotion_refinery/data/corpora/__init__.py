"""Corpus adapters and their registry.

Each adapter maps a corpus folder to labelled utterances (:class:`~.base.Scan`). Name-based
adapters read labels from file names; ``csv`` reads them from a manifest. Adding a corpus is
adding one module and one entry to :data:`CORPORA`.
"""

from __future__ import annotations

import os
from pathlib import Path

from emotion_refinery.data.audio import AUDIO_EXTENSIONS
from emotion_refinery.data.corpora.base import Corpus, Scan, Skipped, Utterance, audio_files
from emotion_refinery.data.corpora.casia import Casia
from emotion_refinery.data.corpora.cremad import CremaD
from emotion_refinery.data.corpora.csv_manifest import CsvManifest
from emotion_refinery.data.corpora.emodb import EmoDB
from emotion_refinery.data.corpora.iemocap import Iemocap
from emotion_refinery.data.corpora.ravdess import Ravdess
from emotion_refinery.data.corpora.savee import Savee
from emotion_refinery.data.corpora.tess import Tess
from emotion_refinery.data.corpora.urdu import Urdu
from emotion_refinery.errors import CorpusError

__all__ = [
    "CORPORA", "CORPUS_NAMES", "Corpus", "Scan", "Skipped", "Utterance",
    "get_corpus", "detect", "scan_corpus",
]

#: Adapter instances keyed by name.
CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Casia(), CremaD(), CsvManifest(), EmoDB(), Ravdess(), Savee(), Tess(), Urdu(),
    Iemocap(), Iemocap("iemocap-impro", improvised_only=True), Iemocap("iemocap-no-excited", merge_excited=False),
)}

#: Accepted ``--corpus`` values.
CORPUS_NAMES: tuple[str, ...] = ("auto", *sorted(CORPORA))

#: Least share of a folder's audio files an adapter must parse to be auto-detected.
MIN_MATCH = 0.5


def get_corpus(name: str) -> Corpus:
    """The adapter called ``name`` (``"auto"`` is resolved by :func:`detect`, not here)."""
    if name not in CORPORA:
        hint = "; auto is resolved from a folder by detect(root)" if name == "auto" else ""
        raise CorpusError(f"Received: corpus={name!r}; expected one of {', '.join(CORPUS_NAMES)}{hint}")
    return CORPORA[name]


def detect(root: str | os.PathLike, *, manifest: str | os.PathLike | None = None) -> Corpus:
    """The adapter for ``root``: ``csv`` when a manifest is given, else the name-based adapter that
    parses the largest share (at least half) of the audio files below ``root``."""
    if manifest is not None:
        return CORPORA["csv"]
    relpaths = [p.relative_to(Path(root)).as_posix() for p in _audio_files(root)]
    name_based = [c for c in CORPORA.values() if c.name_based]
    fraction, best = max(((c.match_fraction(relpaths), c) for c in name_based), key=lambda t: t[0])
    if fraction < MIN_MATCH:
        raise CorpusError(
            f"Received: root={os.fspath(root)!r} with {len(relpaths)} audio files (e.g. {relpaths[0]!r}); "
            f"expected the file layout of one of {', '.join(c.name for c in name_based)} "
            f"(best: {best.name}, {fraction:.0%} of the files); "
            "for another corpus pass --corpus csv --manifest FILE"
        )
    return best


def scan_corpus(
    root: str | os.PathLike, *, corpus: str = "auto", manifest: str | os.PathLike | None = None
) -> tuple[Corpus, Scan]:
    """Check ``root``, resolve ``corpus`` (``"auto"``: :func:`detect`) and scan it.

    Raises:
        CorpusError: ``root`` is missing, not a folder, or holds no audio files (unless csv);
            ``corpus`` is unknown; a manifest is given for a name-based corpus; the manifest
            cannot be read; or auto-detection finds no matching layout.
    """
    adapter = detect(root, manifest=manifest) if corpus == "auto" else get_corpus(corpus)
    if adapter.name == "csv":
        _check_folder(root)
    elif manifest is not None:
        raise CorpusError(f"Received: corpus={adapter.name!r}, manifest={os.fspath(manifest)!r}; "
                          "expected --manifest only with --corpus csv (or auto)")
    elif corpus != "auto":  # detect has checked root already
        _audio_files(root)
    return adapter, adapter.scan(root, manifest=manifest)


def _check_folder(root: str | os.PathLike) -> None:
    path = Path(root)
    if not path.exists():
        raise CorpusError(f"Received: root={os.fspath(root)!r}; expected an existing corpus folder (not found)")
    if not path.is_dir():
        raise CorpusError(f"Received: root={os.fspath(root)!r}; expected a corpus folder, not a file")


def _audio_files(root: str | os.PathLike) -> list[Path]:
    """The audio files below ``root``, which must be a folder holding at least one."""
    _check_folder(root)
    files = audio_files(root)
    if not files:
        raise CorpusError(f"Received: root={os.fspath(root)!r}; expected a folder holding audio files "
                          f"({', '.join(AUDIO_EXTENSIONS)}); found none")
    return files
