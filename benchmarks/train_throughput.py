"""Training throughput: each backbone fed from the records vs from in-memory arrays.

For every backbone the same compiled model trains alternately on (a) the refine input
pipeline (feature shards zipped with label shards, parsed, cached in memory, shuffled,
batched, prefetched) and (b) numpy arrays holding the same segments and targets, for
STEPS steps each after a warm-up, REPEATS times; the best of each is reported with the gap.
The input pipeline alone is timed too, parsing the shards and from its cache.

    python benchmarks/train_throughput.py [RECORDS_DIR] [--backbones small,mobilenetv2,...] [--steps 30]

RECORDS_DIR defaults to bench-out/records-emodb-fast (built from ../shared/corpora/emodb
with --preset fast if missing). Results go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the command line sets it
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
from _common import EMODB, REPO, machine, write_section  # noqa: E402

BATCH = 128
REPEATS = 3


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's wall time."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def ensure_records(path) -> None:
    if not (path / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "cli", "build-records", str(EMODB), "-o", str(path), "--preset", "fast",
                        "-q"], check=True, cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="?", default=str(REPO / "bench-out" / "records-emodb-fast"))
    parser.add_argument("--backbones", default="small,densenet22,mobilenetv2,efficientnetb0")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    from pathlib import Path

    records = Path(args.records)
    ensure_records(records)

    import numpy as np

    from emotion_refinery.data.folds import split_folds
    from emotion_refinery.models.backbones import build_model
    from emotion_refinery.records.datasets import count_segments, training_dataset
    from emotion_refinery.records.manifest import RecordsManifest
    from emotion_refinery.records.run_dir import RunDir
    from emotion_refinery.refine.rounds import _ensure_labels
    from emotion_refinery.refine.settings import RefineConfig

    m = RecordsManifest.load(records)
    run = RunDir(REPO / "bench-out" / "throughput-run")
    for k in range(m.n_folds):
        _ensure_labels(run, m, RefineConfig(), 0, k)
    train_folds, _ = split_folds(m.n_folds, 0)
    n = count_segments(m, train_folds)

    # The input pipeline alone: without the cache every pass reads and parses the shards;
    # with it, every pass after the first comes from memory (as every epoch after a refine run's first).
    def rate(ds) -> float:
        start = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _ in ds)
        return count / (time.perf_counter() - start)

    uncached = training_dataset(m, labels_dir=run.labels_dir(0), folds=train_folds, batch_size=BATCH, seed=0,
                                cache="none")
    parse_rates = [rate(uncached) for _ in range(3)]
    cached = training_dataset(m, labels_dir=run.labels_dir(0), folds=train_folds, batch_size=BATCH, seed=0)
    first_pass = rate(cached)
    cache_rate = max(rate(cached) for _ in range(2))
    xs, ys = [], []
    for x, y in cached:
        xs.append(x.numpy())
        ys.append(y.numpy())
    x_mem, y_mem = np.concatenate(xs), np.concatenate(ys)
    print(f"input pipeline: parsing {max(parse_rates):,.0f} segments/s (passes: "
          f"{', '.join(f'{r:,.0f}' for r in parse_rates)}), first cached pass {first_pass:,.0f}, "
          f"from the cache {cache_rate:,.0f}", flush=True)

    rows = []
    for name in args.backbones.split(","):
        keras.utils.set_random_seed(0)
        f = m.features
        model = build_model(name, input_shape=(f.segment_frames, f.n_mels, 1), n_classes=len(m.classes))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
        records_ds = training_dataset(m, labels_dir=run.labels_dir(0), folds=train_folds, batch_size=BATCH, seed=0)
        rate(records_ds)  # fill the memory cache, as the first epoch of a refine run does
        records_ds = records_ds.repeat()
        seconds = {"records": [], "arrays": []}
        for _ in range(REPEATS):
            for source in ("records", "arrays"):
                # Alternating fits of 2 epochs of STEPS steps; the first traces the step and fills the
                # shuffle buffer, the second is timed.
                timer = EpochTimer()
                if source == "records":
                    model.fit(records_ds, steps_per_epoch=args.steps, epochs=2, verbose=0, callbacks=[timer])
                else:
                    model.fit(x_mem, y_mem, batch_size=BATCH, steps_per_epoch=args.steps, epochs=2, verbose=0,
                              shuffle=True, callbacks=[timer])
                seconds[source].append(timer.seconds[1])
        best = {source: args.steps * BATCH / min(s) for source, s in seconds.items()}
        gap = 1 - best["records"] / best["arrays"]
        rows.append((name, best["records"], best["arrays"], gap))
        print(f"{name}: records {best['records']:.0f} seg/s, arrays {best['arrays']:.0f} seg/s, gap {100 * gap:+.1f} %",
              flush=True)

    body = "\n".join([
        "## Training throughput: records vs in-memory arrays",
        "",
        f"Measured {machine()}, CPU only, with `python benchmarks/train_throughput.py --steps {args.steps}` on "
        f"`{records.name}` ({n:,} training segments of fold 0's split, batch {BATCH}). Each backbone's model "
        f"alternates {REPEATS} times between the two sources, fitting 2 epochs of {args.steps} steps each time; "
        "the second epoch is timed and the best of each source counts. The records source is the refine "
        "input pipeline with its memory cache already filled, as in every epoch after the first of a refine run; "
        f"backbones: `--backbones {args.backbones}`.",
        "",
        f"Input pipeline alone (shards → parse → shuffle → batch), no training: "
        f"{max(parse_rates):,.0f} segments/s reading and parsing the shards (best of 3 passes without the cache: "
        f"{', '.join(f'{r:,.0f}' for r in parse_rates)}), {cache_rate:,.0f} segments/s from the in-memory "
        "cache. Target ≥ 30,000 segments/s.",
        "",
        "| backbone | from records (seg/s) | from arrays (seg/s) | gap |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {r:,.0f} | {a:,.0f} | {100 * g:+.1f} % |" for name, r, a, g in rows],
        "",
        "Gap = 1 − records/arrays; target ≤ 5 %. A negative gap means the records were faster.",
    ])
    print(body)
    write_section("train-throughput", body)


if __name__ == "__main__":
    main()
