"""``--overwrite``: start over in an output folder, but only in one that emorefine made.

A writing command whose output folder holds other settings refuses to touch it (it cannot tell a typo from a
wish to start over). ``--overwrite`` is the documented way to start over: the folder is emptied and the command
runs as on a new folder. It deletes a folder only when the folder is emorefine's own, recognised by the files
emorefine writes there:

* a run directory (``refine``, ``lcw``, ``mlee``): ``config.json`` holding ``emorefine_version``;
* a records folder (``build-records``): ``manifest.json`` of a records schema, or the ``.partial/settings.json``
  of an interrupted build;
* a synthetic corpus (``synth-corpus``): only ``manifest.csv``, ``truth.json`` and ``wav/`` files named as
  synth-corpus names them.

A folder that is new, or empty, is its own too (there is nothing to delete). Any other folder is refused, in the
house form, and nothing in it is touched::

    Received: --overwrite with output='/x'; it is not an emorefine run directory (no config.json); expected …

A marker file that cannot be read (a truncated ``config.json``) still counts when every entry of the folder is
one that emorefine writes there, so a damaged run can be started over too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from emotion_refinery.errors import EmorefineError
from emotion_refinery.util.processes import LOCK_NAME
from tf_records.atomic import TMP_MARK

__all__ = ["KINDS", "foreign_reason", "check_overwrite", "clear_folder", "start_over_hint", "with_hint"]

#: What each kind of folder is called in messages, its marker file, and every name emorefine writes in it.
KINDS = {
    "run": ("an emorefine run directory", "config.json",
            {"config.json", "choices.json", "speaker-norm.npz", "rounds", "logs", "report.json", "report.md",
             "export", "plots", LOCK_NAME}),
    "records": ("an emorefine records folder", "manifest.json",
                {"manifest.json", "shards", ".partial", "baseline.json", "baseline-features.npz", LOCK_NAME}),
    "corpus": ("a synth-corpus folder", "truth.json", {"manifest.csv", "truth.json", "wav"}),
}

#: The wav files of a synthetic corpus (:func:`emotion_refinery.data.synthetic.make_corpus`): wav/s2_anger_07.wav.
_SYNTH_WAV = re.compile(r"s\d+_[a-z]+_\d+\.wav")
#: Files that a probe of the output folder (:func:`cli.options.check_output_folder`) may leave for an instant.
_PROBE = ".emorefine-probe-"


def _incidental(name: str) -> bool:
    """Names that say nothing about whose folder it is: the lock, temporary files, write probes."""
    return name == LOCK_NAME or TMP_MARK in name or name.startswith(_PROBE)


def _read_json(path: Path):
    """The JSON in ``path``; ``None`` when it is missing; ``ValueError`` when it cannot be read."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(str(e)) from e


def _only_own_names(root: Path, kind: str) -> list[str]:
    """The entries of ``root`` that emorefine does not write in a folder of ``kind`` (empty: all are its own)."""
    names = KINDS[kind][2]
    return sorted(p.name for p in root.iterdir() if p.name not in names and not _incidental(p.name))


def foreign_reason(path: str | os.PathLike, kind: str) -> str | None:
    """Why ``path`` is not emorefine's own folder of ``kind`` (``"run"``, ``"records"`` or ``"corpus"``), or
    ``None`` when it is (or does not exist, or is empty)."""
    root = Path(path)
    if not root.exists():
        return None
    if not root.is_dir():
        return "it is a file"
    entries = [p for p in root.iterdir() if not _incidental(p.name)]
    if not entries:
        return None
    if kind == "corpus":
        return _corpus_reason(root)
    marker = KINDS[kind][1]
    unknown = _only_own_names(root, kind)
    try:
        data = _read_json(root / marker)
        partial = _read_json(root / ".partial" / "settings.json") if kind == "records" else None
    except ValueError:  # truncated or not text: damaged, and its own if nothing in the folder is anyone else's
        if unknown:
            return f"its {marker} cannot be read and it holds files emorefine does not write there " \
                   f"({', '.join(unknown[:3])})"
        return None
    if kind == "run" and isinstance(data, dict) and "emorefine_version" in data:
        return None
    if kind == "records":
        if isinstance(data, dict) and "schema_version" in data and ("emorefine_version" in data or "settings" in data):
            return None
        if data is None and isinstance(partial, dict) and "schema_version" in partial:
            return None  # an interrupted build
    if data is None:
        return f"no {marker}"
    # A marker of other content: its own only beside what emorefine alone writes there, and nothing else.
    if not unknown and any((root / name).exists() for name in _STRONG[kind]):
        return None
    return f"its {marker} was not written by emorefine"


#: Entries that only emorefine writes in a folder of each kind (a damaged marker beside one of them still counts).
_STRONG = {"run": ("rounds", "choices.json", "report.json"), "records": ("shards", ".partial")}


def _corpus_reason(root: Path) -> str | None:
    unknown = _only_own_names(root, "corpus")
    if unknown:
        return f"it holds files synth-corpus does not write ({', '.join(unknown[:3])})"
    wav = root / "wav"
    if wav.exists():
        others = sorted(p.name for p in wav.iterdir() if not _SYNTH_WAV.fullmatch(p.name) or not p.is_file())
        if others:
            return f"its wav/ holds files synth-corpus does not write ({', '.join(others[:3])})"
    return None


def check_overwrite(path: str | os.PathLike, kind: str, name: str = "output",
                    inputs: dict[str, str | os.PathLike | None] | None = None) -> None:
    """Refuse ``--overwrite`` of ``path`` unless it is emorefine's own folder of ``kind`` (nothing is touched), or
    when it holds one of the command's ``inputs`` (``{name: path}``: the corpus, the records)."""
    out = Path(path).resolve()
    for what, given in (inputs or {}).items():
        if given is not None and (Path(given).resolve() == out or out in Path(given).resolve().parents):
            raise EmorefineError(f"Received: --overwrite with {name}={str(path)!r}, which holds the input {what}="
                                 f"{str(given)!r}; expected an output folder apart from the command's inputs")
    why = foreign_reason(path, kind)
    if why is not None:
        what, marker, _ = KINDS[kind]
        raise EmorefineError(f"Received: --overwrite with {name}={str(path)!r}; it is not {what} ({why}); expected "
                             f"{what} (with its {marker}), an empty folder or a new path: --overwrite deletes only "
                             "folders emorefine made")


def clear_folder(path: str | os.PathLike, kind: str, name: str = "output",
                 inputs: dict[str, str | os.PathLike | None] | None = None) -> bool:
    """Empty ``path`` after :func:`check_overwrite` (a folder of a running command stays locked: its ``.lock`` is
    kept, so call this while holding the lock). Return whether anything was deleted."""
    check_overwrite(path, kind, name, inputs)
    root = Path(path)
    if not root.is_dir():
        return False
    deleted = False
    for entry in root.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        deleted = True
    return deleted


def start_over_hint(path: str | os.PathLike, what: str = "run directory") -> str:
    """What to do after a command started writing ``path`` (a ``what``) and failed: continue, or start over."""
    return (f"The {what} {str(path)!r} keeps its settings and what was done: run the same command again to "
            "continue, or add --overwrite to delete it and start over with other settings (or choose another -o)")


def with_hint(error: Exception, hint: str) -> Exception:
    """``error`` with ``hint`` appended to its message (same class, same traceback), once."""
    message = str(error.args[0]) if error.args else str(error)
    if hint not in message:
        error.args = (f"{message.rstrip()}{'' if message.rstrip().endswith('.') else '.'} {hint}", *error.args[1:])
    return error
