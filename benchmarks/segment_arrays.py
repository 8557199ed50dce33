"""Quick comparisons of segment classifiers on Emo-DB, trained from in-memory arrays on a few folds.

A full `refine` round takes 10 fold trainings; this trains the folds given (default 0, 1, 2) of
records built with `--preset cpu`, the way `refine` round 0 does (fold k held out, fold k + 1 for
validation, the other 8 folds train on every `--stride`-th segment; Adam 0.001 × 0.8 every 2 epochs,
batch 128, BN momentum 0.9), and reports per fold the segment accuracy on the held-out fold, its
utterance accuracy by the mean segment probability, the validation accuracy per epoch and the time.
Use it to choose what to run with `benchmarks/cpu_profile.py`; it is not a refine result.

    python benchmarks/segment_arrays.py RECORDS_DIR [--backbone tcnn] [--stride 4] [--epochs 8]
                                        [--folds 0,1,2] [--spec-augment] [--freq-shift N] [--mixup A] [--speaker-norm]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from emotion_refinery.data.folds import split_folds  # noqa: E402
from emotion_refinery.models.backbones import build_model  # noqa: E402
from emotion_refinery.records.augment import make_augment  # noqa: E402
from emotion_refinery.records.manifest import RecordsManifest  # noqa: E402
from tf_records.reader import ordered_batches  # noqa: E402
from tf_records.schema import SEGMENT  # noqa: E402


def load(records: str):
    """Every stored segment as float32 ``(n, frames, n_mels)`` and the per-segment table."""
    manifest = RecordsManifest.load(records)
    parse = lambda r: manifest.spec.parse(r, as_float32=False)  # noqa: E731
    x = np.concatenate([b[SEGMENT].numpy() for b in ordered_batches([manifest.shard_path(s) for s in manifest.shards],
                                                                     parse, batch_size=8192)])
    table = manifest.segment_table()
    table["position"] = np.concatenate([np.arange(u["segments"]) for u in manifest.utterances])
    return manifest, x.astype(np.float32), table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records")
    parser.add_argument("--backbone", default="tcnn")
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--folds", default="0,1,2")
    parser.add_argument("--spec-augment", action="store_true")
    parser.add_argument("--freq-shift", type=int, default=0, help="shift Mel bands by up to ±N bands")
    parser.add_argument("--mixup", type=float, default=0.0)
    parser.add_argument("--speaker-norm", action="store_true",
                        help="z-normalise every Mel band of each speaker's segments by that speaker's own statistics")
    args = parser.parse_args()
    manifest, x, table = load(args.records)
    if args.speaker_norm:  # no labels; the held-out speaker's statistics come from its own audio only
        speakers = np.array([u["speaker"] or u["id"] for u in manifest.utterances])[table["utterance"]]
        for s in np.unique(speakers):
            rows = speakers == s
            x[rows] = (x[rows] - x[rows].mean(axis=(0, 1))) / (x[rows].std(axis=(0, 1)) + 1e-3)
    k_classes = len(manifest.classes)
    labels = [u["label_index"] for u in manifest.utterances]
    rows = []
    for k in map(int, args.folds.split(",")):
        start = time.perf_counter()
        train_folds, val_fold = split_folds(manifest.n_folds, k)
        train = np.isin(table["fold"], train_folds) & (table["position"] % args.stride == 0)
        val = (table["fold"] == val_fold) & (table["position"] % 4 == 0)
        test = table["fold"] == k
        y = np.eye(k_classes, dtype=np.float32)[table["label"]]
        keras.utils.set_random_seed(k)
        model = build_model(args.backbone, input_shape=(*x.shape[1:], 1), n_classes=k_classes,
                            mean=x[train].mean(axis=(0, 1)), variance=x[train].var(axis=(0, 1)), bn_momentum=0.9)
        steps = -(-int(train.sum()) // 128)
        schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=2 * steps, decay_rate=0.8,
                                                               staircase=True)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy", metrics=["accuracy"])
        ds = tf.data.Dataset.from_tensor_slices((x[train], y[train])).shuffle(int(train.sum()), seed=k).batch(128)
        augment = make_augment(spec_augment_masks=args.spec_augment, freq_shift_bands=args.freq_shift,
                               mixup_alpha=args.mixup)
        if augment is not None:
            seeds = tf.data.Dataset.random(seed=k, rerandomize_each_iteration=True).batch(2)
            # map() traces the lambda here, in this iteration, so it sees this fold's augment.
            ds = tf.data.Dataset.zip((ds, seeds)).map(lambda xy, s: augment(xy[0], xy[1], s))  # noqa: B023
        ds = ds.map(lambda a, b: (a[..., None], b)).prefetch(2)
        history = model.fit(ds, epochs=args.epochs, verbose=0, validation_data=(x[val][..., None], y[val]))
        q = model.predict(x[test][..., None], batch_size=1024, verbose=0)
        utts = table["utterance"][test]
        decided = [int(q[utts == u].mean(axis=0).argmax() == labels[u]) for u in np.unique(utts)]
        rows.append({"fold": k, "segment_accuracy": float(np.mean(q.argmax(1) == table["label"][test])),
                     "utterance_accuracy": float(np.mean(decided)), "seconds": time.perf_counter() - start,
                     "val_accuracy": [round(v, 3) for v in history.history["val_accuracy"]]})
        print(json.dumps(rows[-1]), flush=True)
    print(f"{args.backbone} stride {args.stride}, {args.epochs} epochs, spec-augment {args.spec_augment}, "
          f"freq-shift {args.freq_shift}, mixup {args.mixup}, speaker-norm {args.speaker_norm}: "
          f"segment accuracy {100 * np.mean([r['segment_accuracy'] for r in rows]):.2f} %, "
          f"utterance accuracy (mean EP) {100 * np.mean([r['utterance_accuracy'] for r in rows]):.2f} % "
          f"over folds {args.folds}, "
          f"{np.mean([r['seconds'] for r in rows]):.0f} s per fold")


if __name__ == "__main__":
    main()
