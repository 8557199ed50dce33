"""The settings of a refine run: defaults ← preset ← config file ← command-line flags.

The resolved :class:`RefineConfig` is saved in the run directory (``config.json``) and is
the record of the experiment.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from emotion_refinery.data.feature_config import PRESETS, SEGMENT_SOURCES, get_preset
from emotion_refinery.data.votes import LABEL_SOURCES
from emotion_refinery.decision.choices import DECISION_RULES, SPEAKER_NORM_MODES
from emotion_refinery.errors import EmorefineError
from emotion_refinery.models.backbones import BACKBONES, backbone_names
from emotion_refinery.refine.rules import RULES, alpha_schedule
from emotion_refinery.util.ranges import EPOCHS, PATIENCE, ROUNDS, SEED, SHARE, Range
from emotion_refinery.util.settings import check_choice, check_settings

__all__ = ["RefineConfig", "resolve_config", "load_config_file", "REFINE_PRESETS", "TARGETS", "CACHE_MODES",
           "SEGMENT_SOURCES", "UTTERANCE_CLASSIFIERS", "HELP", "CHOICES", "RANGES", "check_for_records"]

REFINE_PRESETS = tuple(PRESETS)

#: Where refined rounds' targets come from. "oof": the previous round's out-of-fold predictions, shared by
#: every split (the papers'; split k's targets then come from models that trained on fold k). "cross-fit":
#: per split, two teachers trained on halves of its training folds predict the other half (none saw fold k).
#: "self": per split, its own previous model predicts its training folds (born-again; it never saw fold k).
TARGETS = ("self", "cross-fit", "oof")

#: How an utterance is decided from its segments' out-of-fold emotion profile: "forest", the papers' random
#: forest on 8 statistics per class (trained on the other folds' utterances); "speaker-forest", the same forest
#: on statistics z-normalised per speaker by that speaker's own utterances (no labels; a held-out speaker by
#: their own, as the speaker-normalised baseline treats its features); "mean-ep", the class of the highest
#: mean segment probability (nothing trained); "auto", per split the one of these that an inner
#: cross-validation over the other folds' profiles prefers (:mod:`emotion_refinery.decision.choices`).
UTTERANCE_CLASSIFIERS = ("auto", *DECISION_RULES)

#: "fold": fold (k + 1) mod K stops training early and gives back its best epoch (the papers'); "none": no
#: early-stopping fold: every split trains on all K − 1 other folds for the full --epochs.
EARLY_STOPPING = ("fold", "none")

#: "memory": parsed training segments stay in memory after the first epoch; "none": re-read every epoch.
CACHE_MODES = ("memory", "none")


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """Every setting of a refine run (the papers' values by default)."""

    rounds: int = 5
    round_patience: int = 0
    backbone: str = "efficientnetb0"
    rule: str = "wdsl"
    alpha: float | str = 0.2
    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.001
    decay_rate: float = 0.8
    decay_epochs: int = 2
    patience: int = 3
    early_stopping: str = "fold"
    min_epochs: int = 0
    bn_momentum: float = 0.99
    train_stride: int = 1
    spec_augment: bool = False
    freq_shift: int = 0
    mixup: float = 0.0
    speaker_norm: str = "off"
    targets: str = "self"
    label_source: str = "labels"
    label_noise: float = 0.0
    utterance_classifier: str = "forest"
    seed: int = 0
    cache: str = "memory"
    segments_from: str = "segments"
    mixed_precision: bool = False
    jit_compile: bool = False
    preset: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.speaker_norm, bool):  # runs and configs made when it was a switch
            object.__setattr__(self, "speaker_norm", "on" if self.speaker_norm else "off")
        check_settings(self, choices=CHOICES, ranges=RANGES)
        if self.backbone not in backbone_names("segments"):
            other = (" (it reads whole utterances, not refine's segments)" if self.backbone in BACKBONES else "")
            raise EmorefineError(f"Received: backbone={self.backbone!r}{other}; expected one of "
                                 f"{', '.join(backbone_names('segments'))}")
        check_choice("rule", self.rule, tuple(RULES))
        if self.min_epochs >= self.epochs and self.early_stopping == "fold":  # without early stopping it is unused
            raise EmorefineError(f"Received: min_epochs={self.min_epochs!r} with epochs={self.epochs!r}; expected "
                                 "min_epochs < epochs (early stopping counts epochs from min_epochs on)")
        if RULES[self.rule].learned and self.targets == "cross-fit":
            raise EmorefineError(f"Received: rule={self.rule!r} with targets={self.targets!r}; the lcw rule learns "
                                 "each split's targets itself (no teachers): expected targets='self' (or 'oof', "
                                 "the same for lcw)")
        if RULES[self.rule].learned and self.early_stopping != "fold":
            raise EmorefineError(f"Received: rule={self.rule!r} with early_stopping={self.early_stopping!r}; the lcw "
                                 "rule picks its best epoch on the validation fold: expected early_stopping='fold'")
        if RULES[self.rule].learned and self.mixup:
            raise EmorefineError(f"Received: rule={self.rule!r} with mixup={self.mixup!r}; mixup mixes the "
                                 "targets that lcw learns per segment: expected mixup=0")
        if self.label_noise and self.label_source != "labels":
            raise EmorefineError(f"Received: label_noise={self.label_noise!r} with label_source="
                                 f"{self.label_source!r}; planted noise flips the utterance labels: expected "
                                 "label_source='labels'")
        try:
            alpha_schedule(self.alpha, self.rounds - 1)
        except EmorefineError:
            raise EmorefineError(f"Received: alpha={self.alpha!r}; expected a value in [0, 1], "
                                 "or 'start:end' with both in [0, 1]") from None

    def alphas(self) -> list[float | None]:
        """α of every round (entry 0, the hard-label round, is None)."""
        return alpha_schedule(self.alpha, self.rounds - 1)

    def split_targets_round(self, t: int) -> bool:
        """Whether round ``t`` trains every split on targets of its own: from its cross-fit teachers, from its own
        round ``t − 1`` model (self targets), or (rule ``lcw``) learned by that split's model in round ``t − 1``."""
        return t > 0 and (self.targets in ("cross-fit", "self") or RULES[self.rule].learned)

    def cross_fit_round(self, t: int) -> bool:
        """Whether round ``t`` trains on per-split targets from teachers (cross-fit targets, rounds after the first)."""
        return self.targets == "cross-fit" and t > 0

    def decision_rules(self) -> tuple[str, ...]:
        """The utterance decision rules each split may choose from (one unless ``utterance_classifier`` is auto)."""
        return DECISION_RULES if self.utterance_classifier == "auto" else (self.utterance_classifier,)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(RefineConfig)}

