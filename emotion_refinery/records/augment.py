"""Training-time augmentation of log-Mel segment batches, as tf.data map functions.

Each augmentation is ``fn(x, y, seed) -> (x, y)`` on a float32 batch ``x`` of shape
``(batch, n_frames, n_mels)`` (dB, before the model's normalisation), targets ``y`` of shape
``(batch, K)``, and a stateless seed (int64, shape ``(2,)``); :func:`make_augment` chains the ones a
run asks for. Stateless random ops keep a CPU run reproducible (and a resumed run equal to an
uninterrupted one) while every epoch draws new masks.

- SpecAugment-style masking (Park et al., 2019): ``time_masks`` spans of up to ``time_width``
  frames and ``freq_masks`` bands of up to ``freq_width`` Mel bands per segment are set to the
  segment's mean.
- Frequency shift: every segment's Mel bands move by a random whole number of bands in
  ``[-max_bands, max_bands]`` (edge bands repeated). On the Mel scale a vocal-tract-length warp
  (VTLP, Jaitly & Hinton, 2013) of ±10 % is close to a shift of about ±2 of 64 bands between 125 Hz
  and 7.5 kHz: training sees speakers with shorter and longer vocal tracts than the corpus has.
- mixup (Zhang et al., 2018): each segment and its targets are mixed with those of another segment
  of the batch, ``λ ~ Beta(α, α)``.

:func:`speed_perturb` works on one utterance's whole frame sequence instead (MLEE's augmentation).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["spec_augment", "freq_shift", "mixup", "make_augment", "speed_perturb"]


def _band_mask(seed, shape, length: int, n_masks: int, width: int):
    """``(batch, length)`` bool, True inside any of ``n_masks`` random spans of 0…``width`` units."""
    batch = shape[0]
    positions = tf.range(length)[None, None, :]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    w = tf.random.stateless_uniform((batch, n_masks, 1), seeds[0], 0, width + 1, dtype=tf.int32)
    start = tf.random.stateless_uniform((batch, n_masks, 1), seeds[1], 0, tf.int32.max, dtype=tf.int32)
    start = start % tf.maximum(length - w + 1, 1)
    return tf.reduce_any((positions >= start) & (positions < start + w), axis=1)


def spec_augment(*, time_masks: int = 2, time_width: int = 4, freq_masks: int = 2, freq_width: int = 8):
    """Mask random frame spans and Mel bands of every segment with the segment's mean."""

    def fn(x, y, seed):
        shape = tf.shape(x)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        t = _band_mask(seeds[0], shape, x.shape[1], time_masks, time_width)  # (b, frames)
        f = _band_mask(seeds[1], shape, x.shape[2], freq_masks, freq_width)  # (b, n_mels)
        masked = t[:, :, None] | f[:, None, :]
        mean = tf.reduce_mean(x, axis=(1, 2), keepdims=True)
        return tf.where(masked, mean, x), y

    return fn


def freq_shift(max_bands: int):
    """Shift every segment's Mel bands by a random integer in ``[-max_bands, max_bands]``, repeating the edge band."""

    def fn(x, y, seed):
        n_mels = x.shape[2]
        shift = tf.random.stateless_uniform((tf.shape(x)[0], 1), seed, -max_bands, max_bands + 1, dtype=tf.int32)
        source = tf.clip_by_value(tf.range(n_mels)[None, :] - shift, 0, n_mels - 1)  # (batch, n_mels)
        return tf.gather(x, source, axis=2, batch_dims=1), y

    return fn


def mixup(alpha: float):
    """Mix each example with a random partner of the same batch, ``λ ~ Beta(alpha, alpha)``."""

    def fn(x, y, seed):
        batch = tf.shape(x)[0]
        seeds = tf.random.experimental.stateless_split(seed, 3)
        g1 = tf.random.stateless_gamma((batch,), seeds[0], alpha)
        g2 = tf.random.stateless_gamma((batch,), seeds[1], alpha)
        lam = g1 / (g1 + g2)
        partner = tf.argsort(tf.random.stateless_uniform((batch,), seeds[2]))
        lam_x = lam[:, None, None]
        x = lam_x * x + (1 - lam_x) * tf.gather(x, partner)
        lam_y = tf.cast(lam, y.dtype)[:, None]
        y = lam_y * y + (1 - lam_y) * tf.gather(y, partner)
        return x, y

    return fn


def make_augment(*, spec_augment_masks: bool = False, freq_shift_bands: int = 0, mixup_alpha: float = 0.0):
    """The chain of a run's augmentations as ``fn(x, y, seed)``, or ``None`` when there is none."""
    steps = []
    if freq_shift_bands > 0:
        steps.append(freq_shift(freq_shift_bands))
    if spec_augment_masks:
        steps.append(spec_augment())
    if mixup_alpha > 0:
        steps.append(mixup(mixup_alpha))
    if not steps:
        return None

    def fn(x, y, seed):
        for i, step in enumerate(steps):
            x, y = step(x, y, tf.random.experimental.stateless_fold_in(seed, i))
        return x, y

    return fn


def speed_perturb(frames, factor: float):
    """One utterance's linear-frequency spectrogram frames ``(n_frames, n_bins)`` as if its audio had been
    played ``factor`` times faster (sox ``speed``, Ko et al., 2015: tempo and pitch both scale): frame ``t``
    of the result is frame ``t · factor`` of the input and bin ``f`` is bin ``f / factor``, by bilinear
    interpolation; bins above the input's highest frequency repeat its last bin. Returns frames in the
    input's dtype, ``max(1, round(n_frames / factor))`` of them. An approximation of perturbing the audio: the
    analysis window keeps its length in seconds, so each frame's spectral smearing is the original's.
    """
    x = tf.cast(frames, tf.float32)
    n, bins = tf.shape(x)[0], x.shape[-1]
    length = tf.maximum(1, tf.cast(tf.round(tf.cast(n, tf.float32) / factor), tf.int32))
    wide = int(round(bins * factor))  # bins of the stretched frequency axis before it is cut back to ``bins``
    y = tf.image.resize(x[..., tf.newaxis], (length, wide), method="bilinear", antialias=False)[..., 0]
    if wide >= bins:
        y = y[:, :bins]
    else:
        y = tf.concat([y, tf.repeat(y[:, -1:], bins - wide, axis=1)], axis=1)
    return tf.cast(y, frames.dtype)
