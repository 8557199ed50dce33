"""Training of one (round, fold): strided training sets, early stopping from --min-epochs, NaN losses,
validation-fold decisions, the time estimate, the GPU-sized-backbone warning and preset resolution."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from emotion_refinery.data.feature_config import PRESETS, FeatureConfig
from emotion_refinery.data.synthetic import make_corpus
from emotion_refinery.errors import EmorefineError, TrainingError
from emotion_refinery.records.build import build_records
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir
from emotion_refinery.refine.rounds import cpu_time_warning, refine, validation_scores
from emotion_refinery.refine.settings import RefineConfig, resolve_config
from emotion_refinery.util.processes import cpu_count

CONFIG = RefineConfig(rounds=1, backbone="tcnn", epochs=3, batch_size=32, bn_momentum=0.9, min_epochs=2,
                      patience=1, train_stride=2, seed=0)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("training-corpus")
    csv = make_corpus(root, per_class=3, seed=2)
    out = tmp_path_factory.mktemp("training-records") / "rec"
    build_records(root, out, corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=8), n_folds=3, workers=1)
    return out


@pytest.fixture(scope="module")
def run(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("training-run") / "run"
    lines: list[str] = []
    report = refine(records, out, CONFIG, log=lines.append)
    return out, report, lines


@pytest.mark.slow
def test_a_strided_run_trains_on_every_nth_segment_and_predicts_every_segment(run, records):
    out, report, _ = run
    manifest = RecordsManifest.load(records)
    run_dir = RunDir(out)
    for info in report["rounds"][0]["folds"]:
        train_utts = [u for u in manifest.utterances if u["fold"] not in (info["fold"], info["validation_fold"])]
        assert info["train_segments"] == sum(-(-u["segments"] // 2) for u in train_utts)
    assert run_dir.load_predictions(0, manifest).shape == (manifest.n_segments, len(manifest.classes))


@pytest.mark.slow
def test_early_stopping_keeps_no_epoch_before_min_epochs(run):
    _, report, _ = run
    for info in report["rounds"][0]["folds"]:
        # min_epochs=2: epochs 1 and 2 are never kept; with 3 epochs at most, epoch 3 is the one kept.
        assert info["epochs"] == 3 and info["best_epoch"] == 3


@pytest.mark.slow
def test_validation_decisions_cover_every_utterance_once_by_a_model_that_did_not_see_it(run, records):
    _, report, _ = run
    manifest = RecordsManifest.load(records)
    seen: dict[int, int] = {}
    for info in report["rounds"][0]["folds"]:
        decided = {int(u) for u in info["validation_decisions"]}
        assert decided == {u["index"] for u in manifest.utterances if u["fold"] == info["validation_fold"]}
        for u in decided:
            seen[u] = seen.get(u, 0) + 1
    assert sorted(seen) == list(range(len(manifest.utterances))) and set(seen.values()) == {1}
    r0 = report["rounds"][0]
    assert 0 <= r0["validation_wa"] <= 1 and 0 <= r0["validation_ua"] <= 1


@pytest.mark.slow
def test_the_first_training_prints_the_time_left(run):
    _, _, lines = run
    estimates = [line for line in lines if line.startswith("first epoch took")]
    assert len(estimates) == 1 and "2 more fold trainings of up to 3 epochs" in estimates[0]


@pytest.mark.slow
def test_a_nan_loss_stops_the_fold_naming_round_fold_and_epoch(records, tmp_path, monkeypatch):
    original = RunDir.write_labels

    def poisoned(self, t, manifest, fold, targets):  # fold 2's targets are NaN: split 0 trains on it
        original(self, t, manifest, fold, targets * np.nan if fold == 2 else targets)

    monkeypatch.setattr(RunDir, "write_labels", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"round 0, fold 0: the loss became NaN or infinite in epoch 1") as e:
        refine(records, out, CONFIG, log=lambda line: None)
    assert "fold is not marked done" in str(e.value)
    assert not RunDir(out).is_done(0, 0)


def test_mean_ep_scores_decide_each_utterance_by_its_mean_probability():
    from emotion_refinery.refine.rounds import mean_ep_scores

    q = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.45, 0.55], [0.9, 0.1]])
    utt = np.array([0, 0, 1, 1, 2])  # means: [0.55, 0.45] → 0; [0.425, 0.575] → 1; [0.9, 0.1] → 0
    assert mean_ep_scores(q, utt, np.array([0, 0, 0]), 2) == {"mean_ep_wa": 2 / 3, "mean_ep_ua": 2 / 3}
    assert mean_ep_scores(q, utt, np.array([0, 1, 1]), 2) == {"mean_ep_wa": 2 / 3, "mean_ep_ua": 0.75}


def test_validation_scores_pool_the_decisions_of_every_fold():
    labels = np.array([0, 0, 1, 1])
    folds = [{"validation_decisions": {"0": 0, "1": 1}}, {"validation_decisions": {"2": 1, "3": 1}}]
    scores = validation_scores(folds, labels, 2)
    assert scores == {"validation_wa": 0.75, "validation_ua": 0.75}
    assert validation_scores([{}, *folds], labels, 2) == {"validation_wa": None, "validation_ua": None}


def test_gpu_sized_backbones_are_announced_on_a_cpu_with_an_estimate():
    manifest = types.SimpleNamespace(n_folds=10, utterances=[{"fold": f % 10, "segments": 400} for f in range(100)])
    warning = cpu_time_warning(manifest, RefineConfig(backbone="efficientnetb0", epochs=12), 50)
    assert warning.startswith("warning: no GPU is visible and backbone 'efficientnetb0' is sized for GPUs")
    assert "50 fold trainings of up to 12 epochs" in warning and "--preset cpu" in warning
    # 80 utterances × 400 segments × 12 epochs × 50 trainings at 149 segments/s on 2 cores.
    cores = cpu_count()  # this process' cores, as refine counts them (fewer under taskset)
    hours = 50 * 80 * 400 * 12 / (149 * cores / 2) / 3600
    assert f"about {hours:.1f} h" in warning
    assert cpu_time_warning(manifest, RefineConfig(backbone="tcnn"), 50) is None


def test_every_preset_is_a_refine_preset_and_the_records_preset_is_the_default(tmp_path):
    for name, preset in PRESETS.items():
        config = resolve_config(preset=name)
        assert config.preset == name
        for key, value in preset.training.items():
            assert getattr(config, key) == value
    assert resolve_config(default_preset="cpu").backbone == "tcnn"
    assert resolve_config(preset="fast", default_preset="cpu").backbone == "efficientnetb0"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "fast"}))
    assert resolve_config(config_file=path, default_preset="cpu").preset == "fast"
    with pytest.raises(EmorefineError, match="Received: preset='gpu'; expected one of emodb, "):
        resolve_config(preset="gpu")


@pytest.mark.parametrize("settings, message", [
    ({"train_stride": 0}, "Received: train_stride=0; expected an integer in [1, 1000]"),
    ({"min_epochs": -1}, "Received: min_epochs=-1; expected an integer in [0, 999]"),
    ({"round_patience": 1.5}, "Received: round_patience=1.5; expected an integer in [0, 99]"),
    ({"mixup": -0.2}, "Received: mixup=-0.2; expected a number in [0, 10]"),
    ({"freq_shift": -2}, "Received: freq_shift=-2; expected an integer in [0, 127]"),
])
def test_bad_training_settings_are_refused(settings, message):
    with pytest.raises(EmorefineError, match=__import__("re").escape(message)):
        RefineConfig(**settings)


def test_memory_plan_falls_back_to_rereading_when_the_training_set_would_not_fit():
    from emotion_refinery.refine.training import memory_plan

    seg = 32 * 64 * 2  # one float16 segment
    assert memory_plan(100_000, seg, "memory", available=2**34) == ("memory", None, "")  # 16 GiB: fits
    assert memory_plan(100_000, seg, "memory", available=None) == ("memory", None, "")  # unknown: as asked
    cache, buffer, note = memory_plan(10_000_000, seg, "memory", available=2**34)  # 82 GB would be needed
    assert cache == "none" and buffer == int(0.5 * 2**34 / seg) and "would not fit" in note
    assert memory_plan(10_000, seg, "memory", available=2**20)[1] == 1024  # never a buffer below 1024 segments
    # Segments cut from sequences: the cache holds the frames (a 32nd of the segments' bytes at a 1-frame hop)
    # and the buffer 32,768 segments, so the set that did not fit above does.
    assert memory_plan(10_000_000, seg, "memory", available=2**34, frame_bytes=10_000_000 * seg // 32) == (
        "memory", None, "")
    assert "--segments-from sequences" in note