#: The range of every numeric setting (``refine --help`` shows it; the command line refuses a value outside
#: before any work, as :class:`RefineConfig` does). ``freq_shift`` must also stay below half the records' Mel
#: bands (:func:`check_for_records`), ``min_epochs`` below ``epochs``.
RANGES: dict[str, Range] = {
    "rounds": ROUNDS,
    "round_patience": Range(0, ROUNDS.high - 1),
    "epochs": EPOCHS,
    "batch_size": Range(1, 16384),
    "lr": Range(0, 1, integer=False, low_open=True),
    "decay_rate": Range(0, 1, integer=False, low_open=True),
    "decay_epochs": Range(1, EPOCHS.high),
    "patience": PATIENCE,
    "min_epochs": Range(0, EPOCHS.high - 1),
    "bn_momentum": Range(0, 1, integer=False, high_open=True),
    "train_stride": Range(1, 1000),
    "freq_shift": Range(0, 127),
    "mixup": Range(0, 10, integer=False),
    "label_noise": SHARE,
    "seed": SEED,
}

#: Settings whose value is one name of a fixed list (``backbone`` and ``rule`` are checked against their
#: registries by :class:`RefineConfig`, whose message also names the backbones that are not for segments).
CHOICES = {"early_stopping": EARLY_STOPPING, "speaker_norm": SPEAKER_NORM_MODES, "segments_from": SEGMENT_SOURCES,
           "targets": TARGETS, "label_source": LABEL_SOURCES, "utterance_classifier": UTTERANCE_CLASSIFIERS,
           "cache": CACHE_MODES}

