"""Several devices within one task: MirroredStrategy over two logical CPUs, in a fresh process (logical
devices must be set before TensorFlow starts), and the drop-remainder training batches it needs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.synthetic import make_corpus
from emotion_refinery.models.distribute import Replicas, even_batch_size
from emotion_refinery.records.build import build_records
from emotion_refinery.records.datasets import count_training_segments, training_dataset
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("distribute-corpus")
    csv = make_corpus(root, per_class=3, seed=4)
    out = tmp_path_factory.mktemp("distribute-records") / "rec"
    build_records(root, out, corpus="csv", manifest=csv, features=FeatureConfig(segment_hop=8), n_folds=3, workers=1)
    return RecordsManifest.load(out)


def test_drop_remainder_batches_are_all_full(records, tmp_path):
    run = RunDir(tmp_path / "run")
    table = records.segment_table()
    for k in range(records.n_folds):
        lo, hi = records.fold_segments(k)
        run.write_labels(0, records, k, np.eye(len(records.classes), dtype=np.float32)[table["label"][lo:hi]])
    n = count_training_segments(records, [0, 1])
    assert n % 16
    ds = training_dataset(records, labels_dir=run.labels_dir(0), folds=[0, 1], batch_size=16, drop_remainder=True)
    sizes = [int(x.shape[0]) for x, _ in ds]
    assert sizes == [16] * (n // 16) and ds.cardinality().numpy() == n // 16
    kept = training_dataset(records, labels_dir=run.labels_dir(0), folds=[0, 1], batch_size=16)
    assert sum(int(x.shape[0]) for x, _ in kept) == n


def test_one_device_trains_without_a_strategy():
    one = Replicas(["/device:GPU:0"])
    assert one.strategy is None and one.count == 1
    with one.scope():  # a plain context
        pass
    assert Replicas().count == 1


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_evaluation_batches_split_evenly_first_and_leave_no_replica_empty(replicas):
    assert even_batch_size(93, 512, 1) == 512
    for n in range(2 * replicas, 1500, 7):
        b = even_batch_size(n, 512, replicas)
        assert b % replicas == 0 and replicas <= b <= 512
        assert n % b == 0 or n % b >= replicas, (n, b)
    assert even_batch_size(93, 512, 2) == 90  # 90 + 3: not 92 + 1, which leaves a replica empty
    assert even_batch_size(10_000, 512, 2) == 512  # 19 × 512 + 272


_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import emotion_refinery.models.distribute as distribute
    distribute.replica_devices = lambda: [d.name for d in tf.config.list_logical_devices("CPU")]
    from emotion_refinery.refine.settings import RefineConfig
    from emotion_refinery.refine.rounds import refine
    lines = []
    config = RefineConfig(rounds=1, backbone="small", epochs=2, batch_size=16, bn_momentum=0.9, seed=1)
    report = refine(sys.argv[1], sys.argv[2], config, log=lines.append)
    print(json.dumps({"lines": lines, "wa": report["rounds"][0]["wa"]}))
""")


@pytest.mark.slow  # trains
def test_a_task_that_sees_two_devices_trains_data_parallel_over_both(records, tmp_path):
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(records.root), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    mirrored = [line for line in out["lines"] if "MirroredStrategy over 2 devices" in line]
    assert len(mirrored) == records.n_folds  # every fold's model
    assert all("global batch 32 (16 per replica)" in line for line in mirrored)
    q = RunDir(tmp_path / "run").load_predictions(0, records)
    assert q.shape == (records.n_segments, len(records.classes)) and np.allclose(q.sum(axis=1), 1, atol=1e-5)
    assert 0 <= out["wa"] <= 1
