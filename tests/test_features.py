"""Audio decoding and log-Mel features against an independent numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from emotion_refinery.data import audio, features
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import AudioError, EmorefineError
from tests.conftest import SR, tone, write_wav


def reference_log_mel(y, sr=16000, n_fft=512, win=400, hop=160, n_mels=64, fmin=125.0, fmax=7500.0):
    """Written from the definitions, sharing no code with the package."""
    n_frames = 1 + (len(y) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    spec = np.abs(np.fft.rfft(y[idx].astype(np.float64) * window, n=n_fft)) ** 2
    hz_to_mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731  HTK
    mel_to_hz = lambda m: 700.0 * (np.exp(m / 1127.0) - 1.0)  # noqa: E731
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, mid, hi = edges[m:m + 3]
        fb[m] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
    return 10 * np.log10(np.maximum(spec @ fb.T, 1e-10))


def test_log_mel_matches_independent_implementation():
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(SR) + tone(440, 1.0)).astype(np.float32)
    ours = features.log_mel(y)
    ref = reference_log_mel(y)
    assert ours.shape == ref.shape == (1 + (SR - 400) // 160, 64)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-3)


@pytest.mark.parametrize("n, expected", [(399, 0), (400, 1), (559, 1), (560, 2), (16000, 98), (5360, 32)])
def test_frame_count_is_framed_by_the_window(n, expected):
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    assert features.log_mel(y).shape == (expected, 64)
    assert FeatureConfig().n_frames(n) == expected


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_tone_peaks_in_its_mel_band(freq):
    frames = features.log_mel(tone(freq, 0.5))
    centres = 700.0 * (np.exp(np.linspace(1127 * np.log(1 + 125 / 700), 1127 * np.log(1 + 7500 / 700), 66)[1:-1]
                              / 1127.0) - 1.0)
    assert abs(int(np.argmax(frames.mean(axis=0))) - int(np.argmin(np.abs(centres - freq)))) <= 1


def test_silence_stays_finite():
    frames = features.log_mel(np.zeros(SR, dtype=np.float32))
    assert np.isfinite(frames).all()
    assert frames.max() == pytest.approx(-100.0)


def test_segments_are_windows_of_frames():
    frames = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    segs = features.segment(frames, segment_frames=32, segment_hop=3)
    assert segs.shape == (1 + (50 - 32) // 3, 32, 4)
    for j in range(len(segs)):
        np.testing.assert_array_equal(segs[j], frames[3 * j:3 * j + 32])
    assert features.segment(frames[:31], segment_frames=32, segment_hop=1).shape == (0, 32, 4)


def test_segment_count_formula():
    config = FeatureConfig(segment_hop=1)
    n = 2 * SR
    segs = features.segments_of(tone(500, 2.0), config)
    assert len(segs) == config.n_segments(config.n_frames(n)) == 1 + (1 + (n - 400) // 160 - 32)
    assert config.min_samples == 5360 and config.segment_seconds == pytest.approx(0.335)


def test_stereo_8bit_44k_decode_to_16k_mono(tmp_path):
    y = tone(1000, 1.0, sr=44100)
    stereo = np.stack([y, y], axis=1)
    path = write_wav(tmp_path / "s.wav", stereo, sr=44100, subtype="PCM_U8")
    decoded = audio.load(path, sr=SR)
    assert decoded.ndim == 1 and abs(len(decoded) - SR) <= 1
    peak = np.argmax(features.log_mel(decoded).mean(axis=0))
    assert peak == np.argmax(features.log_mel(tone(1000, 1.0)).mean(axis=0))


def test_flac_and_wav_decode_identically(tmp_path):
    y = tone(700, 0.5)
    a = audio.load(write_wav(tmp_path / "a.wav", y), sr=SR)
    pcm, _ = soundfile.read(tmp_path / "a.wav", dtype="int16")
    soundfile.write(tmp_path / "a.flac", pcm, SR, subtype="PCM_16")
    np.testing.assert_array_equal(a, audio.load(tmp_path / "a.flac", sr=SR))


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"RIFF not really a wave file"), "cannot decode"),
    (lambda p: soundfile.write(p, np.zeros(0, np.float32), SR), "empty"),
    (lambda p: soundfile.write(p, np.array([0.1, np.nan, 0.2] * 100, np.float32), SR, subtype="FLOAT"), "NaN"),
])
def test_bad_audio_is_refused_with_a_reason(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message):
        audio.load(path)


def test_feature_config_validates():
    with pytest.raises(EmorefineError, match="Received: segment_hop=0"):
        FeatureConfig(segment_hop=0)
    with pytest.raises(EmorefineError, match="dtype='int8'"):
        FeatureConfig(dtype="int8")
    with pytest.raises(EmorefineError, match="fmax=9000"):
        FeatureConfig(fmax=9000)
    assert FeatureConfig.from_dict(FeatureConfig(segment_hop=3).to_dict()).segment_hop == 3
