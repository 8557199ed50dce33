"""The refine command: k-fold training and label refinery over records."""

from __future__ import annotations

import sys

import click

from cli import options
from emotion_refinery.backbones import backbone_names
from emotion_refinery.config import PRESETS
from emotion_refinery.refine_config import UTTERANCE_CLASSIFIERS, RefineConfig, resolve_config
from emotion_refinery.rules import RULES
from emotion_refinery.votes import LABEL_SOURCES
from emotion_refinery.errors import EmorefineError
from emotion_refinery.executors import EXECUTORS



def _default(name: str) -> str:
    """``[default: …]`` of a RefineConfig field, with the presets that set it otherwise (never restated by hand)."""
    def text(v):
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    base = getattr(RefineConfig, name)
    by_preset = [f"{n} {text(p.training[name])}" for n, p in PRESETS.items()
                 if name in p.training and p.training[name] != base]
    return f"[default: {text(base)}" + (f"; preset {', '.join(by_preset)}" if by_preset else "") + "]"


@click.command()
@click.argument("records_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or resume).")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="Generations: round 0 on the utterance labels plus N-1 refinements.  " + _default("rounds"))
@click.option("--round-patience", type=click.IntRange(min=0), default=None,
              help="Stop refining when validation-fold UA has not improved for N rounds; 0: run every round.  " + _default("round_patience"))
@click.option("--backbone", default=None,
              help=f"{', '.join(backbone_names('segments'))}.  " + _default("backbone"))
@click.option("--rule", default=None, help=f"Label update rule: {', '.join(RULES)}.  " + _default("rule"))
@click.option("--alpha", default=None,
              help="wdsl weight of the utterance label, in [0, 1], or a schedule 'start:end' over the "
                   "refinement rounds.  " + _default("alpha"))
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Most epochs per fold.  " + _default("epochs"))
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help=_default("batch_size"))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate.  " + _default("lr"))
@click.option("--decay-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning-rate factor every --decay-epochs.  " + _default("decay_rate"))
@click.option("--decay-epochs", type=click.IntRange(min=1), default=None, help=_default("decay_epochs"))
@click.option("--patience", type=click.IntRange(min=0), default=None, help="Early-stopping patience.  " + _default("patience"))
@click.option("--min-epochs", type=click.IntRange(min=0), default=None,
              help="Epochs before early stopping may stop a fold (and before a best epoch counts).  " + _default("min_epochs"))
@click.option("--train-stride", type=click.IntRange(min=1), default=None,
              help="Train on every N-th segment of each utterance; every segment is still predicted.  " + _default("train_stride"))
@click.option("--spec-augment/--no-spec-augment", default=None,
              help="Mask 2 random frame spans (≤ 4 frames) and 2 Mel-band spans (≤ 8 bands) of every training segment.")
@click.option("--freq-shift", type=click.IntRange(min=0), default=None,
              help="Shift every training segment's Mel bands by a random whole number of bands in [-N, N] "
                   "(a vocal-tract-length warp: 2 of 64 bands ≈ ±10 %); 0: off.  " + _default("freq_shift"))
@click.option("--mixup", type=click.FloatRange(min=0), default=None,
              help="mixup of training segments and targets with λ ~ Beta(X, X); 0: off.  " + _default("mixup"))
@click.option("--speaker-norm/--no-speaker-norm", default=None,
              help="Z-normalise every Mel band of each speaker's segments by that speaker's own statistics "
                   "(no labels; utterances without a speaker id by their own).  " + _default("speaker_norm"))
@click.option("--targets", type=click.Choice(("oof", "cross-fit")), default=None,
              help="Refined rounds' targets: oof, the previous round's out-of-fold predictions (the papers'; "
                   "split k learns from models that saw fold k), or cross-fit, per split from two teachers on "
                   "halves of its training folds (no leak; about twice the training).  " + _default("targets"))
@click.option("--label-source", type=click.Choice(LABEL_SOURCES), default=None,
              help="What round 0 trains on and the rules mix in: labels, the one-hot utterance labels; votes, soft "
                   "targets (α + v_c) / (α K + Σ v) from the annotators' votes, α = 0.75 (utterances without "
                   "votes keep their label). The test folds are always scored on the labels.  "
                   + _default("label_source"))
@click.option("--utterance-classifier", type=click.Choice(UTTERANCE_CLASSIFIERS), default=None,
              help="How an utterance is decided from its segments' profile: forest, the papers' random forest on "
                   "8 statistics per class (trained on the other folds); speaker-forest, the same on statistics "
                   "z-normalised within each speaker's utterances (no labels; for unseen speakers); mean-ep, the "
                   "class of the highest mean segment probability (nothing trained).  "
                   + _default("utterance_classifier"))
@click.option("--bn-momentum", type=float, default=None,
              help="BatchNormalization momentum of every layer.  " + _default("bn_momentum"))
@click.option("--preset", type=click.Choice(tuple(PRESETS)), default=None,
              help="Training settings of a named preset (see README).  [default: the preset the records were "
                   "built with]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML, TOML or JSON file whose keys mirror these flags; flags override it.")
@click.option("--seed", type=int, default=None, help=_default("seed"))
@click.option("--cache", type=click.Choice(("memory", "none")), default=None,
              help="Keep parsed segments in memory after the first epoch.  " + _default("cache"))
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="float16 compute (for GPUs).")
@click.option("--jit-compile/--no-jit-compile", default=None, help="XLA-compile the training step (for GPUs).")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="Where each (round, fold) training runs: local, in this process; process, each in a fresh "
                   "process (its memory, e.g. a GPU's, returned when it ends); ray, each a Ray task (the [ray] "
                   "extra). Not a setting of the run: a run may be resumed with another executor.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings at once with --executor process (e.g. several folds on one GPU); with --executor "
                   "ray and no --ray-address, the CPUs of the local Ray cluster.")
@click.option("--ray-address", default=None,
              help="Ray cluster to run the trainings on (e.g. auto); default: a local one.")
@click.option("--task-gpus", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="GPUs each training asks Ray for (fractions share a GPU).")
@options.quiet
def refine(records_dir, output, config_file, quiet, executor, parallel, ray_address, task_gpus, **flags):
    """Train on RECORDS_DIR with utterance-level k-fold CV and refine the segment labels round by round.

    Running the same command again resumes an interrupted run; on a finished run it only
    prints the report. Prints one line per (round, fold) and the WA/UA of every round.
    """
    config = resolve_config(config_file=config_file, default_preset=_records_preset(records_dir), **flags)
    from emotion_refinery.refinery import refine as run_refine

    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    report = run_refine(records_dir, output, config, verbose=verbose, log=click.echo, executor=executor,
                        parallel=parallel, ray_address=ray_address, task_gpus=task_gpus)
    click.echo(f"Report: {output}/report.md")
    from emotion_refinery.report import markdown

    table = [line for line in markdown(report).splitlines() if line.startswith("|")]
    click.echo("\n".join(table[: 2 + len(report["rounds"])]))


def _records_preset(records_dir: str) -> str | None:
    """The preset the records were built with (``None`` for records that do not say, or unusable ones)."""
    from emotion_refinery.manifest import RecordsManifest

    try:
        name = RecordsManifest.load(records_dir).data["settings"].get("preset")
    except EmorefineError:
        return None  # refine itself reports unusable records
    return name if name in PRESETS else None
