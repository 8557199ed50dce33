"""`emorefine lcw` end to end on tiny synthetic sequence records: report, learned labels, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import EmorefineError
from emotion_refinery.methods.lcw import LCWConfig, run_lcw
from emotion_refinery.records.build import build_records
from emotion_refinery.records.run_dir import RunDir

pytestmark = pytest.mark.slow

CONFIG = LCWConfig(epochs=2, batch_size=8, seed=1)


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    root, csv_path = synthetic_corpus
    out = tmp_path_factory.mktemp("lcw") / "rec"
    build_records(root, out, corpus="csv", manifest=csv_path, features=FeatureConfig(segment_hop=16), n_folds=3,
                  workers=1, sequences="log-mel")
    return out


@pytest.fixture(scope="module")
def run(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("lcw-run") / "run"
    lines = []
    report = run_lcw(records, out, CONFIG, log=lines.append)
    return out, report, lines


def test_report_has_scores_label_changes_and_weights(run):
    out, report, lines = run
    k = len(report["classes"])
    assert 0 <= report["wa"] <= 1 and 0 <= report["ua"] <= 1
    change = np.array(report["label_change"])
    assert change.shape == (k, k)
    np.testing.assert_allclose(change.sum(axis=1), 1, atol=1e-6)
    assert len(report["mean_weight"]) == k
    assert sum(map(sum, report["confusion"])) == 16
    text = (out / "report.md").read_text()
    assert "| given \\ learned |" in text and "mean weight" in text
    assert [line.split(":")[0] for line in lines[:3]] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    rows = (RunDir(out).utterance_predictions(0)).read_text().splitlines()
    assert len(rows) == 17 and rows[0].startswith("id,speaker,fold,label,predicted")
    for fold in report["folds"]:  # alternating phases, network first
        assert [h["phase"] for h in fold["history"]][:2] == ["theta", "labels"]


def test_rerun_trains_nothing_and_resume_equals_an_uninterrupted_run(run, records, tmp_path):
    out, report, _ = run
    lines = []
    again = run_lcw(records, out, CONFIG, log=lines.append)
    assert not any(line.startswith("fold ") for line in lines) and again["wa"] == report["wa"]
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    RunDir(copy).done_path(0, 1).unlink()  # as if killed during fold 2
    resumed = run_lcw(records, copy, CONFIG, log=lambda s: None)
    a, b = RunDir(out), RunDir(copy)
    with np.load(a.round_dir(0) / "lcw" / "fold-01.npz") as x, np.load(b.round_dir(0) / "lcw" / "fold-01.npz") as y:
        np.testing.assert_array_equal(x["labels"], y["labels"])
        np.testing.assert_array_equal(x["test_probabilities"], y["test_probabilities"])
    assert resumed["wa"] == report["wa"]


def test_other_settings_and_records_without_sequences_are_refused(run, records, synthetic_corpus, tmp_path):
    out, _, _ = run
    with pytest.raises(EmorefineError, match="config.update: 'both' → 'labels'"):
        run_lcw(records, out, LCWConfig(epochs=2, batch_size=8, seed=1, update="labels"))
    root, csv_path = synthetic_corpus
    plain = tmp_path / "plain"
    build_records(root, plain, corpus="csv", manifest=csv_path, features=FeatureConfig(segment_hop=16), n_folds=3,
                  workers=1)
    result = CliRunner().invoke(main, ["lcw", str(plain), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--sequences log-mel" in result.output
    result = CliRunner().invoke(main, ["lcw", str(records), "-o", str(tmp_path / "y"), "--update", "all"])
    assert result.exit_code == 2 and "'all' is not one of" in result.output
    with pytest.raises(EmorefineError, match="Received: update='all'; expected one of both, labels, weights, "
                                             "class-weights, none, oversample"):
        LCWConfig(update="all")
    assert json.loads((out / "config.json").read_text())["method"] == "lcw"


def test_planted_noise_trains_on_flipped_labels_and_scores_on_true_ones(records, tmp_path):
    from emotion_refinery.data.label_noise import flip_labels
    from emotion_refinery.records.manifest import RecordsManifest

    config = LCWConfig(epochs=2, batch_size=8, seed=1, label_noise=0.25)
    report = run_lcw(records, tmp_path / "run", config, log=lambda s: None)
    manifest = RecordsManifest.load(records)
    labels = np.array([u["label_index"] for u in manifest.utterances])
    noisy = flip_labels(labels, len(manifest.classes), 0.25, seed=1)
    folds = np.array([u["fold"] for u in manifest.utterances])
    # Each utterance trains in the splits that neither hold it out nor stop early on it: K − 2 of them.
    expected = sum(int(((noisy != labels) & (folds != k) & (folds != (k + 1) % 3)).sum()) for k in range(3))
    assert report["label_noise"]["flipped_pairs"] == expected > 0
    assert 0 <= report["label_noise"]["recovered"] <= 1
    np.testing.assert_array_equal(np.array(report["confusion"]).sum(axis=1), np.bincount(labels, minlength=4))
    assert "Planted noise: 25 % of the utterances" in (tmp_path / "run" / "report.md").read_text()


def test_inspect_and_report_show_the_learned_labels(run):
    out, report, _ = run
    result = CliRunner().invoke(main, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "| given \\ learned |" in result.output and "learned label left the given one" in result.output
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("learned-labels.png", "confusion.png"):
        assert (out / "plots" / name).stat().st_size > 1000
        assert f"(plots/{name})" in (out / "report.md").read_text()
