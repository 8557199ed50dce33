"""Decoding: any file soundfile reads → mono float32 at the target rate.

Decoding uses soundfile (libsndfile: WAV, FLAC, OGG, …); resampling uses soxr's
high-quality converter. tensorflow-io is not used: its last release does not load
with TensorFlow 2.21.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import soundfile
import soxr

from emotion_refinery.errors import AudioError, EmorefineError

__all__ = ["AUDIO_EXTENSIONS", "load", "stream", "to_mono", "resample", "unreadable", "from_array"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average the channels of ``y`` (shape ``(n,)`` or ``(n, channels)``) → ``(n,)``."""
    if y.ndim == 1:
        return y
    return y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono signal with soxr (quality ``HQ``, librosa's default)."""
    if orig_sr == target_sr:
        return y
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def unreadable(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be opened at all (no such file, a folder, no permission), or ``None``."""
    try:
        if not os.path.exists(path):
            return "no such file"
        if os.path.isdir(path):
            return "a folder, not an audio file"
        with open(path, "rb"):
            pass
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    return None


def load(path: str | os.PathLike, *, sr: int = 16000) -> np.ndarray:
    """Decode ``path`` to a mono float32 signal at ``sr`` Hz, shape ``(n_samples,)``.

    Raises:
        AudioError: the file cannot be decoded, holds no samples, or holds NaN or
            infinite samples. The message says which.
    """
    try:
        y, file_sr = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile reports every decoding failure as a generic error
        raise AudioError(unreadable(path) or f"cannot decode audio: {e}") from e
    if y.shape[0] == 0:
        raise AudioError(_EMPTY)
    _check_finite(y)
    return resample(to_mono(y), orig_sr=file_sr, target_sr=sr)


def stream(path: str | os.PathLike, *, sr: int = 16000, block_seconds: float = 30.0,
           min_block: int = 1) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block: mono float32 at ``sr`` Hz, about ``block_seconds`` per block (at
    least ``min_block`` input samples), resampled by soxr's streaming converter; the last block may be
    empty. For long recordings, whose whole signal need not be held in memory.

    Raises:
        AudioError: as :func:`load`, when the block that shows the fault is read.
    """
    try:
        sf = soundfile.SoundFile(os.fspath(path))
    except Exception as e:
        raise AudioError(unreadable(path) or f"cannot decode audio: {e}") from e
    with sf:
        if sf.frames == 0:
            raise AudioError(_EMPTY)
        resampler = None if sf.samplerate == sr else soxr.ResampleStream(sf.samplerate, sr, 1, dtype="float32",
                                                                         quality="HQ")
        blocks = sf.blocks(blocksize=max(int(block_seconds * sf.samplerate), min_block), dtype="float32",
                           always_2d=True)
        done = False
        while not done:
            try:
                block = next(blocks)
            except StopIteration:
                block, done = np.zeros((0, sf.channels), np.float32), True
            except Exception as e:
                raise AudioError(f"cannot decode audio: {e}") from e
            _check_finite(block)
            y = to_mono(block)
            yield y if resampler is None else resampler.resample_chunk(y, last=done)


def from_array(y, *, sr: int | None, target_sr: int) -> np.ndarray:
    """A signal given as an array, ``(n,)`` or ``(n, channels)`` at ``sr`` Hz → mono float32 at ``target_sr``.

    Raises:
        EmorefineError: ``sr`` is missing.
        AudioError: the array is empty, of another shape, or holds NaN or infinite samples.
    """
    if sr is None:
        raise EmorefineError(f"Received: an array without sr; pass its sample rate (sr={target_sr} needs no "
                             "resampling)")
    array = np.asarray(y, dtype=np.float32)
    mono = to_mono(array) if array.ndim == 2 else array
    if mono.ndim != 1 or not len(mono):
        raise AudioError(f"expected samples of shape (n,) or (n, channels). Received: shape={np.shape(y)}")
    _check_finite(mono)
    return resample(mono, orig_sr=int(sr), target_sr=target_sr)


_EMPTY = "empty audio: the file holds no samples"


def _check_finite(y: np.ndarray) -> None:
    if not np.isfinite(y).all():
        raise AudioError("the audio holds NaN or infinite samples")
