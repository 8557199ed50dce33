"""Utterance-level (sequence) records: size on disk, reading speed, and one training epoch of `blstm_attention`
with random batches against length-bucketed batches.

    python benchmarks/sequence_records.py RECORDS_DIR [--fold 0] [--batch-size 32]

RECORDS_DIR must be built with `build-records --sequences log-mel`; writes the `sequence-records` section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine, write_section  # noqa: E402

from emotion_refinery.data.folds import split_folds  # noqa: E402
from emotion_refinery.models.backbones import build_sequence_model  # noqa: E402
from emotion_refinery.records.datasets import sequence_dataset  # noqa: E402
from emotion_refinery.records.manifest import RecordsManifest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records")
    parser.add_argument("--fold", type=int, default=0, help="held-out fold whose training folds are read")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    manifest = RecordsManifest.load(args.records)
    frames = np.array([u["sequence_frames"] for u in manifest.utterances])
    size = sum(s["sequences"]["size"] for s in manifest.shards)
    train, _ = split_folds(manifest.n_folds, args.fold)

    start = time.perf_counter()
    n = sum(len(y) for _, y in sequence_dataset(manifest, folds=list(range(manifest.n_folds)), cache="none"))
    read = time.perf_counter() - start

    rows = []
    for buckets in (0, 4):
        keras.utils.set_random_seed(0)
        model = build_sequence_model("blstm_attention", n_features=manifest.features.n_mels,
                                     n_classes=len(manifest.classes))
        model.compile("adam", "categorical_crossentropy")
        ds = sequence_dataset(manifest, folds=train, batch_size=args.batch_size, shuffle=True, buckets=buckets)
        ds = ds.map(lambda x, y: ({"frames": x["frames"], "mask": x["mask"]}, y))
        padded = sum(int(x["mask"].shape[0] * x["mask"].shape[1]) for x, _ in ds)
        model.fit(ds, epochs=1, verbose=0)  # tracing and the first pass through the cache
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        rows.append((buckets, time.perf_counter() - start, padded))
    real = int(sum(u["sequence_frames"] for u in manifest.utterances if u["fold"] in train))
    lines = [
        "## Sequence records (`build-records --sequences log-mel`)", "",
        f"Measured {machine()}, with `python benchmarks/sequence_records.py {args.records} --fold {args.fold} "
        f"--batch-size {args.batch_size}`.", "",
        f"- {len(frames)} utterances, {frames.sum():,} frames (mean {frames.mean():.0f}, max {frames.max()}) of "
        f"{manifest.features.n_mels} {manifest.features.dtype} features: {size / 1e6:.1f} MB of sequence shards "
        f"({size / frames.sum():.0f} B per frame), the same in memory once cached.",
        f"- Reading and parsing every sequence: {n / read:,.0f} utterances/s ({read:.1f} s).",
        "",
        "| batches | padded frames / real frames | one `blstm_attention` training epoch (s) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {'random' if b == 0 else f'{b} length buckets'} | {p / real:.2f} | {t:.1f} |" for b, t, p in rows]
    body = "\n".join(lines)
    print(body)
    write_section("sequence-records", body)


if __name__ == "__main__":
    main()
