"""Feature settings and named presets.

:class:`FeatureConfig` holds every setting that decides the stored segments, in
librosa's vocabulary. :data:`PRESETS` maps a preset name to the settings of the
source papers for that corpus; command-line flags override a preset field by field.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

from emotion_refinery.errors import EmorefineError
from tf_records.schema import DTYPES

__all__ = ["FeatureConfig", "Preset", "PRESETS", "get_preset", "SEQUENCE_FEATURES", "EGEMAPS", "EGEMAPS_FUNCTIONALS",
           "LLD_COLUMNS", "SPECTROGRAM", "sequence_layout", "SEGMENT_SOURCES", "LCW_UPDATES"]


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Log-Mel segment settings (defaults: the source papers).

    An utterance of ``N`` samples at ``sr`` has ``1 + (N - win_length) // hop_length``
    frames (framing by the window, not by ``n_fft``) and
    ``1 + (n_frames - segment_frames) // segment_hop`` segments of shape
    ``(segment_frames, n_mels)``.
    """

    sr: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    window: str = "hann"
    n_mels: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    htk: bool = True
    amin: float = 1e-10
    segment_frames: int = 32
    segment_hop: int = 1
    dtype: str = "float16"

    def __post_init__(self) -> None:
        positive = ("sr", "n_fft", "win_length", "hop_length", "n_mels", "segment_frames", "segment_hop")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EmorefineError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if self.win_length > self.n_fft:
            raise EmorefineError(
                f"win_length must not exceed n_fft={self.n_fft}. Received: win_length={self.win_length}"
            )
        if not 0 <= self.fmin < self.fmax <= self.sr / 2:
            raise EmorefineError(
                f"Expected 0 <= fmin < fmax <= sr/2 = {self.sr / 2}. Received: fmin={self.fmin}, fmax={self.fmax}"
            )
        if self.dtype not in DTYPES:
            raise EmorefineError(f"Received: dtype={self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.amin <= 0:
            raise EmorefineError(f"amin must be positive. Received: amin={self.amin!r}")

    @property
    def min_samples(self) -> int:
        """Fewest samples (at ``sr``) that give one whole segment."""
        return self.win_length + (self.segment_frames - 1) * self.hop_length

    @property
    def segment_seconds(self) -> float:
        """Duration one segment covers, in seconds (0.335 s with the defaults)."""
        return self.min_samples / self.sr

    def n_frames(self, n_samples: int) -> int:
        """Frames of an utterance of ``n_samples`` samples at ``sr`` (0 if shorter than a window)."""
        if n_samples < self.win_length:
            return 0
        return 1 + (n_samples - self.win_length) // self.hop_length

    def n_segments(self, n_frames: int) -> int:
        """Segments cut from ``n_frames`` frames (0 if fewer than ``segment_frames``)."""
        if n_frames < self.segment_frames:
            return 0
        return 1 + (n_frames - self.segment_frames) // self.segment_hop

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise EmorefineError(f"Unknown feature settings: {unknown}; expected a subset of {sorted(names)}")
        return cls(**d)

    def replace(self, **changes: Any) -> FeatureConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclasses.dataclass(frozen=True)
class Preset:
    """Settings for one corpus protocol, shared by ``build-records`` and ``refine``.

    Attributes:
        features: the segment settings ``build-records`` stores.
        n_folds: cross-validation folds of ``build-records``.
        training: the refine settings (fields of ``RefineConfig``) this preset sets; the others
            keep their defaults.
    """

    name: str
    description: str
    features: FeatureConfig = FeatureConfig()
    n_folds: int = 10
    training: Mapping[str, Any] = dataclasses.field(default_factory=dict)


PRESETS: Mapping[str, Preset] = types.MappingProxyType({
    p.name: p
    for p in (
        Preset("emodb", "Emo-DB as in the papers: 1-frame (10 ms) segment hop, 10 folds, 12 epochs",
               FeatureConfig(segment_hop=1), training={"epochs": 12, "bn_momentum": 0.99}),
        Preset("savee", "SAVEE as in the papers: 1-frame segment hop, 10 folds, 8 epochs",
               FeatureConfig(segment_hop=1), training={"epochs": 8, "bn_momentum": 0.99}),
        Preset("casia", "CASIA as in the papers: 3-frame (30 ms) segment hop, 10 folds, 20 epochs",
               FeatureConfig(segment_hop=3), training={"epochs": 20, "bn_momentum": 0.99}),
        Preset("ravdess", "RAVDESS (not in the papers): 3-frame segment hop, 10 folds, 12 epochs",
               FeatureConfig(segment_hop=3), training={"epochs": 12, "bn_momentum": 0.99}),
        Preset("tess", "TESS (not in the papers): 3-frame segment hop, 10 folds, 12 epochs",
               FeatureConfig(segment_hop=3), training={"epochs": 12, "bn_momentum": 0.99}),
        Preset("fast", "CPU-sized work: 8-frame (80 ms) segment hop, 10 folds, 6 epochs, BN momentum 0.9",
               FeatureConfig(segment_hop=8), training={"epochs": 6, "bn_momentum": 0.9}),
        Preset("cpu", "2-core CPUs: the papers' 1-frame-hop records; refine trains round 0 only (--rounds N adds "
                      "refined rounds), the tcnn backbone on every "
                      "4th segment for 5 epochs on frequency-shifted bands with no early-stopping fold (all K - 1 "
                      "training folds), predicts every segment; per "
                      "split, speaker normalisation, the utterance decision rule and the round are chosen on the "
                      "other folds; refined rounds learn from each split's own previous model (self targets, no leak)",
               FeatureConfig(segment_hop=1),
               training={"rounds": 1, "backbone": "tcnn", "train_stride": 4, "epochs": 5, "min_epochs": 2,
                         "patience": 2, "bn_momentum": 0.9, "speaker_norm": "auto", "freq_shift": 2,
                         "utterance_classifier": "auto", "targets": "self", "early_stopping": "none"}),
    )
})


def get_preset(name: str) -> Preset:
    """Look a preset up by name; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise EmorefineError(
            f"Received: preset={name!r}; expected one of {', '.join(PRESETS)}"
        ) from None


# --------------------------------------------------------------------------- utterance-level frame features

_LLDS = ("pcm_loudness_sma", *(f"mfcc_sma[{i}]" for i in range(1, 13)), "pcm_zcr_sma", "voiceProb_sma", "F0_sma")
#: The 32 frame features of ``--sequences lld``: openSMILE's emobase low-level descriptors (25 ms frames,
#: 10 ms hop) that the LC+W publication lists — loudness, MFCC 1–12, zero-crossing rate, voicing
#: probability, F0 — and their deltas (openSMILE's own, emobase ``LowLevelDescriptors_Deltas``).
LLD_COLUMNS = (*_LLDS, *(c.replace("_sma", "_sma_de") for c in _LLDS))

#: The openSMILE feature set of ``emorefine baseline`` and ``--sequences egemaps``, and its functionals per utterance.
EGEMAPS = "eGeMAPSv02"
EGEMAPS_FUNCTIONALS = 88

#: ``build-records --sequences`` choices → what the sequence shards hold.
SEQUENCE_FEATURES: Mapping[str, str] = types.MappingProxyType({
    "log-mel": "the log-Mel frames the segments are cut from (n_mels features, the segments' dtype)",
    "lld": f"{len(LLD_COLUMNS)} openSMILE emobase low-level descriptors and deltas per 10 ms (float32; "
           "needs the [baseline] extra)",
    "spectrogram": "the MLEE input: log power spectrum, 400 bins of 10 Hz from 0 to 3990 Hz per 10 ms "
                   "(40 ms Hamming window, 1600-point DFT; float16)",
    "egemaps": f"the baseline's inputs: the {EGEMAPS_FUNCTIONALS} {EGEMAPS} functionals of the whole utterance as "
               "one frame (float32; needs the [baseline] extra), for the mlp backbone on small corpora",
})

#: Where a round's training segments come from (``refine --segments-from``): the segment shards, or cut on the
#: fly from the sequence shards.
SEGMENT_SOURCES = ("segments", "sequences")

#: ``--sequences spectrogram``: window and DFT length in samples at 16 kHz, and the bins kept.
SPECTROGRAM = types.MappingProxyType({"win_length": 640, "n_fft": 1600, "hop_length": 160, "bins": 400})


def sequence_layout(kind: str, features: FeatureConfig) -> tuple[int, str]:
    """``(n_features, dtype)`` of the sequence frames of ``kind`` (a key of :data:`SEQUENCE_FEATURES`)."""
    if kind == "log-mel":
        return features.n_mels, features.dtype
    if kind == "lld":
        return len(LLD_COLUMNS), "float32"
    if kind == "spectrogram":
        return SPECTROGRAM["bins"], "float16"
    if kind == "egemaps":
        return EGEMAPS_FUNCTIONALS, "float32"
    raise EmorefineError(f"Received: sequences={kind!r}; expected one of {', '.join(SEQUENCE_FEATURES)}")


#: ``lcw --update``: LC+W and its ablations, i.e. what the loss uses and what every second epoch learns.
#: both (LC+W): learned labels and learned weights; labels: learned labels, weight 1; weights: given labels,
#: learned weights; class-weights: given labels, weights fixed at K · N_c / N (inverse class frequency);
#: none: the publication's baseline, given labels with the same fixed class-proportion weights (the loss of
#: class-weights); oversample: given labels, weight 1, every class's training utterances repeated until each
#: class is drawn as often as the largest. The last three train the network every epoch.
LCW_UPDATES = ("both", "labels", "weights", "class-weights", "none", "oversample")
