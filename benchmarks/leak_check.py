"""Is a refined round's gain leakage? A check on one held-out fold, from in-memory arrays.

In `refine`, round 1's targets for split k's training folds are round 0's out-of-fold predictions,
made by models that trained on fold k. Here, for held-out fold k, round 1's targets come instead
from two teachers that never saw fold k (each trained on half of split k's training folds,
predicting the other half; wdsl, α = 0.2), and both rounds are scored on fold k by the mean EP.
Same model and optimiser as `benchmarks/segment_arrays.py` (tcnn, stride 4, 5 epochs).

    python benchmarks/leak_check.py RECORDS_DIR FOLD
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
import keras
import numpy as np
import tensorflow as tf
from segment_arrays import load

from emotion_refinery.data.folds import split_folds
from emotion_refinery.models.backbones import build_model
from emotion_refinery.refine.rules import refine_labels

records, k = sys.argv[1], int(sys.argv[2])
manifest, x, table = load(records)
K = len(manifest.classes)
labels = np.array([u["label_index"] for u in manifest.utterances])
y1 = np.eye(K, dtype=np.float32)[table["label"]]


def fit(rows, targets, seed, epochs=5):
    keras.utils.set_random_seed(seed)
    sel = rows & (table["position"] % 4 == 0)
    m = build_model("tcnn", input_shape=(32, 64, 1), n_classes=K, mean=x[sel].mean(axis=(0, 1)),
                    variance=x[sel].var(axis=(0, 1)), bn_momentum=0.9)
    steps = -(-int(sel.sum()) // 128)
    sch = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=2 * steps, decay_rate=0.8, staircase=True)
    m.compile(optimizer=keras.optimizers.Adam(sch), loss="categorical_crossentropy")
    ds = (tf.data.Dataset.from_tensor_slices((x[sel], targets[sel]))
          .shuffle(int(sel.sum()), seed=seed)
          .batch(128)
          .map(lambda a, b: (a[..., None], b))
          .prefetch(2))
    m.fit(ds, epochs=epochs, verbose=0)
    return m


def utt_acc(m, rows):
    q = m.predict(x[rows][..., None], batch_size=1024, verbose=0)
    u = table["utterance"][rows]
    return float(np.mean([q[u == i].mean(0).argmax() == labels[i] for i in np.unique(u)])), q


train_folds, val = split_folds(manifest.n_folds, k)
T = np.isin(table["fold"], train_folds)
test = table["fold"] == k
half_a = np.isin(table["fold"], train_folds[0::2])
half_b = np.isin(table["fold"], train_folds[1::2])
t0 = time.time()
r0, _ = utt_acc(fit(T, y1, 100 + k), test)
A = fit(half_a, y1, 200 + k)
B = fit(half_b, y1, 300 + k)
q = np.zeros_like(y1)
q[half_b] = A.predict(x[half_b][..., None], batch_size=1024, verbose=0)
q[half_a] = B.predict(x[half_a][..., None], batch_size=1024, verbose=0)
targets = y1.copy()
targets[T] = refine_labels("wdsl", predictions=q[T], labels=table["label"][T],
                           utterance_index=table["utterance"][T], alpha=0.2)
r1, _ = utt_acc(fit(T, targets, 400 + k), test)
print(json.dumps({"fold": k, "round0_hard": r0, "round1_leak_free_wdsl": r1, "seconds": time.time() - t0}), flush=True)
