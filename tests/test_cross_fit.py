"""Cross-fit targets (`refine --targets cross-fit`): nothing of the held-out fold reaches the targets, and so the
refined model, of the split that is tested on it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.folds import split_folds
from emotion_refinery.errors import RecordsError
from emotion_refinery.records.build import build_records
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from emotion_refinery.refine.rounds import refine
from emotion_refinery.refine.settings import RefineConfig
from emotion_refinery.refine.training import teacher_halves

pytestmark = pytest.mark.slow

K = 4
CONFIG = RefineConfig(rounds=2, backbone="small", rule="wdsl", alpha=0.2, epochs=1, batch_size=64, bn_momentum=0.9,
                      targets="cross-fit", seed=2)


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    root, csv_path = synthetic_corpus
    out = tmp_path_factory.mktemp("cross-fit") / "rec"
    build_records(root, out, corpus="csv", manifest=csv_path, features=FeatureConfig(segment_hop=16), n_folds=K,
                  workers=1)
    return out


@pytest.fixture(scope="module")
def run(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("cross-fit-run") / "run"
    report = refine(records, out, CONFIG, log=lambda s: None, verify=False)
    return out, report


def test_each_split_has_its_own_targets_from_teachers_that_never_saw_its_fold(run, records):
    out, report = run
    manifest, r = RecordsManifest.load(records), RunDir(out)
    assert not r.labels_dir(1).exists()  # no shared label set after round 0
    for k in range(K):
        train, val = split_folds(K, k)
        seen = []
        for h in (0, 1):
            info = json.loads(r.teacher_done_path(0, k, h).read_text())
            assert k not in info["train_folds"] + info["predicted_folds"] and info["validation_fold"] == val
            seen += info["predicted_folds"]
            assert info["train_folds"] == teacher_halves(train)[h]
        assert sorted(seen) == sorted(train)
        for fold in range(K):
            assert r.labels_complete(1, manifest, fold, split=k) == (fold in train)
    # The same fold gets different targets in different splits (different teachers), each a distribution
    # that keeps α of the utterance label.
    a, b = (r.load_fold_targets(1, manifest, 3, split=s) for s in (0, 1))
    assert not np.allclose(a, b)
    labels = manifest.segment_table()["label"][slice(*manifest.fold_segments(3))]
    for t in (a, b):
        np.testing.assert_allclose(t.sum(axis=1), 1, atol=1e-5)
        assert np.all(t[np.arange(len(t)), labels] >= 0.2 - 1e-6)
    assert report["config"]["targets"] == "cross-fit" and "no teacher saw fold k" in report["protocol"]["targets"]
    text = (out / "report.md").read_text()
    assert "cross-fit targets" in text and "optimistic" not in text.split("Best by test")[0]


def test_the_held_out_folds_labels_do_not_reach_its_refined_model(run, records, tmp_path):
    """Garble fold 0's round-0 labels: every other split trains on them, split 0's targets and its round-1
    model must not change (bit for bit: CPU runs are deterministic)."""
    out, _ = run
    manifest = RecordsManifest.load(records)
    garbled = RunDir(tmp_path / "garbled")
    garbled.root.mkdir()
    shutil.copy(RunDir(out).config, garbled.config)  # the same run, resumed from its labels
    lo, hi = manifest.fold_segments(0)
    n = len(manifest.classes)
    wrong = (manifest.segment_table()["label"][lo:hi] + 1) % n
    garbled.write_labels(0, manifest, 0, np.eye(n, dtype=np.float32)[wrong])
    refine(records, garbled.root, CONFIG, log=lambda s: None, verify=False)
    clean = RunDir(out)
    np.testing.assert_array_equal(np.load(garbled.predictions_path(1, 0)), np.load(clean.predictions_path(1, 0)))
    # The other splits trained on the garbled fold, so their models did change.
    assert not np.array_equal(np.load(garbled.predictions_path(0, 1)), np.load(clean.predictions_path(0, 1)))


def test_cross_fit_needs_four_folds(synthetic_corpus, tmp_path):
    root, csv_path = synthetic_corpus
    build_records(root, tmp_path / "rec", corpus="csv", manifest=csv_path, features=FeatureConfig(segment_hop=16),
                  n_folds=3, workers=1)
    with pytest.raises(RecordsError, match="cross-fit.*at least 4 folds"):
        refine(tmp_path / "rec", tmp_path / "run", CONFIG, log=lambda s: None, verify=False)
