"""`emorefine report`: the plots and report.md of a finished run (the tiny real run of conftest)."""

from __future__ import annotations

import re

import matplotlib.image
import pytest
from click.testing import CliRunner

from cli.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args):
    return CliRunner().invoke(main, ["report", *map(str, args)])


def check_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 500, (path.name, image.shape)
    assert image[..., :3].std() > 0.05, f"{path.name} looks blank"  # something is drawn
    return image


def test_default_report(finished_run):
    import json

    from emotion_refinery.outputs.report import chosen_round, default_utterances
    from emotion_refinery.records.run_dir import load_run

    result = invoke(finished_run)
    assert result.exit_code == 0, result.output
    report = json.loads((finished_run / "report.json").read_text())
    chosen_t = chosen_round(report["rounds"])["round"]
    _, _, manifest = load_run(finished_run)
    chosen = default_utterances(manifest)
    # one per class, each of its class, and deterministic
    assert [manifest.utterance(u)["label"] for u in chosen] == manifest.classes
    assert default_utterances(manifest) == chosen

    plots = finished_run / "plots"
    expected = {"accuracy.png", f"confusion-round-{chosen_t:02d}.png", "label-drift.png", "entropy.png"}
    expected |= {f"ep-{re.sub(r'[^A-Za-z0-9._-]+', '_', u)}.png" for u in chosen}
    assert {p.name for p in plots.glob("*.png")} == expected
    for name in expected:
        check_png(plots / name)
        assert f"Wrote {plots / name}" in result.output

    md = (finished_run / "report.md").read_text()
    for name in expected:
        assert f"](plots/{name})" in md
    assert "| round | rule |" in md and "| 0 | hard |" in md and "| 1 | wdsl |" in md
    assert f"## Confusion matrix, round {chosen_t} (the round `predict` uses;" in md
    assert f"### Confusion matrix, round {chosen_t} (the round `predict` uses)" in md
    assert "| val. WA (%) | val. UA (%) |" in md
    assert "Best by test-fold UA (chosen on test data; optimistic): round " in md
    assert "| macro-F1 (%) |" in md and "## Leakage audit" in md and report["audit"]["warning"] in md
    for uid in chosen:
        assert f"#### {uid} " in md
    assert not list(finished_run.rglob("*.tmp-*"))  # every file was renamed into place


REPORT = {  # a report.json as refine wrote it before macro-F1 and the audit
    "classes": ["anger", "neutral"],
    "protocol": {"protocol": "3-fold stratified by label", "validation": "fold (k + 1) mod K stops training early"},
    "records": {"path": "/records"},
    "config": {"backbone": "small", "rule": "wdsl", "alpha": 0.2, "epochs": 2, "batch_size": 64, "lr": 0.001,
               "decay_rate": 0.8, "decay_epochs": 2, "patience": 3, "seed": 0},
    "rounds": [{"round": t, "rule": "hard" if t == 0 else "wdsl", "alpha": None if t == 0 else 0.2, "wa": wa, "ua": ua,
                "segment_accuracy": 0.5, "ep_entropy": 0.5, "label_drift": 0.0, "seconds": 1.0,
                "confusion": confusion}
               for t, wa, ua, confusion in [(0, 0.9, 0.9, [[9, 1], [1, 9]]), (1, 0.6, 0.6, [[6, 4], [4, 6]])]],
}


def test_markdown_shows_the_chosen_round_and_labels_the_best_one_optimistic():
    from emotion_refinery.outputs.report import best_by_test_ua, chosen_round, last_round, markdown

    rounds = REPORT["rounds"]
    # Without validation scores (a run made before them) the last round is the one predict uses.
    assert best_by_test_ua(rounds)["round"] == 0 and last_round(rounds)["round"] == 1
    assert chosen_round(rounds)["round"] == 1
    md = markdown(REPORT)  # no macro_f1, no validation scores, no audit: an old report still renders
    assert "| 0 | hard |  | 90.00 | 90.00 |  |  |  | 50.00 |" in md and "| 1 | wdsl | 0.2 | 60.00 | 60.00 |  |" in md
    assert "## Confusion matrix, round 1 (the round `predict` uses; rows true, columns predicted)" in md
    assert "| anger | 6 | 4 |" in md and "| anger | 9 | 1 |" not in md
    assert ("Best by test-fold UA (chosen on test data; optimistic): round 0, WA 90.00 %, UA 90.00 %. "
            "`predict` and `export` use round 1 (the last round; this run has no validation scores") in md
    assert "Round 1 lowered WA by 30.00 points from round 0 (UA -30.00)." in md
    assert "Without the forest" not in md  # an old report has no mean-EP scores
    with_mean = [{**r, "mean_ep_wa": 0.5, "mean_ep_ua": 0.25} for r in rounds]
    assert ("Without the forest (each utterance decided by its mean segment probability), WA / UA: round 0 50.00 / "
            "25.00 %; round 1 50.00 / 25.00 %.") in markdown({**REPORT, "rounds": with_mean})
    assert "Leakage audit" not in md
    from emotion_refinery.records.audit import leakage_audit

    new = {**REPORT, "rounds": [{**r, "macro_f1": r["ua"] - 0.05} for r in rounds],
           "audit": leakage_audit([{"id": "a", "fold": 0, "speaker": "s"}, {"id": "b", "fold": 1, "speaker": "s"},
                                   {"id": "c", "fold": 2, "speaker": "s"}], 3)}
    md = markdown(new)
    assert "| 0 | hard |  | 90.00 | 90.00 | 85.00 |  |  | 50.00 |" in md
    assert "## Leakage audit" in md and "speaker-dependent protocol: 100 % of held-out utterances" in md


