"""The refine command: k-fold training and label refinery over records."""

from __future__ import annotations

import sys

import click

from cli import options
from emotion_refinery.data.feature_config import PRESETS
from emotion_refinery.errors import EmorefineError
from emotion_refinery.refine.executors import EXECUTORS
from emotion_refinery.refine.settings import CHOICES, HELP, RANGES, RefineConfig, check_for_records, resolve_config
from emotion_refinery.util.ranges import Range

#: ``--parallel`` and ``--task-gpus``: how the trainings run, not settings of the run.
PARALLEL = Range(1, 256)
TASK_GPUS = Range(0, 64, integer=False)



def _default(name: str) -> str:
    """``[default: …]`` of a RefineConfig field, with the presets that set it otherwise (never restated by hand)."""
    def text(v):
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    base = getattr(RefineConfig, name)
    by_preset = [f"{n} {text(p.training[name])}" for n, p in PRESETS.items()
                 if name in p.training and p.training[name] != base]
    return f"[default: {text(base)}" + (f"; preset {', '.join(by_preset)}" if by_preset else "") + "]"


#: Settings that were on/off switches before they had more values: ``--name`` alone gives the first value,
#: ``--no-name`` the second.
FORMER_SWITCHES = {"speaker_norm": ("on", "off")}


def _former_switches(flags: dict) -> None:
    """Fold ``--no-name`` of :data:`FORMER_SWITCHES` into ``flags[name]``, refusing both at once."""
    for name, (_, off) in FORMER_SWITCHES.items():
        if flags.pop(f"no_{name}", False):
            if flags.get(name) not in (None, off):
                raise click.BadParameter(f"Received: --{name.replace('_', '-')} {flags[name]} and --no-"
                                         f"{name.replace('_', '-')}; expected one of them")
            flags[name] = off


#: One option per :class:`RefineConfig` setting in :data:`HELP`, generated from the dataclass and its tables; unset
#: options are None, so the config file and preset hold.
_settings = options.settings_options(RefineConfig, HELP, CHOICES, RANGES, default_text=_default,
                                     former_switches=FORMER_SWITCHES)


@click.command()
@click.argument("records_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or resume).")
@_settings
@click.option("--preset", type=click.Choice(tuple(PRESETS)), default=None,
              help="Training settings of a named preset (see README).  [default: the preset the records were "
                   "built with]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML, TOML or JSON file whose keys mirror these flags; flags override it.")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="Where each (round, fold) training runs: local, in this process; process, each in a fresh "
                   "process (its memory, e.g. a GPU's, returned when it ends); ray, each a Ray task (the [ray] "
                   "extra). Not a setting of the run: a run may be resumed with another executor.")
@click.option("--parallel", type=options.bounded(PARALLEL), default=1, show_default=True,
              help="Trainings at once with --executor process (e.g. several folds on one GPU); with --executor "
                   "ray and no --ray-address, the CPUs of the local Ray cluster.")
@click.option("--ray-address", default=None,
              help="Ray cluster to run the trainings on (e.g. auto); default: a local one.")
@click.option("--task-gpus", type=options.bounded(TASK_GPUS), default=0.0, show_default=True,
              help="GPUs each training asks Ray for (fractions share a GPU).")
@options.overwrite("run")
@options.quiet
def refine(records_dir, output, config_file, quiet, overwrite, executor, parallel, ray_address, task_gpus, **flags):
    """Train on RECORDS_DIR with utterance-level k-fold CV and refine the segment labels round by round.

    Running the same command again resumes an interrupted run; on a finished run it only
    prints the report. Prints one line per (round, fold) and the WA/UA of every round.
    Other settings on an existing run directory are refused; --overwrite starts it over.
    """
    _former_switches(flags)
    options.check_output_folder(output)
    preset, n_mels = _records_settings(records_dir)
    config = resolve_config(config_file=config_file, default_preset=preset, **flags)
    if n_mels is not None:  # settings the records cannot serve: refused before the run folder is made
        check_for_records(config, n_mels)
    from emotion_refinery.refine.rounds import refine as run_refine

    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    report = run_refine(records_dir, output, config, verbose=verbose, log=click.echo, executor=executor,
                        parallel=parallel, ray_address=ray_address, task_gpus=task_gpus, overwrite=overwrite)
    click.echo(f"Report: {output}/report.md")
    from emotion_refinery.outputs.report import markdown

    table = [line for line in markdown(report).splitlines() if line.startswith("|")]
    click.echo("\n".join(table[: 2 + len(report["rounds"])]))


def _records_settings(records_dir: str) -> tuple[str | None, int | None]:
    """The preset the records were built with (``None`` for records that do not say) and their Mel bands;
    ``(None, None)`` for unusable records (refine itself reports them)."""
    from emotion_refinery.records.manifest import RecordsManifest

    try:
        manifest = RecordsManifest.load(records_dir)
        name, n_mels = manifest.data["settings"].get("preset"), manifest.features.n_mels
    except (EmorefineError, AttributeError, KeyError, TypeError, ValueError):
        return None, None
    return (name if name in PRESETS else None), n_mels