#: What each setting does, as ``refine --help`` shows it (the flag is ``--`` and the name with dashes; the
#: CLI appends the default and the presets' values). Every field but ``preset`` is a flag; a new setting is
#: a field above and an entry here.
HELP = {
    "rounds": "Generations: round 0 on the utterance labels plus N-1 refinements.",
    "round_patience": "Stop refining when validation-fold UA has not improved for N rounds; 0: run every round.",
    "backbone": f"{', '.join(backbone_names('segments'))}.",
    "rule": f"Label update rule: {', '.join(RULES)}.",
    "alpha": "wdsl weight of the utterance label, in [0, 1], or a schedule 'start:end' over the refinement rounds.",
    "epochs": "Most epochs per fold.",
    "batch_size": "Segments per training step.",
    "lr": "Adam learning rate.",
    "decay_rate": "Learning-rate factor every --decay-epochs.",
    "decay_epochs": "Epochs between learning-rate decays.",
    "patience": "Early-stopping patience.",
    "early_stopping": "fold: fold (k + 1) mod K stops training early and restores the best epoch (the papers'); "
                      "none: no early-stopping fold, each split trains on all K − 1 other folds for --epochs epochs "
                      "(more data where folds are few; rounds and decision rules are chosen on the other folds' "
                      "profiles either way).",
    "min_epochs": "Epochs before early stopping may stop a fold (and before a best epoch counts); below --epochs.",
    "bn_momentum": "BatchNormalization momentum of every layer.",
    "train_stride": "Train on every N-th segment of each utterance; every segment is still predicted.",
    "spec_augment": "Mask 2 random frame spans (≤ 4 frames) and 2 Mel-band spans (≤ 8 bands) of every training "
                    "segment.",
    "freq_shift": "Shift every training segment's Mel bands by a random whole number of bands in [-N, N] (a "
                  "vocal-tract-length warp: 2 of 64 bands ≈ ±10 %); below half the records' bands (at most 31 of 64); "
                  "0: off.",
    "mixup": "mixup of training segments and targets with λ ~ Beta(X, X); 0: off.",
    "speaker_norm": "Z-normalise every Mel band of each speaker's segments by that speaker's own statistics (no "
                    "labels; utterances without a speaker id by their own): on, off, or auto: per split, on when "
                    "an SVM on the utterances' band means and deviations scores better with it in a cross-validation "
                    "over the other folds (off where most speakers show one emotion).",
    "targets": "Refined rounds' targets, none from a model that saw the held-out fold unless oof: self, per split "
               "from its own previous model's predictions of its training folds (born-again distillation; no extra "
               "training); cross-fit, per split from two teachers on halves of its training folds (about twice the "
               "training); oof, the previous round's out-of-fold predictions (the papers' protocol, for reproducing "
               "their tables: split k learns from models that saw fold k, so refined rounds are optimistic).",
    "label_source": "What round 0 trains on and the rules mix in: labels, the one-hot utterance labels; votes, soft "
                    "targets (α + v_c) / (α K + Σ v) from the annotators' votes, α = 0.75 (utterances without votes "
                    "keep their label). The test folds are always scored on the labels.",
    "label_noise": "Flip this share of the utterance labels at random (seeded by --seed; each to another class) "
                   "before round 0: training, early stopping, the rules and the utterance classifier's training "
                   "folds see the flipped labels, the test folds are scored on the true ones. For measuring "
                   "how the rules cope with wrong labels; 0: off.",
    "utterance_classifier": "How an utterance is decided from its segments' profile: forest, the papers' random "
                            "forest on 8 statistics per class (trained on the other folds); speaker-forest, the "
                            "same on statistics z-normalised within each speaker's utterances (no labels; for "
                            "unseen speakers); mean-ep, the class of the highest mean segment probability "
                            "(nothing trained); auto, per split the one that scores best in a cross-validation over "
                            "the other folds' profiles (no extra training).",
    "seed": "Seed of folds' trainings (each (round, fold) derives its own).",
    "cache": "memory: keep parsed segments in memory after the first epoch; none: re-read every epoch.",
    "segments_from": "segments: read the segment shards; sequences: cut the segments on the fly from the log-Mel "
                     "sequence shards (records built with --sequences log-mel), the same segments bit for bit, "
                     "caching the utterances' frames instead of their segments (for corpora whose segments would "
                     "not fit in memory; the shuffle then mixes utterances, then segments in a 32,768 buffer).",
    "mixed_precision": "float16 compute (for GPUs).",
    "jit_compile": "XLA-compile the training step (for GPUs).",
}