def test_rounds_are_chosen_on_the_validation_folds_never_on_the_test_folds():
    from emotion_refinery.outputs.report import best_by_test_ua, chosen_round, markdown

    # Round 0 is far better on the test folds, round 1 on the validation folds: round 1 is chosen.
    rounds = [{**r, "validation_wa": v, "validation_ua": v} for r, v in zip(REPORT["rounds"], (0.5, 0.7))]
    assert best_by_test_ua(rounds)["round"] == 0 and chosen_round(rounds)["round"] == 1
    md = markdown({**REPORT, "rounds": rounds})
    assert "`predict` and `export` use round 1 (the best validation-fold UA; WA 60.00 %, UA 60.00 %" in md
    assert "| 1 | wdsl | 0.2 | 60.00 | 60.00 |  | 70.00 | 70.00 |" in md
    # A tie on validation UA goes to validation WA, then to the later round.
    tied = [{**r, "validation_wa": 0.6, "validation_ua": 0.6} for r in REPORT["rounds"]]
    assert chosen_round(tied)["round"] == 1
    tied[0]["validation_wa"] = 0.65
    assert chosen_round(tied)["round"] == 0


def test_flagged_folds_are_named_in_the_report():
    from emotion_refinery.outputs.report import markdown
    from emotion_refinery.refine.rounds import flag_folds

    folds = [{"fold": k, "epochs": 5, "best_epoch": 4, "val_loss": 1.0} for k in range(4)]
    folds[1].update(best_epoch=1)  # early stopping kept its first epoch: it hardly learnt
    folds[3].update(val_loss=2.4)  # far above its siblings
    flagged = flag_folds(folds)
    assert [f["fold"] for f in flagged] == [1, 3]
    assert flagged[0]["reasons"] == ["best epoch 1 of 5"]
    assert "validation loss 2.400 > 1.5 × the median 1.000" in flagged[1]["reasons"][0]
    assert flag_folds([{**f, "best_epoch": 4, "val_loss": 1.0} for f in folds]) == []
    rounds = [{**REPORT["rounds"][0], "flagged_folds": flagged}]
    md = markdown({**REPORT, "rounds": rounds})
    assert "Flagged folds (their model may be broken): round 0 fold 1: best epoch 1 of 5; round 0 fold 3:" in md


