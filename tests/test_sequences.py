"""Utterance-level records (`build-records --sequences log-mel`): one example per utterance holding its whole
frame sequence, in sequence shards beside the feature shards, verified, and fed as padded batches with masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.features import segment
from emotion_refinery.errors import RecordsError
from emotion_refinery.methods.lcw import LCWConfig, fold_model
from emotion_refinery.records.build import build_records
from emotion_refinery.records.datasets import sequence_dataset
from emotion_refinery.records.manifest import RecordsManifest
from tf_records.reader import ordered_batches
from tf_records.schema import FRAMES, UTTERANCE

FEATURES = FeatureConfig(segment_hop=8)


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    root, csv_path = synthetic_corpus
    out = tmp_path_factory.mktemp("sequences") / "rec"
    build_records(root, out, corpus="csv", manifest=csv_path, features=FEATURES, n_folds=3, workers=1,
                  sequences="log-mel")
    return RecordsManifest.load(out)


def _sequences(manifest):
    """Every stored sequence by utterance index, as float32 arrays."""
    spec, out = manifest.sequence_spec, {}
    paths = [manifest.root / s["sequences"]["path"] for s in manifest.shards]
    for batch in ordered_batches(paths, spec.parse):
        for u, frames in zip(batch[UTTERANCE].numpy(), batch[FRAMES]):
            out[int(u)] = frames.numpy()
    return out


def test_every_utterance_has_its_frames_and_its_segments_are_cut_from_them(records):
    seqs = _sequences(records)
    assert sorted(seqs) == [u["index"] for u in records.utterances]
    for u in records.utterances:
        frames = seqs[u["index"]]
        assert frames.shape == (u["sequence_frames"], FEATURES.n_mels)
        stored = records.read_utterance(u["id"])
        cut = segment(frames, segment_frames=FEATURES.segment_frames, segment_hop=FEATURES.segment_hop)
        np.testing.assert_array_equal(cut, stored)
    # Fold-major like the feature shards: a sequence shard holds the utterances of its feature shard.
    for s in records.shards:
        assert s["sequences"]["path"].startswith("shards/sequences-f")
    assert records.verify() == {}


def test_padded_batches_carry_masks_labels_and_utterance_indices(records):
    folds = [0, 1]
    batches = list(sequence_dataset(records, folds=folds, batch_size=4))
    mine = [u for u in records.utterances if u["fold"] in folds]
    assert sum(len(y) for _, y in batches) == len(mine)
    seqs = _sequences(records)
    seen = []
    for x, y in batches:
        frames, mask, utt = x["frames"].numpy(), x["mask"].numpy(), x["utt"].numpy()
        assert frames.shape[1] == mask.shape[1] == max(records.utterances[i]["sequence_frames"] for i in utt)
        for row, i in enumerate(utt):
            u = records.utterances[i]
            assert mask[row].sum() == u["sequence_frames"] and mask[row, : u["sequence_frames"]].all()
            np.testing.assert_array_equal(frames[row, : u["sequence_frames"]], seqs[i])
            assert not frames[row, u["sequence_frames"]:].any()
            assert y.numpy()[row].argmax() == u["label_index"] and y.numpy()[row].sum() == 1
        seen += list(utt)
    assert seen == [u["index"] for u in mine]  # stored order
    shuffled = [i for x, _ in sequence_dataset(records, folds=folds, batch_size=4, shuffle=True, seed=1)
                for i in x["utt"].numpy()]
    assert sorted(shuffled) == sorted(seen) and shuffled != seen


def test_a_damaged_sequence_shard_fails_verification(records, tmp_path):
    import shutil

    copy = tmp_path / "rec"
    shutil.copytree(records.root, copy)
    manifest = RecordsManifest.load(copy)
    path = copy / manifest.shards[0]["sequences"]["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = manifest.verify()
    assert list(bad) == [manifest.shards[0]["path"]]
    assert "sequence shard" in " ".join(bad[manifest.shards[0]["path"]])


def test_records_without_sequences_say_how_to_get_them(synthetic_corpus, tmp_path):
    root, csv_path = synthetic_corpus
    build_records(root, tmp_path / "rec", corpus="csv", manifest=csv_path, features=FEATURES, n_folds=3, workers=1)
    manifest = RecordsManifest.load(tmp_path / "rec")
    assert "sequences" not in manifest.data["settings"] and "sequences" not in manifest.shards[0]
    with pytest.raises(RecordsError, match="--sequences log-mel"):
        sequence_dataset(manifest, folds=[0])


def test_build_records_cli_stores_sequences(synthetic_corpus, tmp_path):
    root, csv_path = synthetic_corpus
    result = CliRunner().invoke(main, ["build-records", str(root), "-o", str(tmp_path / "rec"), "--corpus", "csv",
                                       "--manifest", str(csv_path), "--segment-hop", "8", "--folds", "3",
                                       "--workers", "1", "--sequences", "log-mel"])
    assert result.exit_code == 0, result.output
    assert "sequences   log-mel frames, one example per utterance" in result.output
    settings = json.loads((tmp_path / "rec" / "manifest.json").read_text())["settings"]
    assert settings["sequences"] == "log-mel"
    bad = CliRunner().invoke(main, ["build-records", str(root), "-o", str(tmp_path / "x"), "--sequences", "mfcc"])
    assert bad.exit_code == 2 and "Invalid value for '--sequences': 'mfcc'" in bad.output and "log-mel" in bad.output


def test_length_buckets_use_every_utterance_once_with_less_padding(records):
    folds = [0, 1, 2]
    plain = list(sequence_dataset(records, folds=folds, batch_size=2, shuffle=True, seed=0))
    bucketed = list(sequence_dataset(records, folds=folds, batch_size=2, shuffle=True, seed=0, buckets=3))
    ids = sorted(i for x, _ in bucketed for i in x["utt"].numpy())
    assert ids == [u["index"] for u in records.utterances]

    def padding(batches):
        return sum(int((~x["mask"].numpy()).sum()) for x, _ in batches)

    assert padding(bucketed) < padding(plain)
    for x, _ in bucketed:  # the mask still marks each utterance's own frames
        for row, i in enumerate(x["utt"].numpy()):
            assert x["mask"].numpy()[row].sum() == records.utterances[i]["sequence_frames"]


def test_repeats_use_each_utterance_that_often(records):
    folds = [0, 1]
    rng = np.random.default_rng(0)
    repeats = rng.integers(0, 4, len(records.utterances))
    for buckets in (0, 3):
        ds = sequence_dataset(records, folds=folds, batch_size=3, shuffle=True, seed=1, buckets=buckets,
                              repeats=repeats)
        ids = np.concatenate([x["utt"].numpy() for x, _ in ds])
        expected = {u["index"]: repeats[u["index"]] for u in records.utterances if u["fold"] in folds}
        assert {i: int((ids == i).sum()) for i in expected} == expected and set(ids) <= set(expected)
    with pytest.raises(RecordsError, match=r"one count >= 0 per utterance.*Received: repeats of shape \(2,\)"):
        sequence_dataset(records, folds=folds, repeats=np.ones(2, np.int64))


def test_speaker_normalised_sequences_are_standard_per_speaker_from_their_own_frames(records):
    from emotion_refinery.records.speaker_norm import sequence_tables

    shift, scale = sequence_tables(records)
    seqs = _sequences(records)
    speakers = {u["speaker"] for u in records.utterances}
    assert len(speakers) > 1 and all(speakers)
    every_fold = sorted({u["fold"] for u in records.utterances})
    normalised = {}
    for x, _ in sequence_dataset(records, folds=every_fold, batch_size=4, normalize=(shift, scale)):
        for u, frames, mask in zip(x["utt"].numpy(), x["frames"].numpy(), x["mask"].numpy()):
            normalised[int(u)] = frames[mask]
    for speaker in speakers:
        rows = [u["index"] for u in records.utterances if u["speaker"] == speaker]
        # The table is the statistics of this speaker's own stored frames, and nobody else's.
        own = np.concatenate([seqs[i] for i in rows]).astype(np.float64)
        np.testing.assert_allclose(shift[rows], np.broadcast_to(own.mean(axis=0), shift[rows].shape), rtol=1e-4,
                                   atol=1e-4)
        z = np.concatenate([normalised[i] for i in rows]).astype(np.float64)
        np.testing.assert_allclose(z.mean(axis=0), 0, atol=5e-3)
        np.testing.assert_allclose(z.std(axis=0), np.sqrt(own.var(axis=0) / (own.var(axis=0) + 1e-3)), rtol=1e-2)
    # The lcw model's own input normalisation is then fitted on the normalised frames (mean ≈ 0).
    layer = fold_model(records, [0, 1], LCWConfig(speaker_norm=True), normalize=(shift, scale)).get_layer(
        "feature_normalization")
    assert np.abs(np.asarray(layer.mean)).max() < 0.2  # folds 0 and 1 hold part of each speaker
    plain = fold_model(records, [0, 1], LCWConfig()).get_layer("feature_normalization")
    assert np.abs(np.asarray(plain.mean)).max() > 1


@pytest.mark.slow  # runs openSMILE
def test_low_level_descriptor_sequences(synthetic_corpus, tmp_path):
    """`--sequences lld`: the publication's 32 frame features from openSMILE (run in a worker process)."""
    pytest.importorskip("opensmile")
    from emotion_refinery.data.audio import load
    from emotion_refinery.data.feature_config import LLD_COLUMNS

    root, csv_path = synthetic_corpus
    build_records(root, tmp_path / "rec", corpus="csv", manifest=csv_path, features=FEATURES, n_folds=3, workers=1,
                  sequences="lld")
    manifest = RecordsManifest.load(tmp_path / "rec")
    spec = manifest.sequence_spec
    assert (spec.n_features, spec.dtype) == (32, "float32") and len(LLD_COLUMNS) == 32
    assert manifest.verify() == {}
    seqs = _sequences(manifest)
    for u in manifest.utterances:
        x = seqs[u["index"]]
        n_samples = len(load(u["path"]))
        assert x.shape == (u["sequence_frames"], 32)
        assert abs(len(x) - (n_samples - 400) // 160 - 1) <= 1  # 25 ms frames every 10 ms
        assert np.isfinite(x).all()
        f0, voicing = x[:, LLD_COLUMNS.index("F0_sma")], x[:, LLD_COLUMNS.index("voiceProb_sma")]
        assert (f0 > 50).mean() > 0.2 and voicing.max() > 0.5  # the synthetic voices are voiced in part
        loud = x[:, LLD_COLUMNS.index("pcm_loudness_sma")]
        delta = x[:, LLD_COLUMNS.index("pcm_loudness_sma_de")]
        assert np.corrcoef(np.gradient(loud), delta)[0, 1] > 0.8  # the deltas are the descriptors' slope
    batches = list(sequence_dataset(manifest, folds=[0], batch_size=4))
    assert batches[0][0]["frames"].shape[-1] == 32
    model = fold_model(manifest, [1, 2], LCWConfig())  # the lcw model reads 32 features, not the Mel bands
    inputs = batches[0][0]
    probs = model.predict({"frames": inputs["frames"], "mask": inputs["mask"]}, verbose=0)
    assert probs.shape == (len(inputs["utt"]), len(manifest.classes))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_spectrogram_sequences_are_400_log_power_bins_of_10_hz(tmp_path):
    """`--sequences spectrogram`: MLEE's input, 40 ms Hamming frames every 10 ms, 1600-point DFT, 0-3990 Hz."""
    import csv

    from tests.conftest import tone, write_wav

    root = tmp_path / "corpus"
    freqs = {"a.wav": 440.0, "b.wav": 1230.0, "c.wav": 3000.0, "d.wav": 700.0}
    for i, (name, f) in enumerate(freqs.items()):
        write_wav(root / name, tone(f, 0.5 + 0.1 * i))
    with open(root / "m.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("path", "label"), ("a.wav", "x"), ("b.wav", "y"), ("c.wav", "x"), ("d.wav", "y")])
    build_records(root, tmp_path / "rec", corpus="csv", manifest=root / "m.csv", features=FEATURES, n_folds=2,
                  workers=1, sequences="spectrogram")
    manifest = RecordsManifest.load(tmp_path / "rec")
    assert (manifest.sequence_spec.n_features, manifest.sequence_spec.dtype) == (400, "float16")
    seqs = _sequences(manifest)
    for u in manifest.utterances:
        x = seqs[u["index"]]
        n_samples = round(u["duration"] * 16000)
        assert x.shape == (1 + (n_samples - 640) // 160, 400) == (u["sequence_frames"], 400)
        peak = np.bincount(x.astype(np.float32).argmax(axis=1)).argmax()
        assert peak == round(freqs[u["id"] + ".wav"] / 10)
    assert manifest.verify() == {}


@pytest.mark.slow  # runs openSMILE
def test_egemaps_sequences_are_the_baselines_functionals_as_one_frame(synthetic_corpus, tmp_path):
    """`--sequences egemaps`: each utterance's 88 eGeMAPSv02 functionals, the numbers `emorefine baseline`
    computes for it, stored as a one-frame sequence that the mlp backbone reads."""
    pytest.importorskip("opensmile")
    from emotion_refinery.decision.baseline import extract_features

    root, csv_path = synthetic_corpus
    build_records(root, tmp_path / "rec", corpus="csv", manifest=csv_path, features=FEATURES, n_folds=3, workers=1,
                  sequences="egemaps")
    manifest = RecordsManifest.load(tmp_path / "rec")
    assert (manifest.sequence_spec.n_features, manifest.sequence_spec.dtype) == (88, "float32")
    assert manifest.verify() == {}
    seqs = _sequences(manifest)
    utts = manifest.utterances
    assert all(seqs[u["index"]].shape == (1, 88) and u["sequence_frames"] == 1 for u in utts)
    expected = extract_features([u["path"] for u in utts], sr=manifest.features.sr, workers=1)
    np.testing.assert_allclose(np.stack([seqs[u["index"]][0] for u in utts]), expected, rtol=1e-6)
    model = fold_model(manifest, [1, 2], LCWConfig(backbone="mlp"))
    inputs = next(iter(sequence_dataset(manifest, folds=[0], batch_size=4)))[0]
    probs = model.predict({"frames": inputs["frames"], "mask": inputs["mask"]}, verbose=0)
    assert probs.shape == (len(inputs["utt"]), len(manifest.classes))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