def check_for_records(config: RefineConfig, n_mels: int) -> None:
    """Refuse settings that records of ``n_mels`` Mel bands cannot serve: a frequency shift of half the bands or
    more (before anything is written)."""
    high = (n_mels - 1) // 2
    if config.freq_shift > high:
        raise EmorefineError(f"Received: freq_shift={config.freq_shift!r}; expected an integer in [0, {high}] (less "
                             f"than half of the records' {n_mels} Mel bands)")


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON config; keys mirror the flags."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise EmorefineError(f"Received: config={str(path)!r}; cannot read it: {e.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10: the same parser, as the tomli package
                import tomli as tomllib

            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise EmorefineError(f"Received: config={str(path)!r}; expected a .yaml, .yml, .toml or .json file")
    except EmorefineError:
        raise
    except Exception as e:  # the parsers' own error types differ
        raise EmorefineError(f"Cannot parse {path}: {e}") from None
    if not isinstance(data, dict):
        raise EmorefineError(f"Received: config={str(path)!r} holding {type(data).__name__}; expected a mapping")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise EmorefineError(f"Received: unknown key(s) {unknown} in {path}; expected some of {sorted(FIELDS)}")
    return data


#: What a rule that learns its labels while training (lcw) needs; a preset's other values give way to it.
LEARNED_RULE_NEEDS = {"targets": "self", "early_stopping": "fold"}


def resolve_config(*, preset: str | None = None, config_file: str | os.PathLike | None = None,
                   default_preset: str | None = None, **flags: Any) -> RefineConfig:
    """Defaults, then the preset's training settings, then the config file, then flags that are not None."""
    values: dict[str, Any] = {}
    file_values = load_config_file(config_file) if config_file else {}
    # The preset: the argument, else the config file's, else ``default_preset`` (the records' own).
    preset = preset or file_values.get("preset") or default_preset
    if preset is not None:
        values.update(get_preset(preset).training, preset=preset)
    values.update({k: v for k, v in file_values.items() if k != "preset"})
    unknown = sorted(set(flags) - FIELDS)
    if unknown:
        raise EmorefineError(f"Received: unknown setting(s) {unknown}; expected some of {sorted(FIELDS)}")
    given = {k: v for k, v in flags.items() if v is not None}
    values.update(given)
    rule = RULES.get(values.get("rule", RefineConfig.rule))
    if rule is not None and rule.learned:  # a preset's targets / early stopping yield to a rule that learns its own
        for name, needed in LEARNED_RULE_NEEDS.items():
            if name not in given and name not in file_values:
                values[name] = needed
    if isinstance(values.get("alpha"), str):
        try:
            values["alpha"] = float(values["alpha"])
        except ValueError:
            pass  # a schedule such as "0.5:0.1"
    return RefineConfig(**values)
