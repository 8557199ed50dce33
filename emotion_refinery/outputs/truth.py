"""How a run's labels and predictions agree with the synthetic corpus's segment truth
(``emorefine inspect RUN_DIR --truth truth.json``): the measure of whether refinement found the parts of an
utterance that do not carry its label."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emotion_refinery.data.synthetic import read_truth, segment_truths
from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.run_dir import load_run

__all__ = ["truth_agreement"]


def truth_agreement(run_dir: str | os.PathLike, truth_json: str | os.PathLike) -> list[dict]:
    """Agreement of a run on the synthetic corpus with the segment truth, for every finished round.

    Returns a list of ``{"round", "label_agreement", "prediction_agreement"}``: the share of segments
    whose training target's top class (round 0: the utterance label, the baseline) equals the segment
    truth, and the share whose out-of-fold prediction's top class does. A finished round is one whose
    every fold is done; the rounds are 0, 1, … up to the first unfinished one.
    """
    truth = read_truth(truth_json)
    run, _, manifest = load_run(run_dir)
    classes = np.array(manifest.classes)
    true = segment_truths(manifest.utterances, truth, manifest.features, truth_dir=Path(truth_json).parent)
    unknown = sorted(set(true.tolist()) - set(manifest.classes))
    if unknown:
        raise EmorefineError(f"Received: truth classes {unknown} that the records do not have; expected classes "
                             f"among {manifest.classes}")
    rounds = []
    t = 0
    while all(run.is_done(t, k) for k in range(manifest.n_folds)):
        labels = classes[run.load_targets(t, manifest).argmax(axis=1)]
        predicted = classes[run.load_predictions(t, manifest).argmax(axis=1)]
        rounds.append({"round": t, "label_agreement": float(np.mean(labels == true)),
                       "prediction_agreement": float(np.mean(predicted == true))})
        t += 1
    if not rounds:
        raise EmorefineError(f"Received: run={str(run_dir)!r} with no finished round; expected a run whose round 0 "
                             "has finished")
    return rounds
