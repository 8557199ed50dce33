"""Training-time augmentation of log-Mel segment batches, as tf.data map functions.

Each augmentation is ``fn(x, y, seed) -> (x, y)`` on a float32 batch ``x`` of shape
``(batch, n_frames, n_mels)`` (dB, before the model's normalisation), targets ``y`` of shape
``(batch, K)``, and a stateless seed (int64, shape ``(2,)``); :func:`make_augment` chains the ones a
run asks for. Stateless random ops keep a CPU run reproducible (and a resumed run equal to an
uninterrupted one) while every epoch draws new masks.

- SpecAugment-style masking (Park et al., 2019): ``time_masks`` spans of up to ``time_width``
  frames and ``freq_masks`` bands of up to ``freq_width`` Mel bands per segment are set to the
  segment's mean.
- mixup (Zhang et al., 2018): each segment and its targets are mixed with those of another segment
  of the batch, ``λ ~ Beta(α, α)``.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["spec_augment", "mixup", "make_augment"]


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


def make_augment(*, spec_augment_masks: bool = False, mixup_alpha: float = 0.0):
    """The chain of a run's augmentations as ``fn(x, y, seed)``, or ``None`` when there is none."""
    steps = []
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
