"""Label update rules checked against hand-computed targets."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_refinery.errors import EmorefineError
from emotion_refinery.refine.rules import RULES, alpha_schedule, refine_labels

# Four segments of two utterances (ids 9 and 5, interleaved), three classes.
Q = np.array(
    [
        [0.6, 0.3, 0.1],  # utterance 9, label 2
        [0.2, 0.5, 0.3],  # utterance 5, label 0
        [0.1, 0.1, 0.8],  # utterance 9, label 2
        [0.4, 0.4, 0.2],  # utterance 5, label 0 (tie between classes 0 and 1)
    ]
)
LABELS = np.array([2, 0, 2, 0])
UTT = np.array([9, 5, 9, 5])

EXPECTED = {
    "hard": [[0, 0, 1], [1, 0, 0], [0, 0, 1], [1, 0, 0]],
    "bdsl": Q.tolist(),
    # 0.8 * q + 0.2 * y
    "wdsl": [[0.48, 0.24, 0.28], [0.36, 0.40, 0.24], [0.08, 0.08, 0.84], [0.52, 0.32, 0.16]],
    # 0.5 * q + 0.5 * y
    "pepr": [[0.30, 0.15, 0.55], [0.60, 0.25, 0.15], [0.05, 0.05, 0.90], [0.70, 0.20, 0.10]],
    # utterance 9: mean of rows 0 and 2; utterance 5: mean of rows 1 and 3
    "gsl": [[0.35, 0.20, 0.45], [0.30, 0.45, 0.25], [0.35, 0.20, 0.45], [0.30, 0.45, 0.25]],
    # argmax; the tie in row 3 goes to the lowest class index
    "dhl": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]],
}


def _refine(rule, **overrides):
    kwargs = {"predictions": Q, "labels": LABELS, "utterance_index": UTT}
    kwargs.update(overrides)
    return refine_labels(rule, **kwargs)


def test_learned_rules_are_not_computed_from_predictions():
    assert [name for name, rule in RULES.items() if rule.learned] == ["lcw"]
    with pytest.raises(EmorefineError, match="rule='lcw', whose targets are learned while the model trains"):
        _refine("lcw")


def test_every_rule_has_a_hand_computed_case():
    assert set(RULES) - {"lcw"} == set(EXPECTED)


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_rule_formula(rule):
    out = _refine(rule)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_allclose(out, np.array(EXPECTED[rule]), atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)


def test_wdsl_alpha_and_pepr_is_wdsl_half():
    np.testing.assert_array_equal(_refine("pepr"), _refine("wdsl", alpha=0.5))
    np.testing.assert_allclose(_refine("wdsl", alpha=0.0), _refine("bdsl"), atol=1e-7)
    np.testing.assert_allclose(_refine("wdsl", alpha=1.0), _refine("hard"), atol=1e-7)
    np.testing.assert_array_equal(_refine("pepr", alpha=0.9), _refine("pepr"))  # pepr ignores alpha


def test_given_soft_targets_replace_the_one_hot_label_in_the_rules():
    given = np.array([[0.1, 0.1, 0.8], [0.6, 0.4, 0.0], [0.1, 0.1, 0.8], [0.6, 0.4, 0.0]])
    np.testing.assert_allclose(_refine("wdsl", alpha=0.5, given=given), 0.5 * Q + 0.5 * given, rtol=1e-6)
    np.testing.assert_allclose(_refine("hard", given=given), given, rtol=1e-6)
    np.testing.assert_allclose(_refine("dhl", given=given), EXPECTED["dhl"])  # dhl does not use y
    with pytest.raises(EmorefineError, match=r"given must hold non-negative rows summing to 1, shape \(4, 3\)"):
        _refine("wdsl", given=given[:, :2])
    with pytest.raises(EmorefineError, match="given must hold non-negative rows summing to 1"):
        _refine("wdsl", given=given * 2)


def test_gsl_is_the_utterance_mean_for_unsorted_ids():
    rng = np.random.default_rng(0)
    n, k = 200, 4
    q = rng.dirichlet(np.ones(k), size=n)
    utt = rng.choice([17, 3, 42, 8, 100], size=n)
    labels = (utt % k).astype(np.int64)
    out = refine_labels("gsl", predictions=q, labels=labels, utterance_index=utt)
    for uid in np.unique(utt):
        rows = utt == uid
        np.testing.assert_allclose(out[rows], np.broadcast_to(q[rows].mean(axis=0), (rows.sum(), k)), atol=1e-6)


def test_dhl_ties_go_to_the_lowest_index():
    q = np.array([[0.25, 0.25, 0.25, 0.25], [0.1, 0.45, 0.45, 0.0]])
    out = refine_labels("dhl", predictions=q, labels=np.array([3, 3]), utterance_index=np.array([0, 0]))
    np.testing.assert_array_equal(out, [[1, 0, 0, 0], [0, 1, 0, 0]])


def test_rows_are_renormalised():
    q = Q * 1.0005  # within the tolerance: rows sum to ~1.0005 (float16)
    out = _refine("bdsl", predictions=q.astype(np.float16))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)


def test_empty_input():
    out = refine_labels(
        "gsl", predictions=np.zeros((0, 3)), labels=np.zeros(0, int), utterance_index=np.zeros(0, int)
    )
    assert out.shape == (0, 3) and out.dtype == np.float32


def test_unknown_rule_lists_names():
    with pytest.raises(EmorefineError) as info:
        _refine("xyz")
    assert str(info.value) == "Received: rule='xyz'; expected one of hard, bdsl, wdsl, pepr, gsl, dhl, lcw"


@pytest.mark.parametrize("alpha", [1.5, -0.1, float("nan")])
def test_alpha_out_of_range(alpha):
    with pytest.raises(EmorefineError, match=r"expected a value in \[0, 1\]") as info:
        _refine("wdsl", alpha=alpha)
    assert f"Received: alpha={alpha!r}" in str(info.value)
    if alpha == 1.5:
        assert str(info.value) == "Received: alpha=1.5; expected a value in [0, 1]"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"predictions": Q[:, :1]}, "K >= 2"),
        ({"predictions": Q[0]}, "shape (n_segments, K)"),
        ({"labels": LABELS[:3]}, "labels must have one entry per segment (4)"),
        ({"utterance_index": UTT[:, None]}, "utterance_index must be a 1-D integer array"),
        ({"labels": LABELS.astype(float)}, "labels must be a 1-D integer array"),
        ({"labels": np.array([2, 0, 2, 3]), "utterance_index": np.array([9, 5, 9, 4])}, "labels must be in [0, 3)"),
        ({"labels": np.array([2, 0, 1, 0])}, "labels must be constant within an utterance"),
        ({"predictions": Q - np.array([0.2, -0.1, -0.1])}, "non-negative"),
        ({"predictions": Q * 1.1}, "rows summing to 1"),
        ({"predictions": np.where(Q == 0.6, np.nan, Q)}, "must be finite"),
    ],
)
def test_validation(overrides, fragment):
    with pytest.raises(EmorefineError) as info:
        _refine("bdsl", **overrides)
    assert fragment in str(info.value)
    assert "Received" in str(info.value)


def test_alpha_schedule_constant():
    assert alpha_schedule(0.2, 3) == [None, 0.2, 0.2, 0.2]
    assert alpha_schedule("0.2", 2) == [None, 0.2, 0.2]
    assert alpha_schedule(0.2, 0) == [None]


def test_alpha_schedule_linear():
    assert alpha_schedule("0.5:0.1", 5) == pytest.approx([None, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert alpha_schedule("0.1:0.5", 3) == pytest.approx([None, 0.1, 0.3, 0.5])
    assert alpha_schedule("0.5:0.1", 1) == [None, 0.5]


@pytest.mark.parametrize(
    ("spec", "rounds", "fragment"),
    [
        ("abc", 3, "Received: spec='abc'"),
        ("0.5:2", 3, "Received: spec='0.5:2'"),
        ("0.1:0.2:0.3", 3, "Received: spec='0.1:0.2:0.3'"),
        (1.5, 3, "Received: spec=1.5; expected a value in [0, 1]"),
        (0.2, -1, "Received: rounds=-1"),
    ],
)
def test_alpha_schedule_errors(spec, rounds, fragment):
    with pytest.raises(EmorefineError) as info:
        alpha_schedule(spec, rounds)
    assert fragment in str(info.value)
