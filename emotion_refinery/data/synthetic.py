"""A small synthetic emotion corpus, generated on demand, for the demo and the tests.

Each utterance is a speaker-specific voiced signal (a harmonic series on a gliding
pitch, cut into syllables) with a class-specific pattern added over only *part* of
it, as emotion varies within real utterances:

* ``anger``: loud noise bursts at 2–4 kHz;
* ``happiness``: rising high-pitch chirps around 1–2 kHz;
* ``sadness``: a strong low tone at 150–250 Hz under lowered speech;
* ``neutral``: no pattern.

Outside the pattern region a segment is neutral whatever the utterance label, so
segment truth differs from the utterance label; ``truth.json`` keeps the regions so
tests (and ``emorefine inspect RUN_DIR --truth truth.json``, through
:func:`emotion_refinery.outputs.truth.truth_agreement`) can check that refined labels move toward the segment truth.
The corpus is a ``csv`` corpus: ``manifest.csv`` with columns path, label, speaker.

With ``annotators`` > 0 every utterance also gets that many simulated annotators' votes (the
``votes`` column, one label per annotator): each hears the emotions present — the label over its
region and neutral over the rest — and votes for one of them with probability equal to the share of
the utterance it covers, or, with probability ``annotator_noise``, for a class drawn at random.
``truth.json`` then lists each utterance's ``present`` emotions (its emotion existence). With
``majority_labels`` the manifest's label is what a voted corpus gives instead: the class with more than
half of the votes, or none (an empty label: an unlabelled utterance, as IEMOCAP's ``xxx``); ``truth.json``
keeps the generator's label.

Two knobs make the corpus harder. ``pattern_level`` scales every emotion pattern (below 1 the cues
are fainter against the voice). ``speaker_habit`` gives every speaker but the first a habitual cue of
one emotion throughout each of their utterances (:data:`HABITS`: ``s2`` speaks with anger's band
noise, ``s3`` with happiness' chirps, ``s4`` over sadness' low tone) at that share of the pattern's
level: a speaker effect that mimics an emotion, as one speaker's neutral may sound like another's
boredom. Neither changes the segment truth, and with their defaults (1 and 0) the audio is the same
as without them.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import soundfile

from emotion_refinery.data.audio import resample
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.features import segment_starts
from emotion_refinery.errors import EmorefineError
from emotion_refinery.util.ranges import SEED, Range

__all__ = ["CLASSES", "make_corpus", "segment_truth", "segment_truths", "read_truth"]

CLASSES = ("anger", "happiness", "neutral", "sadness")
SPEAKERS = {"s1": 110.0, "s2": 140.0, "s3": 190.0, "s4": 230.0}  # base pitch in Hz
#: The emotion whose pattern each speaker carries throughout with ``speaker_habit`` > 0.
HABITS = {"s2": "anger", "s3": "happiness", "s4": "sadness"}


def _voice(rng: np.random.Generator, n: int, sr: int, f0: float) -> np.ndarray:
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1 + np.sign(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6))))
    return 0.05 * y * syllables + 0.003 * rng.standard_normal(n)


def _pattern(rng: np.random.Generator, label: str, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    if label == "anger":
        noise = rng.standard_normal(n)
        spectrum = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(n, 1 / sr)
        spectrum[(freqs < 2000) | (freqs > 4000)] = 0
        band = np.fft.irfft(spectrum, n)
        bursts = 0.5 * (1 + np.sign(np.sin(2 * np.pi * 6 * t)))
        return 0.2 * band / (np.abs(band).max() + 1e-9) * bursts
    if label == "happiness":
        f = 1000 + 1000 * ((t * 3) % 1)
        return 0.08 * np.sin(2 * np.pi * np.cumsum(f) / sr)
    if label == "sadness":
        f = rng.uniform(150, 250)
        return 0.15 * np.sin(2 * np.pi * f * t)
    return np.zeros(n)

#: The range of every numeric argument of :func:`make_corpus` (``synth-corpus --help`` shows them): at most
#: 4,000 files of 1.2-2.4 s (about 300 MB).
RANGES: dict[str, Range] = {
    "per_class": Range(2, 1000),
    "seed": SEED,
    "annotators": Range(0, 100),
    "annotator_noise": Range(0, 1, integer=False, what="a share"),
    "pattern_level": Range(0, 100, integer=False, low_open=True),
    "speaker_habit": Range(0, 100, integer=False),
}


def make_corpus(
    out_dir: str | os.PathLike,
    *,
    per_class: int = 12,
    seed: int = 0,
    sr: int = 16000,
    annotators: int = 0,
    annotator_noise: float = 0.1,
    pattern_level: float = 1.0,
    speaker_habit: float = 0.0,
    majority_labels: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic corpus to ``out_dir`` and return the path of its ``manifest.csv``.

    ``per_class`` utterances per class (spread over the four speakers), 1.2–2.4 s each;
    ``pattern_level`` and ``speaker_habit`` as in the module docstring.
    Every fifth file is stereo at 22.05 kHz, to exercise downmixing and resampling. The audio does
    not depend on ``annotators`` (their votes are drawn from a generator of their own). ``overwrite``: empty
    ``out_dir`` first if it holds a synthetic corpus (anything else is refused untouched), after every other check.
    """
    given = {"per_class": per_class, "seed": seed, "annotators": annotators, "annotator_noise": annotator_noise,
             "pattern_level": pattern_level, "speaker_habit": speaker_habit}
    for name, r in RANGES.items():
        r.check(name, given[name])
    if majority_labels and not annotators:
        raise EmorefineError("Received: majority_labels=True with annotators=0; expected annotators > 0 (the "
                             "majority labels come from their votes)")
    if overwrite:
        from emotion_refinery.util.overwrite import clear_folder

        clear_folder(out_dir, "corpus", name="out_dir")
    voter = np.random.default_rng([seed, 1])
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    k = 0
    for label in CLASSES:
        for i in range(per_class):
            speaker = list(SPEAKERS)[i % len(SPEAKERS)]
            duration = rng.uniform(1.2, 2.4)
            n = int(duration * sr)
            y = _voice(rng, n, sr, SPEAKERS[speaker])
            region = (0.0, 0.0)
            if label != "neutral":
                # The emotional part covers 40–70 % of the utterance, anywhere in it.
                length = rng.uniform(0.4, 0.7) * duration
                start = rng.uniform(0, duration - length)
                region = (round(start, 4), round(start + length, 4))
                a, b = int(region[0] * sr), int(region[1] * sr)
                y[a:b] += pattern_level * _pattern(rng, label, b - a, sr)
                if label == "sadness":
                    y[a:b] *= 0.6
            if speaker_habit and speaker in HABITS:  # its own generator: the rest of the corpus is unchanged
                y += speaker_habit * pattern_level * _pattern(np.random.default_rng([seed, 2, k]), HABITS[speaker],
                                                              n, sr)
            uid = f"{speaker}_{label}_{i:02d}"
            rel = f"wav/{uid}.wav"
            if k % 5 == 4:
                y2 = resample(y.astype(np.float32), orig_sr=sr, target_sr=22050)
                soundfile.write(out / rel, np.stack([y2, 0.8 * y2], axis=1), 22050, subtype="PCM_16")
            else:
                soundfile.write(out / rel, y.astype(np.float32), sr, subtype="PCM_16")
            row = {"path": rel, "label": label, "speaker": speaker}
            entry = {"label": label, "region": list(region)}
            if annotators:
                share = (region[1] - region[0]) / duration if label != "neutral" else 0.0
                present = {label: share, "neutral": 1.0 - share} if label != "neutral" else {"neutral": 1.0}
                names, p = list(present), np.array(list(present.values()))
                votes = [str(voter.choice(CLASSES)) if voter.random() < annotator_noise
                         else str(names[voter.choice(len(names), p=p / p.sum())]) for _ in range(annotators)]
                row["votes"] = ";".join(votes)
                if majority_labels:
                    top, n = max(((c, votes.count(c)) for c in CLASSES), key=lambda cn: cn[1])
                    row["label"] = top if n > annotators / 2 else ""
                entry["present"] = sorted(c for c, v in present.items() if v > 0)
            rows.append(row)
            truth[Path(rel).with_suffix("").as_posix()] = entry
            k += 1
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "speaker"] + (["votes"] if annotators else []))
        w.writeheader()
        w.writerows(rows)
    (out / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    return out / "manifest.csv"


def segment_truth(entry: dict, n_segments: int, config: FeatureConfig) -> np.ndarray:
    """True class name of each segment of one synthetic utterance, shape ``(n_segments,)``.

    A segment takes the utterance's label when at least half of it lies inside the
    pattern region, and ``neutral`` otherwise.
    """
    start = segment_starts(n_segments, config)
    end = start + config.segment_seconds
    a, b = entry["region"]
    overlap = np.clip(np.minimum(end, b) - np.maximum(start, a), 0, None)
    inside = overlap >= 0.5 * config.segment_seconds
    return np.where(inside, entry["label"], "neutral")


def read_truth(truth_json: str | os.PathLike) -> dict:
    path = Path(truth_json)
    expected = "expected the truth.json that `emorefine synth-corpus` writes beside manifest.csv"
    try:
        truth = json.loads(path.read_text())
    except OSError as e:
        raise EmorefineError(f"Received: truth={str(path)!r} ({e.strerror}); {expected}") from None
    except ValueError as e:
        raise EmorefineError(f"Received: truth={str(path)!r}, not JSON ({e}); {expected}") from None
    good = isinstance(truth, dict) and all(
        isinstance(v, dict) and isinstance(v.get("label"), str) and isinstance(v.get("region"), list)
        and len(v["region"]) == 2 for v in truth.values())
    if not good:
        raise EmorefineError(f"Received: truth={str(path)!r}, not a mapping of utterance id to "
                             f'{{"label", "region": [start, end]}}; {expected}')
    return truth


def segment_truths(utterances: list[dict], truth: dict, config: FeatureConfig, *,
                   truth_dir: str | os.PathLike | None = None) -> np.ndarray:
    """True class name of every segment of ``utterances`` (manifest entries), concatenated in their order.

    An utterance's truth entry is looked up by its id (a ``csv`` corpus's default id is the path relative
    to the corpus folder without suffix, which is how ``truth.json`` is keyed), else by its source path
    relative to ``truth_dir`` without suffix (records built with another id column or corpus root).
    """
    parts, missing = [], []
    for u in utterances:
        key = u["id"]
        if key not in truth and truth_dir is not None:
            try:
                key = Path(u["path"]).resolve().relative_to(Path(truth_dir).resolve()).with_suffix("").as_posix()
            except ValueError:
                pass
        if key not in truth:
            missing.append(u["id"])
            continue
        parts.append(segment_truth(truth[key], u["segments"], config))
    if missing:
        shown = ", ".join(map(repr, missing[:3])) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise EmorefineError(f"Received: {len(missing)} of {len(utterances)} utterance(s) without a truth entry "
                             f"({shown}); expected the truth.json of the corpus the records were built from")
    return np.concatenate(parts) if parts else np.array([], dtype=str)
