"""Leakage audit of a fold assignment: what a held-out fold shares with the folds that train its model.

Refine holds fold ``k`` out, stops training early on fold ``(k + 1) mod K`` and trains on the
other folds (:func:`emotion_refinery.data.folds.split_folds`). Acted corpora repeat speakers and
sentences, so stratified utterance folds put the same speakers and the same texts on both sides
of a split: the figures are then speaker- and text-dependent. :func:`leakage_audit` counts, for
every held-out fold, the speakers, texts and utterance ids it shares with its training folds, and
the share of its utterances whose speaker (text) also occurs in them. It reads manifest utterance
entries only (``fold``, ``id``, and ``speaker`` / ``text`` where known).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

from emotion_refinery.data.folds import split_folds
from emotion_refinery.util.markdown import markdown_table

__all__ = ["leakage_audit", "audit_markdown", "audit_text", "confound_text", "speaker_confound", "CONFOUND_WARNING"]

#: Above this share of utterances whose speaker shows a single class, normalising by speaker erases emotion.
CONFOUND_WARNING = 0.5


def speaker_confound(labels: Sequence[Any], speakers: Sequence[str | None]) -> dict[str, Any]:
    """How far speakers and emotions are confounded.

    Returns:
        ``speakers`` (distinct known speakers), ``single_class_speakers`` (those all of whose utterances share
        one class), ``single_class_share``: the share of utterances with a known speaker whose speaker shows a
        single class (0 on Emo-DB, 0.74 on URDU); ``None`` when no labelled utterance has a speaker.
    """
    classes: dict[str, set] = collections.defaultdict(set)
    counts: collections.Counter = collections.Counter()
    for label, s in zip(labels, speakers):
        if s and label is not None:
            classes[s].add(label)
            counts[s] += 1
    single = [s for s, c in classes.items() if len(c) == 1]
    known = sum(counts.values())
    return {"speakers": len(classes), "single_class_speakers": len(single),
            "single_class_share": (sum(counts[s] for s in single) / known) if known else None}


def _share(hits: int, total: int, known: bool) -> float | None:
    return (hits / total if total else 0.0) if known else None


def _pct(share: float) -> str:
    return f"{100 * share:.3g}"


def leakage_audit(utterances: Sequence[Mapping[str, Any]], n_folds: int) -> dict[str, Any]:
    """Per held-out fold: speakers, texts and ids shared with its training folds.

    Args:
        utterances: manifest utterance entries; ``fold`` and ``id`` are read, ``speaker`` and
            ``text`` where present (missing or ``None``: unknown, never counted as shared).
        n_folds: the number of folds K (≥ 3 for refine's splits; with fewer, the training folds
            are empty and nothing is shared).

    Returns:
        ``{"folds": [row, ...], "summary": {...}, "warning": str}``. A row holds ``fold``,
        ``validation_fold``, ``training_folds``, ``utterances``, ``speakers``, ``shared_speakers``,
        ``texts``, ``shared_texts``, ``shared_ids``, and ``speaker_share`` / ``text_share``: the
        share of the fold's utterances whose speaker / text occurs in its training folds (``None``
        when no utterance of the corpus has a speaker / text). The summary pools them over every
        held-out utterance (``utterances``, ``speaker_share``, ``text_share``, ``shared_ids``,
        ``speaker_dependent``, ``text_dependent``); ``warning`` says it in one line.
    """
    by_fold: dict[int, list[Mapping[str, Any]]] = {k: [] for k in range(n_folds)}
    for u in utterances:
        by_fold.setdefault(int(u["fold"]), []).append(u)
    speakers_known = any(u.get("speaker") is not None for u in utterances)
    texts_known = any(u.get("text") is not None for u in utterances)

    def values(members, key):
        return {u.get(key) for u in members} - {None}

    rows, speaker_hits, text_hits, shared_ids = [], 0, 0, 0
    for k in range(n_folds):
        train_folds, val = split_folds(n_folds, k)
        held = by_fold[k]
        train = [u for f in train_folds for u in by_fold.get(f, [])]
        train_speakers, train_texts = values(train, "speaker"), values(train, "text")
        held_speakers, held_texts = values(held, "speaker"), values(held, "text")
        ids = {u["id"] for u in held} & {u["id"] for u in train}
        s_hits = sum(u.get("speaker") in train_speakers for u in held)
        t_hits = sum(u.get("text") in train_texts for u in held)
        rows.append({
            "fold": k, "validation_fold": val, "training_folds": train_folds, "utterances": len(held),
            "speakers": len(held_speakers), "shared_speakers": len(held_speakers & train_speakers),
            "texts": len(held_texts), "shared_texts": len(held_texts & train_texts), "shared_ids": len(ids),
            "speaker_share": _share(s_hits, len(held), speakers_known),
            "text_share": _share(t_hits, len(held), texts_known),
        })
        speaker_hits, text_hits, shared_ids = speaker_hits + s_hits, text_hits + t_hits, shared_ids + len(ids)
    total = sum(r["utterances"] for r in rows)
    summary = {
        "utterances": total,
        "speaker_share": _share(speaker_hits, total, speakers_known),
        "text_share": _share(text_hits, total, texts_known),
        "shared_ids": shared_ids,
        "speaker_dependent": bool(speaker_hits),
        "text_dependent": bool(text_hits),
        # how far speakers and emotions are confounded (labels: manifest entries carry "label")
        "confound": speaker_confound([u.get("label") for u in utterances], [u.get("speaker") for u in utterances]),
    }
    return {"folds": rows, "summary": summary, "warning": _warning(summary)}


def _warning(s: Mapping[str, Any]) -> str:
    if s["speaker_share"] is None:
        parts = ["speakers unknown (the corpus gives none)"]
    elif s["speaker_dependent"]:
        parts = [f"speaker-dependent protocol: {_pct(s['speaker_share'])} % of held-out utterances have their "
                 "speaker in the training folds"]
    else:
        parts = ["speaker-independent: no held-out utterance has its speaker in the training folds"]
    if s["text_share"] is None:
        parts.append("texts unknown (the corpus gives none)")
    elif s["text_dependent"]:
        parts.append(f"text-dependent: {_pct(s['text_share'])} % have their text in the training folds")
    else:
        parts.append("text-independent: no held-out utterance has its text in the training folds")
    if s["shared_ids"]:
        parts.append(f"{s['shared_ids']} utterance id(s) are both held out and trained on")
    if (s.get("confound") or {}).get("single_class_share") is not None:
        parts.append(confound_text(s["confound"]))
    return "; ".join(parts)


def confound_text(confound: Mapping[str, Any]) -> str:
    """One phrase on how far speakers and emotions are confounded, alarmed above :data:`CONFOUND_WARNING`."""
    share = confound["single_class_share"]
    text = (f"{_pct(share)} % of utterances come from the {confound['single_class_speakers']} of "
            f"{confound['speakers']} speakers who show a single class")
    if share > CONFOUND_WARNING:
        text += (" (speakers and emotions confounded: normalising a speaker by their own statistics would erase "
                 "the emotion)")
    return text


_COLUMNS = ("held-out fold", "utterances", "speakers", "shared speakers", "texts", "shared texts", "shared ids",
            "speaker in training (%)", "text in training (%)")


def _cells(row: Mapping[str, Any]) -> list[str]:
    def pct(v):
        return "–" if v is None else _pct(v)

    return [str(row["fold"]), str(row["utterances"]), str(row["speakers"]), str(row["shared_speakers"]),
            str(row["texts"]), str(row["shared_texts"]), str(row["shared_ids"]), pct(row["speaker_share"]),
            pct(row["text_share"])]


def audit_markdown(audit: Mapping[str, Any]) -> list[str]:
    """The audit as Markdown lines: its one-line warning, then one table row per held-out fold."""
    lines = [f"{audit['warning']}.", "",
             "Per held-out fold k, against its training folds (all but k and (k + 1) mod K); shared: also in "
             "the training folds.", "",
             *markdown_table(list(_COLUMNS), [_cells(r) for r in audit["folds"]], "r" * len(_COLUMNS))]
    return lines


def audit_text(audit: Mapping[str, Any]) -> list[str]:
    """The per-fold table as aligned plain-text lines (``emorefine inspect``)."""
    table = [list(_COLUMNS)] + [_cells(r) for r in audit["folds"]]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table]
