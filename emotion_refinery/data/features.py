"""Log-Mel frames and fixed-length segments.

The frames follow the source papers (and VGGish): a periodic Hann window of
``win_length`` samples every ``hop_length`` samples, zero-padded to ``n_fft`` for
the FFT, without centring, so ``N`` samples give ``1 + (N - win_length) // hop_length``
frames; power spectrum → HTK Mel filterbank (unnormalised triangles) → decibels
(``10·log10(max(S, amin))``, finite on digital silence).
"""

from __future__ import annotations

import functools

import librosa
import numpy as np

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import AudioError

__all__ = ["log_mel", "frames_of", "segment", "segments_of", "mel_basis", "segment_starts", "segment_step"]


@functools.lru_cache(maxsize=8)
def mel_basis(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool) -> np.ndarray:
    """Mel filterbank, shape ``(n_mels, 1 + n_fft // 2)``, triangles of peak 1 (no area norm)."""
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=None)
    basis.setflags(write=False)
    return basis


def log_mel(
    y: np.ndarray,
    *,
    sr: int = 16000,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    window: str = "hann",
    n_mels: int = 64,
    fmin: float = 125.0,
    fmax: float = 7500.0,
    htk: bool = True,
    amin: float = 1e-10,
) -> np.ndarray:
    """Log-Mel power frames of a mono signal.

    Args:
        y: mono signal at ``sr`` Hz, shape ``(n_samples,)``.

    Returns:
        float32 array of shape ``(1 + (n_samples - win_length) // hop_length, n_mels)``
        in dB; ``(0, n_mels)`` if the signal is shorter than one window.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise AudioError(f"log_mel expects a mono signal of shape (n_samples,). Received: shape={y.shape}")
    if y.shape[0] < win_length:
        return np.zeros((0, n_mels), dtype=np.float32)
    # librosa centres a short window inside the n_fft frame; padding (n_fft - win_length) / 2
    # samples on each side makes frame t cover exactly y[t*hop : t*hop + win_length] under the
    # window, so frames are counted by the window length while librosa's STFT does the work.
    left = (n_fft - win_length) // 2
    padded = np.pad(y, (left, n_fft - win_length - left))
    stft = librosa.stft(
        padded, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=False
    )
    power = np.abs(stft) ** 2  # (1 + n_fft // 2, n_frames)
    mel = mel_basis(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk) @ power
    return librosa.power_to_db(mel, ref=1.0, amin=amin, top_db=None).T.astype(np.float32, copy=False)


def segment(frames: np.ndarray, *, segment_frames: int = 32, segment_hop: int = 1) -> np.ndarray:
    """Cut frames into overlapping segments.

    Args:
        frames: shape ``(n_frames, n_mels)``.

    Returns:
        A read-only strided view of shape ``(1 + (n_frames - segment_frames) // segment_hop,
        segment_frames, n_mels)``; ``(0, segment_frames, n_mels)`` if there are fewer frames
        than one segment.
    """
    n_frames, n_mels = frames.shape
    if n_frames < segment_frames:
        return np.zeros((0, segment_frames, n_mels), dtype=frames.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(frames, segment_frames, axis=0)
    # sliding_window_view puts the window axis last: (n, n_mels, segment_frames) → (n, segment_frames, n_mels)
    return windows[::segment_hop].transpose(0, 2, 1)


def frames_of(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Signal at ``config.sr`` → log-Mel frames ``(n_frames, n_mels)`` float32, with ``config``'s settings."""
    return log_mel(y, sr=config.sr, n_fft=config.n_fft, win_length=config.win_length, hop_length=config.hop_length,
                   window=config.window, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, htk=config.htk,
                   amin=config.amin)


def segments_of(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Signal at ``config.sr`` → segments ``(n_segments, segment_frames, n_mels)`` in float32."""
    return segment(frames_of(y, config), segment_frames=config.segment_frames, segment_hop=config.segment_hop)


def segment_starts(n: int, config: FeatureConfig) -> np.ndarray:
    """Start time in seconds of segments ``0 … n-1`` of an utterance, float64 ``(n,)``: segment ``j`` starts at
    ``j · segment_hop · hop_length / sr``."""
    return np.arange(n) * config.segment_hop * config.hop_length / config.sr


def segment_step(config: FeatureConfig) -> float:
    """Seconds between the starts of consecutive segments (:func:`segment_starts`)."""
    return float(segment_starts(2, config)[1])
