"""Several accelerators within one (round, fold) task: data-parallel training with ``tf.distribute``.

A task that sees more than one GPU (``CUDA_VISIBLE_DEVICES``, or a Ray task given ``--task-gpus 2``) trains its
model under ``tf.distribute.MirroredStrategy`` over all of them: every replica holds a copy of the model and
takes ``batch_size`` segments of each step, so the global batch is ``batch_size × replicas``; the gradients are
summed across replicas (all-reduce) and applied once. The learning rate is the one given: for the linear
scaling rule (Goyal et al., 2017) pass ``--lr`` × replicas. Training batches drop the last, partial batch of an
epoch (a replica left without examples breaks BatchNormalization); validation and prediction keep every segment
in batches that leave no replica empty (:func:`even_batch_size`).
One device (a CPU, one GPU) trains as before, without a strategy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

__all__ = ["replica_devices", "Replicas", "task_replicas", "even_batch_size", "model_replicas"]


def replica_devices() -> list[str]:
    """The logical GPUs this process sees (TensorFlow's names); empty on a CPU-only machine."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU")]


class Replicas:
    """Where one task trains: a ``MirroredStrategy`` over ``devices`` when there are several, else the default
    device. ``count`` replicas; ``scope()`` is the context in which to build and compile the model."""

    def __init__(self, devices: Sequence[str] = ()):
        self.devices = list(devices)
        self.strategy = None
        if len(self.devices) > 1:
            import tensorflow as tf

            self.strategy = tf.distribute.MirroredStrategy(self.devices)

    @property
    def count(self) -> int:
        return max(1, len(self.devices)) if self.strategy is not None else 1

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        if self.strategy is None:
            yield
        else:
            with self.strategy.scope():
                yield

    def describe(self, batch_size: int) -> str:
        return (f"MirroredStrategy over {self.count} devices ({', '.join(self.devices)}), global batch "
                f"{batch_size * self.count} ({batch_size} per replica)")


def task_replicas() -> Replicas:
    """The replicas of the current task: every GPU it sees (see the module docstring)."""
    return Replicas(replica_devices())


def even_batch_size(n: int, batch_size: int, replicas: int) -> int:
    """A batch size for reading ``n`` examples over ``replicas`` without dropping any: at most ``batch_size``, a
    multiple of ``replicas`` (Keras averages the first batch across replicas once, so it must split evenly), and
    leaving each replica at least one example of the last batch. ``batch_size`` itself on one replica."""
    if replicas <= 1:
        return batch_size
    b = max(replicas, min(batch_size, n) // replicas * replicas)
    while b > replicas and 0 < n % b < replicas:
        b -= replicas
    return b


def model_replicas(model) -> int:
    """The number of replicas ``model`` was built under (1 without a strategy, or off TensorFlow)."""
    strategy = getattr(model, "distribute_strategy", None)
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
