"""build-records end to end on tiny corpora: counts, layout, determinism, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from emotion_refinery.data import features as F
from emotion_refinery.data.audio import load
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import CorpusError, RecordsError
from emotion_refinery.records.build import build_records
from emotion_refinery.records.manifest import RecordsManifest
from tests.conftest import SR, tone, write_wav

HOP4 = FeatureConfig(segment_hop=4)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _build(corpus_dir, out, **kw):
    kw.setdefault("features", HOP4)
    kw.setdefault("n_folds", 3)
    kw.setdefault("workers", 1)
    kw.setdefault("shard_segments", 12)
    return build_records(corpus_dir, out, **kw)


def test_counts_layout_and_manifest(emodb_dir, tmp_path):
    result = _build(emodb_dir, tmp_path / "rec", corpus="emodb")
    m = RecordsManifest.load(tmp_path / "rec")
    assert result.status == "built" and m.classes[0] == "anger"
    expected = {p.stem: HOP4.n_segments(HOP4.n_frames(len(load(p)))) for p in emodb_dir.glob("*.wav")}
    assert {u["id"]: u["segments"] for u in m.utterances} == expected
    assert m.n_segments == sum(expected.values()) == sum(s["segments"] for s in m.shards)
    # Fold-major: shards in fold order, each holding one fold's utterances, global indices contiguous.
    assert [s["fold"] for s in m.shards] == sorted(s["fold"] for s in m.shards)
    first = 0
    for u in m.utterances:
        assert u["first_segment"] == first
        first += u["segments"]
    for s in m.shards:
        lo, hi = s["utterances"]
        assert {u["fold"] for u in m.utterances[lo:hi]} == {s["fold"]}
        assert s["first_segment"] == m.utterances[lo]["first_segment"]
    assert len(m.shards) > m.n_folds  # shard_segments=12 splits folds into several shards


def test_stored_segments_and_statistics_match_direct_computation(emodb_dir, tmp_path):
    _build(emodb_dir, tmp_path / "rec", corpus="emodb")
    m = RecordsManifest.load(tmp_path / "rec")
    direct = {}
    for u in m.utterances:
        frames = F.log_mel(load(u["path"])).astype(np.float16)
        expected = F.segment(frames, segment_frames=32, segment_hop=4).astype(np.float32)
        stored = m.read_utterance(u["id"])
        np.testing.assert_array_equal(stored, expected)
        direct.setdefault(u["fold"], []).append(stored)
    for fold in range(m.n_folds):
        others = np.concatenate([np.concatenate(v) for f, v in direct.items() if f != fold]).astype(np.float64)
        mean, var = m.normalization(exclude_folds=(fold,))
        np.testing.assert_allclose(mean, others.mean(axis=(0, 1)), rtol=1e-9)
        np.testing.assert_allclose(var, others.var(axis=(0, 1)), rtol=1e-6)


def test_build_is_deterministic_and_rerun_is_a_no_op(emodb_dir, tmp_path):
    _build(emodb_dir, tmp_path / "a", corpus="emodb")
    _build(emodb_dir, tmp_path / "b", corpus="emodb")
    a = _files(tmp_path / "a")
    assert a == _files(tmp_path / "b")
    again = _build(emodb_dir, tmp_path / "a", corpus="emodb")
    assert again.status == "up-to-date" and _files(tmp_path / "a") == a


@pytest.mark.slow
def test_parallel_workers_write_the_same_bytes(emodb_dir, tmp_path):
    _build(emodb_dir, tmp_path / "one", corpus="emodb", workers=1)
    _build(emodb_dir, tmp_path / "two", corpus="emodb", workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


class Crash(Exception):
    pass


@pytest.mark.parametrize("stage, after", [("extract", 3), ("write", 1), ("write", 4)])
def test_resume_after_crash_equals_uninterrupted_build(emodb_dir, tmp_path, stage, after):
    _build(emodb_dir, tmp_path / "clean", corpus="emodb")

    def crash(s, done, total):
        if s == stage and done >= after:
            raise Crash

    with pytest.raises(Crash):
        _build(emodb_dir, tmp_path / "rec", corpus="emodb", progress=crash)
    assert not (tmp_path / "rec" / "manifest.json").exists()
    (tmp_path / "rec" / "shards").mkdir(exist_ok=True)
    (tmp_path / "rec" / "shards" / "features-f00-00000-of-00002.tfrecord.tmp-999").write_bytes(b"half")
    with pytest.raises(RecordsError, match="interrupted build"):
        RecordsManifest.load(tmp_path / "rec")
    resumed = _build(emodb_dir, tmp_path / "rec", corpus="emodb")
    assert resumed.status == "resumed"
    assert _files(tmp_path / "rec") == _files(tmp_path / "clean")


def test_other_settings_and_foreign_folders_are_refused(emodb_dir, tmp_path):
    _build(emodb_dir, tmp_path / "rec", corpus="emodb")
    with pytest.raises(RecordsError, match="segment_hop: 4 → 2"):
        _build(emodb_dir, tmp_path / "rec", corpus="emodb", features=FeatureConfig(segment_hop=2))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RecordsError, match="not emorefine records"):
        _build(emodb_dir, tmp_path / "other", corpus="emodb")


def test_bad_inputs_are_skipped_with_reasons(emodb_dir, tmp_path):
    write_wav(emodb_dir / "09a01Wa.wav", tone(300, 0.2))  # shorter than one segment
    (emodb_dir / "09a01La.wav").write_bytes(b"RIFF....WAVEfmt garbage")  # undecodable
    soundfile.write(emodb_dir / "09a01Fa.wav", np.zeros(0, np.float32), SR)  # empty
    y = tone(300, 0.6)
    y[100] = np.nan
    soundfile.write(emodb_dir / "09a01Na.wav", y, SR, subtype="FLOAT")  # NaN
    write_wav(emodb_dir / "09a01Xa.wav", tone(300, 0.6))  # unknown emotion letter
    soundfile.write(emodb_dir / "03a01Wa.flac", tone(300, 0.6), SR)  # duplicate id of 03a01Wa.wav
    write_wav(emodb_dir / "10a01Wa.wav", np.stack([tone(300, 0.7, sr=44100)] * 2, axis=1), sr=44100)  # fine
    result = _build(emodb_dir, tmp_path / "rec", corpus="emodb")
    reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in result.skipped}
    assert "too short" in reasons["09a01Wa.wav"]
    assert "cannot decode" in reasons["09a01La.wav"]
    assert "empty" in reasons["09a01Fa.wav"]
    assert "NaN" in reasons["09a01Na.wav"]
    assert "X" in reasons["09a01Xa.wav"]
    assert "duplicate" in reasons["03a01Wa.wav"] or "duplicate" in reasons["03a01Wa.flac"]
    assert len(reasons) == 6
    ids = {u["id"] for u in RecordsManifest.load(tmp_path / "rec").utterances}
    assert "10a01Wa" in ids and len(ids) == 13


def test_csv_corpus_with_a_missing_file(synthetic_corpus, tmp_path):
    root, manifest = synthetic_corpus
    csv = tmp_path / "m.csv"
    csv.write_text(manifest.read_text() + "wav/missing.wav,anger,s1\n")
    result = _build(root, tmp_path / "rec", manifest=csv, n_folds=2)
    assert [s["reason"] for s in result.skipped] == ["file not found"]
    m = RecordsManifest.load(tmp_path / "rec")
    assert m.classes == ["anger", "happiness", "neutral", "sadness"] and len(m.utterances) == 16
    assert {u["speaker"] for u in m.utterances} == {"s1", "s2", "s3", "s4"}
    assert all(u["text"] is None for u in m.utterances)  # the manifest has no text column


def test_nothing_usable_is_an_error_and_leaves_nothing(tmp_path):
    (tmp_path / "c").mkdir()
    write_wav(tmp_path / "c" / "03a01Wa.wav", tone(300, 0.1))
    with pytest.raises(RecordsError, match="No usable utterance"):
        _build(tmp_path / "c", tmp_path / "rec", corpus="emodb")
    assert not (tmp_path / "rec").exists()


def test_missing_or_empty_corpus_folder_writes_nothing(tmp_path):
    with pytest.raises(CorpusError, match="nope"):
        _build(tmp_path / "nope", tmp_path / "rec")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="empty"):
        _build(tmp_path / "empty", tmp_path / "rec")
    assert not (tmp_path / "rec").exists()


def test_verify_finds_a_flipped_byte(emodb_dir, tmp_path):
    _build(emodb_dir, tmp_path / "rec", corpus="emodb")
    m = RecordsManifest.load(tmp_path / "rec")
    assert m.verify() == {}
    shard = m.shard_path(m.shards[2])
    data = bytearray(shard.read_bytes())
    data[100] ^= 1
    shard.write_bytes(bytes(data))
    bad = m.verify()
    assert list(bad) == [m.shards[2]["path"]]


def test_speaker_folds_recorded_in_manifest(emodb_dir, tmp_path):
    _build(emodb_dir, tmp_path / "rec", corpus="emodb", folds_by="speaker", n_folds=3)
    data = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert data["folds"]["by"] == "speaker" and data["folds"]["speakers_in_several_folds"] == 0
    assert {u["speaker"]: u["fold"] for u in data["utterances"]} == {"03": 0, "08": 1, "11": 2}
    # The text of each utterance is stored beside its speaker: fixture names 03a01Wa … carry a01 … a04.
    assert {u["id"]: u["text"] for u in data["utterances"]} == {u["id"]: u["id"][2:5] for u in data["utterances"]}
    assert {u["text"] for u in data["utterances"]} == {"a01", "a02", "a03", "a04"}


def _damage(path, how):
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "last byte":
        path.write_bytes(data[:-1])
    elif how == "flipped byte":
        path.write_bytes(data[:200] + bytes([data[200] ^ 1]) + data[201:])
    elif how == "old format":  # a cache as earlier versions wrote it: .npy + sample count, no checksum
        path.write_bytes(data[:-4])


@pytest.mark.parametrize("how", ["empty", "half", "last byte", "flipped byte", "old format"])
@pytest.mark.parametrize("stage, after", [("extract", 3), ("write", 1)])
def test_a_damaged_frame_cache_is_recomputed_on_resume(emodb_dir, tmp_path, how, stage, after):
    _build(emodb_dir, tmp_path / "clean", corpus="emodb")

    def crash(s, done, total):
        if s == stage and done >= after:
            raise Crash

    with pytest.raises(Crash):
        _build(emodb_dir, tmp_path / "rec", corpus="emodb", progress=crash)
    caches = sorted((tmp_path / "rec" / ".partial" / "frames").glob("*.npy"))
    assert len(caches) >= 3 and not list((tmp_path / "rec" / ".partial").rglob("*.tmp-*"))
    _damage(caches[1], how)
    resumed = _build(emodb_dir, tmp_path / "rec", corpus="emodb")
    assert resumed.status == "resumed" and resumed.skipped == []
    assert _files(tmp_path / "rec") == _files(tmp_path / "clean")


def test_frame_cache_holds_frames_sample_count_and_checksum(tmp_path):
    from emotion_refinery.data.extraction import cached_frames, extract_frames, read_frames

    wav = write_wav(tmp_path / "a.wav", tone(300, 0.7))
    cache = tmp_path / "c" / "a.npy"
    n_samples, n_frames = extract_frames(wav, str(cache), HOP4.to_dict())
    frames, stored = read_frames(cache)
    assert stored == n_samples == int(0.7 * SR) and frames.shape == (n_frames, HOP4.n_mels)
    assert frames.dtype == np.float16 and cached_frames(cache, HOP4.to_dict()) == (n_samples, n_frames)
    # Another dtype or Mel count than the settings ask for is as bad as a damaged file: removed, recomputed.
    assert cached_frames(cache, FeatureConfig(dtype="float32").to_dict()) is None and not cache.exists()