@pytest.mark.slow
def test_predictions_csv_of_every_round(finished_run):
    import csv
    import json

    import numpy as np
    from sklearn.metrics import f1_score

    from emotion_refinery.records.run_dir import load_run

    run, _, manifest = load_run(finished_run)
    report = json.loads(run.report_json.read_text())
    classes = manifest.classes
    for entry in report["rounds"]:
        with open(run.utterance_predictions(entry["round"]), newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["id", "speaker", "fold", "label", "predicted", *(f"p_{c}" for c in classes)]
        assert [r["id"] for r in rows] == [u["id"] for u in manifest.utterances]  # one row per utterance
        assert [(r["speaker"], int(r["fold"]), r["label"]) for r in rows] == [
            (u["speaker"], u["fold"], u["label"]) for u in manifest.utterances]
        p = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        assert all(r["predicted"] in classes for r in rows)
        true, predicted = [r["label"] for r in rows], [r["predicted"] for r in rows]
        assert np.mean([a == b for a, b in zip(true, predicted)]) == pytest.approx(entry["wa"])
        assert f1_score(true, predicted, labels=sorted(set(true)), average="macro") == pytest.approx(entry["macro_f1"])
        confusion = np.array(entry["confusion"])
        for i, c in enumerate(classes):
            assert confusion[i].sum() == true.count(c) and confusion[:, i].sum() == predicted.count(c)


def test_named_utterances_replace_the_default_ones(finished_run):
    from emotion_refinery.records.run_dir import load_run

    _, _, manifest = load_run(finished_run)
    utts = [u["id"] for u in manifest.utterances]
    picked = [utts[1], utts[-1]]
    result = invoke(finished_run, "--utterance", picked[0], "--utterance", picked[1])
    assert result.exit_code == 0, result.output
    eps = sorted(p.name for p in (finished_run / "plots").glob("ep-*.png"))
    assert eps == sorted(f"ep-{re.sub(r'[^A-Za-z0-9._-]+', '_', u)}.png" for u in picked)
    md = (finished_run / "report.md").read_text()
    assert all(f"#### {u} " in md for u in picked) and "named with `--utterance`" in md
    check_png(finished_run / "plots" / eps[0])


def test_unknown_utterance_and_not_a_run(finished_run, tmp_path):
    before = (finished_run / "report.md").read_text()
    result = invoke(finished_run, "--utterance", "no-such-utterance")
    assert result.exit_code == 2
    assert "no-such-utterance" in result.output and "no utterance" in result.output
    assert (finished_run / "report.md").read_text() == before  # nothing rewritten

    result = invoke(tmp_path)
    assert result.exit_code == 2 and "config.json" in result.output
    result = invoke(tmp_path / "missing")
    assert result.exit_code == 2


def test_plot_functions_take_plain_data(tmp_path):
    import numpy as np

    from emotion_refinery.outputs import plots

    classes = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
    rng = np.random.default_rng(0)
    profiles = [rng.dirichlet(np.ones(7), size=40) for _ in range(5)]  # 5 rounds: a 2-column grid with a gap
    paths = [
        plots.accuracy_curve([0, 1, 2, 3, 4], [0.8, 0.85, 0.9, 0.88, 0.7], [0.79, 0.84, 0.9, 0.86, 0.68],
                             tmp_path / "a.png", n_classes=7),
        plots.confusion_matrix(rng.integers(0, 30, size=(7, 7)), classes, tmp_path / "c.png"),
        plots.emotion_profile_evolution(profiles, classes, tmp_path / "e.png", seconds_per_segment=0.01,
                                        utterance_id="03a01Wa", label="anger"),
        plots.label_drift(rng.uniform(0, 0.3, size=(4, 7)), classes, tmp_path / "d.png",
                          transitions=[f"round {t} → {t + 1}" for t in range(4)], overall=[0.1, 0.2, 0.1, 0.05]),
        plots.ep_entropy([0, 1, 2, 3, 4], [0.3, 0.5, 0.7, 0.9, 0.95], tmp_path / "h.png",
                         per_class=rng.uniform(0, 1, size=(5, 7)), classes=classes),
    ]
    for path in paths:
        check_png(path)
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # every figure closed


def _split(fold, rule, scores):
    return {"fold": fold, "rule": rule, "scores": scores}


def test_each_split_chooses_its_round_on_its_other_folds_and_predict_takes_the_majority():
    from emotion_refinery.outputs.report import chosen_round, markdown

    # Round 0 is better on the test folds, but splits 0 and 2 score round 1 higher on their other folds.
    splits = [[_split(0, "mean-ep", {"mean-ep": 0.5, "forest": 0.4}),
               _split(1, "forest", {"mean-ep": 0.5, "forest": 0.7}),
               _split(2, "mean-ep", {"mean-ep": 0.6, "forest": 0.3})],
              [_split(0, "mean-ep", {"mean-ep": 0.6, "forest": 0.4}),
               _split(1, "forest", {"mean-ep": 0.2, "forest": 0.6}),
               _split(2, "forest", {"mean-ep": 0.5, "forest": 0.65})]]
    rounds = [{**r, "decision": {"rule": s[0]["rule"], "splits": s}, "validation_wa": 0.9, "validation_ua": 0.9}
              for r, s in zip(REPORT["rounds"], splits)]
    assert chosen_round(rounds)["round"] == 1  # rounds [1, 0, 1] by split
    report = {**REPORT, "rounds": rounds,
              "selection": {"rounds_by_split": [1, 0, 1], "wa": 0.7, "ua": 0.65, "macro_f1": 0.6, "round": 1},
              "choices": {"speaker_norm": {"mode": "auto", "splits": [True, False, True],
                                           "confound": {"speakers": 5, "single_class_speakers": 4,
                                                        "single_class_share": 0.8},
                                           "evidence": [{"fold": k, "off": 0.5, "on": v, "speaker_norm": v > 0.5}
                                                        for k, v in enumerate((0.6, 0.4, 0.7))]}}}
    md = markdown(report)
    assert "| 1 | wdsl | 0.2 | 60.00 | 60.00 |" in md and "| mean-ep 2/3, forest 1/3 |" in md
    assert ("on in 2 of 3 splits. Evidence, per split on its other folds only" in md
            and "split 1 50.0 / 40.0" in md and "80.0 % of the utterances come from the 4 of 5 speakers" in md)
    assert "Round 1, utterance decision rule: forest 2/3, mean-ep 1/3; inner UA (mean over splits" in md
    assert "(rounds [1, 0, 1] for splits 0–2)" in md and "**WA 70.00 %, UA 65.00 %**" in md
    assert "`predict` and `export` use round 1 (the round most splits chose on their other folds" in md


def test_round_0_is_compared_with_the_stronger_baseline():
    from emotion_refinery.outputs.report import markdown

    report = {**REPORT, "records": {"path": "/records", "manifest_sha256": "abc"},
              "baseline": {"plain": {"wa": 0.5, "ua": 0.45, "macro_f1": 0.4, "manifest_sha256": "abc"},
                           "speaker_norm": {"wa": 0.8, "ua": 0.7, "macro_f1": 0.6, "manifest_sha256": "abc"}}}
    md = markdown(report)
    assert ("Round 0 vs the stronger of the baselines, eGeMAPSv02 + SVM, speaker-normalised (same folds): "
            "WA +10.00, UA +20.00 points") in md
