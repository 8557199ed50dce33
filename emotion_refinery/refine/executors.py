"""Where a refine run's (round, fold) tasks run: here, or each in a fresh process.

The tasks of one stage (the teachers of a round, or the fold models of a round) are independent: they
meet only through the run directory, whose done-marks say what is finished. Stages are barriers:
round ``t + 1`` starts when every fold of round ``t`` has written its labels.

=============  ==========================================================================================
``local``      every task in this process, one after the other (the default)
``process``    every task in a fresh spawned process, ``parallel`` at a time: the memory a task held (e.g.
               a GPU's) is returned when it ends, and several folds can share one machine or GPU
``ray``        every task a Ray task (``pip install 'emorefine[ray]'``) on the cluster at ``ray_address``
               (``"auto"``: the one this machine belongs to) or, without one, a local cluster of
               ``parallel`` CPUs; each task asks for ``cpus`` CPUs and ``gpus`` GPUs, runs in a worker
               process of its own (``max_calls=1``), and is retried if its worker dies. The run directory
               must be on a file system every node sees.
=============  ==========================================================================================

Results do not depend on the executor: a task's seed comes from (seed, round, fold), and on a CPU
TensorFlow runs deterministically, so ``local`` and ``process`` write the same files, and a run started
with one can be finished with the other.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

from emotion_refinery.errors import EmorefineError

__all__ = ["EXECUTORS", "Task", "check_executor", "run_stage", "shutdown"]

EXECUTORS = ("local", "process", "ray")


@dataclasses.dataclass(frozen=True)
class Task:
    """One training: the model of (round ``t``, fold ``k``), or (``h`` given) teacher ``h`` of split ``k``."""

    t: int
    k: int
    h: int | None = None

    @property
    def key(self) -> tuple[int, ...]:
        """``(t, k)`` or ``(t, k, h)``, in the order tasks run."""
        return (self.t, self.k) if self.h is None else (self.t, self.k, self.h)

    def __str__(self) -> str:
        return f"round {self.t} fold {self.k + 1}" + ("" if self.h is None else f" teacher {self.h + 1}")


def check_executor(executor: str, parallel: int) -> None:
    if executor not in EXECUTORS:
        raise EmorefineError(f"Received: executor={executor!r}; expected one of {', '.join(EXECUTORS)}")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise EmorefineError(f"Received: parallel={parallel!r}; expected a positive integer")
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise EmorefineError("Received: executor='ray'; it needs the ray package, which is not installed. "
                                 "Install it with: pip install 'emorefine[ray]'")
    if executor == "local" and parallel != 1:
        raise EmorefineError(f"Received: parallel={parallel} with executor='local'; expected --executor process "
                             "to run tasks side by side")


def run_stage(tasks: list[Task], *, records_dir: str, run_dir: str, config: dict, executor: str, parallel: int,
              verbose: int, log: Callable[[str], None], first_estimates: int | None,
              ray_address: str | None = None, cpus: float = 1.0, gpus: float = 0.0) -> None:
    """Run ``tasks`` (one stage) and return when all of them are done. ``first_estimates``: tasks left after
    the first one, for its time estimate (``None``: no estimate)."""
    if not tasks:
        return
    if executor == "ray":
        _run_ray(tasks, records_dir=records_dir, run_dir=run_dir, config=config, verbose=verbose, log=log,
                 address=ray_address, parallel=parallel, cpus=cpus, gpus=gpus)
        return
    if executor == "local":
        for i, task in enumerate(tasks):
            for line in _train(records_dir, run_dir, config, task, verbose, first_estimates if i == 0 else None,
                               log=log):
                log(line)
        return
    context = multiprocessing.get_context("spawn")  # never fork a process that holds TensorFlow
    with concurrent.futures.ProcessPoolExecutor(max_workers=parallel, mp_context=context, max_tasks_per_child=1,
                                                initializer=_start_worker, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_train, records_dir, run_dir, config, task, verbose,
                               first_estimates if i == 0 else None): task for i, task in enumerate(tasks)}
        failed = None
        for future in concurrent.futures.as_completed(futures):
            try:
                lines = future.result()
            except Exception as e:  # a task that failed, or a worker that died: its done-mark is missing
                failed = failed or (futures[future], e)
                continue
            for line in lines:
                log(line)
        if failed is not None:
            task, error = failed
            if isinstance(error, EmorefineError):
                raise error
            raise EmorefineError(f"{task} failed in its worker process ({type(error).__name__}: {error}); the "
                                 "tasks that finished are kept: run the same command again to resume") from error


def _run_ray(tasks: list[Task], *, records_dir: str, run_dir: str, config: dict, verbose: int, log, address,
             parallel: int, cpus: float, gpus: float) -> None:
    import ray

    global _STARTED_RAY
    if not ray.is_initialized():
        _STARTED_RAY = True
        kwargs = {"address": address} if address else {"num_cpus": parallel * cpus}
        # The workers import this package from the same place as this process.
        ray.init(**kwargs, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(_package_paths())}})
    remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_calls=1, max_retries=2)(_train)
    pending = {remote.options(name=f"emorefine {Path(run_dir).name}: {task}").remote(
        records_dir, run_dir, config, task, verbose, None): task for task in tasks}
    failed = None
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        task = pending.pop(done[0])
        try:
            lines = ray.get(done[0])
        except Exception as e:  # retries used up: the others still finish, then the stage fails
            failed = failed or (task, e)
            continue
        for line in lines:
            log(line.replace(": ran on ", ": ran on Ray, on "))
    if failed is not None:
        task, error = failed
        raise EmorefineError(f"{task} failed on Ray ({type(error).__name__}: {error}); the tasks that finished "
                             "are kept: run the same command again to resume") from error


_STARTED_RAY = False


def shutdown() -> None:
    """End the Ray session this module started (if any); a cluster joined with an address keeps running."""
    global _STARTED_RAY
    if _STARTED_RAY:
        import ray

        ray.shutdown()
        _STARTED_RAY = False


def _package_paths() -> list[str]:
    import emotion_refinery
    import tf_records

    return sorted({str(Path(m.__file__).resolve().parents[1]) for m in (emotion_refinery, tf_records)})


def _start_worker(parent: int) -> None:
    from emotion_refinery.util import quiet
    from emotion_refinery.util.processes import exit_with_parent

    exit_with_parent(parent)
    quiet.install()  # TensorFlow's start-up lines silenced here too, unless the parent is verbose


def _train(records_dir: str, run_dir: str, config: dict, task: Task, verbose: int, tasks_left: int | None,
           log: Callable[[str], None] | None = None) -> list[str]:
    """Train one task (in this process); return its log lines (also passed to ``log`` as they come, if given)."""
    import keras
    import tensorflow as tf

    from emotion_refinery.records.manifest import RecordsManifest
    from emotion_refinery.records.run_dir import RunDir
    from emotion_refinery.refine.settings import RefineConfig
    from emotion_refinery.refine.training import train_fold, train_teacher

    lines: list[str] = []
    emit = lines.append if log is None else log
    if log is None:  # a fresh process: the settings the parent process made
        if not tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()
        tf.get_logger().setLevel("ERROR")
    cfg = RefineConfig(**config)
    keras.mixed_precision.set_global_policy("mixed_float16" if cfg.mixed_precision else "float32")
    manifest, run = RecordsManifest.load(records_dir), RunDir(run_dir)
    if task.h is None:
        train_fold(manifest, run, cfg, t=task.t, k=task.k, verbose=verbose, log=emit, tasks_left=tasks_left)
    else:
        train_teacher(manifest, run, cfg, t=task.t, k=task.k, h=task.h, verbose=verbose, log=emit,
                      tasks_left=tasks_left)
    if log is None:
        import socket

        lines.append(f"{task}: ran on {socket.gethostname()} in process {os.getpid()}")
    return lines
