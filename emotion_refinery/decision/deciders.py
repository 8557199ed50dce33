"""The utterance decision rules: how an utterance's class is decided from its segments' emotion profile.

One entry per rule (:data:`UTTERANCE_RULES`), simplest first (ties go to the earlier one): its name, the
description the report gives, and how it decides — from the profiles of a corpus's utterances (the refinery's
evaluation, the forest ``predict`` refits) and from the files of one ``predict`` call. Every user (the round
evaluation, ``predict``, ``export``, the command line) asks the entry, never the name.

- ``mean-ep``: the class of the highest mean segment probability (nothing trained).
- ``forest``: the papers' random forest on 8 EP statistics per class, trained on the other folds' utterances.
- ``speaker-forest``: the same forest on statistics z-normalised within each speaker's utterances
  (:func:`~emotion_refinery.decision.utterance.speaker_normalise`); ``predict`` takes the files of one call as one
  speaker, and decides fewer than :data:`MIN_SPEAKER_FILES` by the mean profile instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from emotion_refinery.decision.utterance import (
    ep_statistics,
    forest_probabilities,
    mean_ep_decisions,
    speaker_normalise,
    utterance_features,
)
from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.speaker_norm import ONE_SPEAKER

__all__ = ["UtteranceRule", "UTTERANCE_RULES", "AUTO_DESCRIPTION", "MIN_SPEAKER_FILES", "utterance_rule",
           "normalises_per_speaker"]

#: Readable files a ``speaker-forest`` run needs in one ``predict`` call to normalise their statistics as one
#: speaker's.
MIN_SPEAKER_FILES = 2


@dataclasses.dataclass(frozen=True)
class UtteranceRule:
    """One utterance decision rule.

    Attributes:
        name: as ``--utterance-classifier`` and ``report.json`` name it.
        description: what the report's protocol says of it.
        forest: whether it decides with a random forest on EP statistics (trained on labelled utterances).
        per_speaker: whether those statistics are z-normalised within each speaker's utterances.
        in_graph: the rule an exported model (one file, no speaker) applies in its graph.
        graph_note: why ``in_graph`` differs from the rule, else ``None``.
    """

    name: str
    description: str
    forest: bool = False
    per_speaker: bool = False
    in_graph: str = ""
    graph_note: str | None = None

    def statistics(self, profiles: np.ndarray, utterance_index: np.ndarray, n_utterances: int,
                   speakers: Sequence[str | None] | None = None) -> np.ndarray:
        """The forest's input of every utterance ``(n_utterances, 8·K)``: EP statistics, z-normalised per speaker
        (``speakers``, one per utterance) for a per-speaker rule."""
        x = utterance_features(profiles, utterance_index, n_utterances)
        return speaker_normalise(x, list(speakers)) if self.per_speaker else x

    def decide(self, profiles: np.ndarray, utterance_index: np.ndarray, n_utterances: int, *, n_classes: int,
               forest=None, statistics: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities ``(n_utterances, K)`` of utterances from their segments' ``profiles``; a forest rule
        needs the fitted ``forest`` and the utterances' :meth:`statistics`."""
        if not self.forest:
            return mean_ep_decisions(profiles, utterance_index, n_utterances)
        return forest_probabilities(forest, statistics, n_classes)

    def for_files(self, n_files: int) -> UtteranceRule:
        """The rule ``predict`` applies to ``n_files`` readable files of one call: this one, or the mean profile
        when a per-speaker rule has too few files to take a speaker's statistics from."""
        return UTTERANCE_RULES["mean-ep"] if self.per_speaker and n_files < MIN_SPEAKER_FILES else self

    def decide_files(self, profiles: Sequence[np.ndarray], *, n_classes: int, forest=None) -> np.ndarray:
        """Class probabilities ``(n_files, K)`` of the files of one ``predict`` call (``profiles``: each file's
        ``(n_segments, K)``), taken as one speaker's utterances."""
        if not profiles:
            return np.zeros((0, n_classes))
        if not self.forest:
            means = np.stack([p.mean(axis=0) for p in profiles])
            return means / means.sum(axis=1, keepdims=True)
        x = np.stack([ep_statistics(p) for p in profiles])
        if self.per_speaker:
            x = speaker_normalise(x, [ONE_SPEAKER] * len(profiles))
        return forest_probabilities(forest, x, n_classes)


_SINGLE_FILE = ("the run decides with a forest on speaker-normalised profile statistics, which one file alone "
                "cannot give; the model decides by the mean profile, as `predict` does for a single file")

#: The rules, simplest first (ties go to the earlier one).
UTTERANCE_RULES: dict[str, UtteranceRule] = {r.name: r for r in (
    UtteranceRule("mean-ep", "the class of the highest mean segment probability (mean EP)", in_graph="mean-ep"),
    UtteranceRule("forest", "random forest on 8 EP statistics per class, same folds", forest=True, in_graph="forest"),
    UtteranceRule("speaker-forest", "random forest on 8 EP statistics per class, z-normalised per speaker, same folds",
                  forest=True, per_speaker=True, in_graph="mean-ep", graph_note=_SINGLE_FILE),
)}

#: The report's description of ``--utterance-classifier auto``.
AUTO_DESCRIPTION = ("the rule each split chose on its other folds' profiles (mean EP; the forest on 8 EP statistics "
                    "per class; or that forest on statistics z-normalised per speaker)")


def utterance_rule(name: str) -> UtteranceRule:
    """The rule named ``name``; an :class:`EmorefineError` naming the rules for another name."""
    if name not in UTTERANCE_RULES:
        raise EmorefineError(f"Received: rule={name!r}; expected one of {', '.join(UTTERANCE_RULES)}")
    return UTTERANCE_RULES[name]


def normalises_per_speaker(name: str) -> bool:
    """Whether the decision named ``name`` normalises per speaker (``False`` for a name that is no rule here, such
    as the ``ensemble`` of ``lcw`` and ``mlee`` runs)."""
    return name in UTTERANCE_RULES and UTTERANCE_RULES[name].per_speaker
