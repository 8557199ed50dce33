"""Label update rules ``g(q)`` of the emotion profile refinery.

Round 0 trains on the utterance's one-hot label ``y``; round ``t`` trains a fresh network on
``g(q)``, where ``q`` are the out-of-fold segment predictions of round ``t - 1``. With ``K`` classes
and ``n_segments`` segments:

=========  ==========================================================================
``hard``   ``y``: one-hot utterance label (round 0; also the no-refinery control)
``bdsl``   ``q``: the predictions themselves (standard EPR, sEPR)
``wdsl``   ``(1 - α)·q + α·y`` (weighted dynamic soft label; α = 0.2 in the literature)
``pepr``   ``wdsl`` with α = 0.5 fixed (pEPR: add ``q`` and ``y``, normalise)
``gsl``    mean of ``q`` over all segments of the utterance (soft static label)
``dhl``    one-hot ``argmax q`` (hard dynamic label; ties go to the lowest class index)
``lcw``    learned during training, not from ``q``: each split's model learns a label and a weight
           per training segment in alternate epochs (LC+W); the next round of that split trains on
           its own learned labels (:mod:`emotion_refinery.models.label_correction`)
=========  ==========================================================================

Adding a rule is adding one :class:`Rule` entry to :data:`RULES`.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
from collections.abc import Callable, Mapping

import numpy as np

from emotion_refinery.errors import EmorefineError

__all__ = ["Rule", "RULES", "refine_labels", "alpha_schedule", "PEPR_ALPHA"]

#: α of ``pepr``.
PEPR_ALPHA = 0.5
#: Largest allowed ``|sum(q_i) - 1|`` for a row of predictions (float16 storage, float32 softmax).
SUM_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class Rule:
    """One registry entry.

    Attributes:
        name: registry key.
        description: one line.
        apply: ``apply(q, y, utterance_index, alpha) -> targets``; ``q`` float64
            ``(n_segments, K)``, ``y`` one-hot float64 ``(n_segments, K)``, ``utterance_index``
            int ``(n_segments,)``; returns float64 ``(n_segments, K)`` (normalised afterwards).
    """

    name: str
    description: str
    apply: Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray] | None
    #: the targets are learned while the model trains (``apply`` is None), per split
    learned: bool = False


def _hard(q, y, utt, alpha):
    return y


def _bdsl(q, y, utt, alpha):
    return q


def _wdsl(q, y, utt, alpha):
    return (1.0 - alpha) * q + alpha * y


def _pepr(q, y, utt, alpha):
    return _wdsl(q, y, utt, PEPR_ALPHA)


def _gsl(q, y, utt, alpha):
    _, inverse, counts = np.unique(utt, return_inverse=True, return_counts=True)
    sums = np.zeros((counts.shape[0], q.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, q)
    return (sums / counts[:, None])[inverse]


def _dhl(q, y, utt, alpha):
    out = np.zeros_like(q)
    if q.shape[0]:
        out[np.arange(q.shape[0]), np.argmax(q, axis=1)] = 1.0  # argmax: first maximum on ties
    return out


RULES: Mapping[str, Rule] = types.MappingProxyType(
    {
        rule.name: rule
        for rule in (
            Rule("hard", "one-hot utterance label y (round 0, no-refinery control)", _hard),
            Rule("bdsl", "the predictions q themselves (standard EPR)", _bdsl),
            Rule("wdsl", "(1 - alpha) * q + alpha * y", _wdsl),
            Rule("pepr", "wdsl with alpha = 0.5 (add q and y, normalise)", _pepr),
            Rule("gsl", "mean of q over the segments of the utterance (soft static label)", _gsl),
            Rule("dhl", "one-hot argmax of q (hard dynamic label)", _dhl),
            Rule("lcw", "labels and weights per segment learned in alternate epochs (LC+W), per split", None,
                 learned=True),
        )
    }
)


def _check_alpha(alpha, *, argname: str = "alpha") -> float:
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not np.isfinite(alpha)
        or not 0.0 <= alpha <= 1.0
    ):
        raise EmorefineError(f"Received: {argname}={alpha!r}; expected a value in [0, 1]")
    return float(alpha)


def _check_int_vector(value, *, argname: str, n: int | None) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise EmorefineError(
            f"{argname} must be a 1-D integer array. Received: {argname} of shape {array.shape} and dtype {array.dtype}"
        )
    if n is not None and array.shape[0] != n:
        raise EmorefineError(
            f"{argname} must have one entry per segment ({n}). Received: {argname} of shape {array.shape}"
        )
    return array.astype(np.int64, copy=False)


def refine_labels(
    rule: str,
    *,
    predictions: np.ndarray,
    labels: np.ndarray,
    utterance_index: np.ndarray,
    alpha: float = 0.2,
    given: np.ndarray | None = None,
) -> np.ndarray:
    """Training targets of the next round from the out-of-fold predictions of this one.

    Args:
        rule: a key of :data:`RULES`.
        predictions: ``q``, class probabilities of every segment, shape ``(n_segments, K)``;
            each row non-negative and summing to 1 (within 1e-3).
        labels: utterance class index of each segment, int, shape ``(n_segments,)``, in ``[0, K)``;
            constant within an utterance.
        utterance_index: utterance id of each segment, int, shape ``(n_segments,)``; any integer
            ids, in any order (segments of one utterance need not be contiguous).
        alpha: weight of the hard label in ``wdsl``, in ``[0, 1]``. Validated for every rule,
            used only by ``wdsl`` (``pepr`` always uses 0.5).
        given: the reference targets ``y`` the rules mix in (``hard``, ``wdsl``, ``pepr``), shape
            ``(n_segments, K)``, rows summing to 1, e.g. soft targets from annotator votes; default the
            one-hot ``labels``.

    Returns:
        float32 targets, shape ``(n_segments, K)``, rows renormalised to sum to 1.
    """
    if not isinstance(rule, str) or rule not in RULES:
        raise EmorefineError(f"Received: rule={rule!r}; expected one of {', '.join(RULES)}")
    if RULES[rule].learned:
        raise EmorefineError(f"Received: rule={rule!r}, whose targets are learned while the model trains, not "
                             f"computed from predictions; expected one of "
                             f"{', '.join(n for n, r in RULES.items() if not r.learned)}")
    alpha = _check_alpha(alpha)
    q = np.asarray(predictions)
    if q.ndim != 2 or q.shape[1] < 2 or not np.issubdtype(q.dtype, np.number):
        raise EmorefineError(
            "predictions must be numeric of shape (n_segments, K) with K >= 2. "
            f"Received: predictions of shape {q.shape}"
        )
    q = q.astype(np.float64)
    n, k = q.shape
    labels = _check_int_vector(labels, argname="labels", n=n)
    utt = _check_int_vector(utterance_index, argname="utterance_index", n=n)
    if not np.all(np.isfinite(q)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(q), axis=1))[0])
        raise EmorefineError(f"predictions must be finite. Received: predictions[{bad}]={q[bad].tolist()}")
    if np.any(q < 0):
        bad = int(np.flatnonzero(np.any(q < 0, axis=1))[0])
        raise EmorefineError(
            f"predictions must be probability vectors (non-negative). Received: predictions[{bad}]={q[bad].tolist()}"
        )
    sums = q.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if np.any(off):
        bad = int(np.flatnonzero(off)[0])
        raise EmorefineError(
            f"predictions must be probability vectors (rows summing to 1). "
            f"Received: predictions[{bad}] summing to {sums[bad]:.6g}"
        )
    if n and (labels.min() < 0 or labels.max() >= k):
        bad = int(np.flatnonzero((labels < 0) | (labels >= k))[0])
        raise EmorefineError(f"labels must be in [0, {k}). Received: labels[{bad}]={int(labels[bad])}")
    if n:
        # Segments of one utterance carry its label: catches misaligned arrays.
        _, inverse = np.unique(utt, return_inverse=True)
        lo = np.full(inverse.max() + 1, k, dtype=np.int64)
        hi = np.full(inverse.max() + 1, -1, dtype=np.int64)
        np.minimum.at(lo, inverse, labels)
        np.maximum.at(hi, inverse, labels)
        if np.any(lo != hi):
            group = int(np.flatnonzero(lo != hi)[0])
            uid = int(utt[np.flatnonzero(inverse == group)[0]])
            raise EmorefineError(
                f"labels must be constant within an utterance. Received: labels {int(lo[group])} and "
                f"{int(hi[group])} for utterance_index={uid}"
            )
    if given is None:
        y = np.zeros((n, k), dtype=np.float64)
        y[np.arange(n), labels] = 1.0
    else:
        y = np.asarray(given, dtype=np.float64)
        if y.shape != (n, k) or not np.all(np.isfinite(y)) or np.any(y < 0) or \
                np.any(np.abs(y.sum(axis=1) - 1.0) > SUM_TOLERANCE):
            raise EmorefineError(f"given must hold non-negative rows summing to 1, shape ({n}, {k}). "
                                 f"Received: given of shape {y.shape}")
    targets = RULES[rule].apply(q, y, utt, alpha)
    targets = targets / targets.sum(axis=1, keepdims=True)
    return targets.astype(np.float32)


def alpha_schedule(spec: float | str, rounds: int) -> list[float | None]:
    """α of ``wdsl`` for every round.

    Rounds are numbered ``0 .. rounds``: round 0 trains on the hard labels (no α), rounds
    ``1 .. rounds`` are refinery rounds.

    Args:
        spec: a number in ``[0, 1]`` (or its string, ``"0.2"``): the same α every round; or
            ``"start:end"`` (e.g. ``"0.5:0.1"``): linear from ``start`` at round 1 to ``end`` at round
            ``rounds`` (``start`` alone when ``rounds == 1``).
        rounds: index of the last round (the number of refinery rounds), ≥ 0.

    Returns:
        list of length ``rounds + 1``; entry ``t`` is the α of round ``t``, entry 0 is ``None``.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise EmorefineError(f"Received: rounds={rounds!r}; expected a non-negative integer")
    rounds = int(rounds)
    if isinstance(spec, str):
        parts = spec.split(":")
        try:
            values = [float(part) for part in parts]
        except ValueError:
            values = []
        if len(values) not in (1, 2) or not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise EmorefineError(
                f"Received: spec={spec!r}; expected a number in [0, 1] or 'start:end' with both in [0, 1]"
            )
        start, end = values[0], values[-1]
    else:
        start = end = _check_alpha(spec, argname="spec")
    if rounds <= 1:
        alphas = [start] * rounds
    else:
        alphas = [start + (end - start) * (t - 1) / (rounds - 1) for t in range(1, rounds + 1)]
    return [None, *alphas]
