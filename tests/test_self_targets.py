"""Self targets (`refine --targets self`, born-again distillation): split k's refined round learns from its own
previous model's predictions of its training folds, so nothing of the held-out fold reaches them."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.folds import split_folds
from emotion_refinery.records.build import build_records
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from emotion_refinery.refine.rounds import refine
from emotion_refinery.refine.settings import RefineConfig

pytestmark = pytest.mark.slow

K = 3
CONFIG = RefineConfig(rounds=2, backbone="small", rule="wdsl", alpha=0.2, epochs=1, batch_size=64, bn_momentum=0.9,
                      targets="self", early_stopping="none", seed=3)


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    root, csv_path = synthetic_corpus
    out = tmp_path_factory.mktemp("self") / "rec"
    build_records(root, out, corpus="csv", manifest=csv_path, features=FeatureConfig(segment_hop=16), n_folds=K,
                  workers=1)
    return out


@pytest.fixture(scope="module")
def run(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("self-run") / "run"
    report = refine(records, out, CONFIG, log=lambda s: None, verify=False)
    return out, report


def test_each_split_learns_from_its_own_model_of_its_training_folds(run, records):
    out, report = run
    manifest, r = RecordsManifest.load(records), RunDir(out)
    assert not r.labels_dir(1).exists() and not (r.round_dir(0) / "teachers").exists()
    for k in range(K):
        train, _ = split_folds(K, k, validation=False)
        for fold in range(K):
            assert r.labels_complete(1, manifest, fold, split=k) == (fold in train)
    a, b = (r.load_fold_targets(1, manifest, 2, split=s) for s in (0, 1))
    assert not np.allclose(a, b)  # two models, two views of the same fold
    labels = manifest.segment_table()["label"][slice(*manifest.fold_segments(2))]
    for t in (a, b):
        np.testing.assert_allclose(t.sum(axis=1), 1, atol=1e-5)
        assert np.all(t[np.arange(len(t)), labels] >= 0.2 - 1e-6)
        assert not np.allclose(t, np.eye(len(manifest.classes))[labels])  # the model moved them
    assert report["config"]["targets"] == "self" and "never saw fold k" in report["protocol"]["targets"]
    assert "self targets" in (out / "report.md").read_text()
    assert [f["seconds"] > 0 for f in report["rounds"][1]["folds"]] == [True] * K


def test_the_held_out_folds_labels_do_not_reach_its_refined_model(run, records, tmp_path):
    """Garble fold 0's round-0 labels: the other splits train on them, split 0's refined model must not change."""
    out, _ = run
    manifest = RecordsManifest.load(records)
    garbled = RunDir(tmp_path / "garbled")
    garbled.root.mkdir()
    shutil.copy(RunDir(out).config, garbled.config)
    lo, hi = manifest.fold_segments(0)
    n = len(manifest.classes)
    wrong = (manifest.segment_table()["label"][lo:hi] + 1) % n
    garbled.write_labels(0, manifest, 0, np.eye(n, dtype=np.float32)[wrong])
    refine(records, garbled.root, CONFIG, log=lambda s: None, verify=False)
    clean = RunDir(out)
    np.testing.assert_array_equal(np.load(garbled.predictions_path(1, 0)), np.load(clean.predictions_path(1, 0)))
    assert not np.array_equal(np.load(garbled.predictions_path(0, 1)), np.load(clean.predictions_path(0, 1)))


def test_a_run_extended_with_more_rounds_gets_the_same_self_targets(run, records, tmp_path):
    out, _ = run
    manifest = RecordsManifest.load(records)
    one = tmp_path / "one"
    refine(records, one, dataclasses.replace(CONFIG, rounds=1), log=lambda s: None, verify=False)
    assert not RunDir(one).labels_dir(1, 0).exists()  # its last round wrote no targets
    refine(records, one, CONFIG, log=lambda s: None, verify=False)  # extended: round 0's saved models write them
    for k in range(K):
        for fold in split_folds(K, k, validation=False)[0]:
            np.testing.assert_allclose(RunDir(one).load_fold_targets(1, manifest, fold, split=k),
                                       RunDir(out).load_fold_targets(1, manifest, fold, split=k), atol=1e-5)
